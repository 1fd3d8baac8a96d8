"""The `leaderboard` verb (tables from every metrics.json) and the `list` verb (methods, datasets,
protocols, segmenters)."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Callable

from harness.cli.common import emit_json, emit_table

LOG = logging.getLogger("harness")


def add_parsers(add: Callable[..., argparse.ArgumentParser]) -> None:
    """The `leaderboard`, `list` sub-commands."""
    p = add("leaderboard", "write results/leaderboard.{csv,md,tex} from every metrics.json",
            """
            python -m harness leaderboard --format csv,md
            """)
    p.add_argument("--format", default="csv,latex,md",
                   help="comma-separated: csv, latex, md (default: all)")
    p.add_argument("--runs-dir", action="append", default=None,
                   help="folder(s) searched for metrics.json (default: runs)")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--no-published", action="store_true",
                   help="leave out the paper numbers of results/published.csv")
    p.add_argument("--print", dest="print_format", choices=("csv", "md", "latex", "none"),
                   default="md", help="also print this table on stdout (default: md)")
    p.set_defaults(func=cmd_leaderboard)

    p = add("list", "list methods, datasets, protocols or segmenters",
            """
            python -m harness list methods
            python -m harness list protocols --json
            """)
    p.add_argument("what", choices=("methods", "datasets", "protocols", "segmenters"))
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p.set_defaults(func=cmd_list)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from harness.core.config import ConfigError
    from harness.stages.leaderboard import refresh_leaderboard

    from harness.results.build import parse_formats

    try:
        formats = parse_formats(args.format)
    except ValueError as exc:
        raise ConfigError(f"--format {args.format!r}: {exc}") from None
    runs = args.runs_dir or ["runs"]
    written = refresh_leaderboard(runs, args.results_dir, formats=formats,
                                  published=not args.no_published)
    for p in written:
        LOG.info("wrote %s", p)
    if args.print_format != "none":
        suffix = {"csv": ".csv", "md": ".md", "latex": ".tex"}[args.print_format]
        shown = [p for p in written if Path(p).suffix == suffix]
        if shown:
            sys.stdout.write(Path(shown[0]).read_text())
    return 0


def _source_fields(source: str) -> dict:
    """'builtin (mod.Cls)' / 'plugin <dist> <version> (mod:attr)' -> structured fields."""
    kind, _, rest = source.partition(" ")
    out: dict[str, Any] = {"source": kind}
    if kind == "plugin":
        head, _, target = rest.partition(" (")
        dist, _, version = head.partition(" ")
        out.update(source=f"plugin {dist} {version}".strip(), distribution=dist,
                   version=version or None, target=target.rstrip(")") or None)
    else:
        out["target"] = rest.strip("()") or None
    return out


def list_rows(what: str) -> tuple[list[dict], list[str]]:
    """Rows and table columns of `harness list <what>`."""
    from harness.core.registry import summary_line

    if what == "methods":
        from methods import METHODS
        rows = []
        for e in METHODS.entries():
            cls = e.obj
            caps = _class_capabilities(cls)
            rows.append({"name": e.name, **_source_fields(e.source),
                         "description": summary_line(cls), "capabilities": caps})
        return rows, ["name", "source", "capabilities", "description"]
    if what == "datasets":
        from harness.core.data import DATASETS
        rows = [{"name": e.name, **_source_fields(e.source), "description": summary_line(e.obj),
                 "default_protocol": getattr(e.obj, "default_protocol", None)}
                for e in DATASETS.entries()]
        return rows, ["name", "source", "default_protocol", "description"]
    if what == "segmenters":
        from evaluators.segmenters import SEGMENTERS
        rows = [{"name": e.name, **_source_fields(e.source), "label_space": e.obj.label_space,
                 "description": e.obj.description} for e in SEGMENTERS.entries()]
        return rows, ["name", "source", "label_space", "description"]
    if what == "protocols":
        from evaluators.protocol import load_protocol, protocol_names
        from harness.core.config import ConfigError
        rows = []
        for name in protocol_names():
            try:
                p = load_protocol(name)
            except ConfigError as exc:  # one broken file must not hide the others
                LOG.warning("protocol %s cannot be loaded: %s", name, exc)
                rows.append({"name": name, "error": str(exc), "description": f"ERROR: {exc}"})
                continue
            rows.append({"name": p.name, "id": p.id, "hash": p.hash(), "dataset": p.dataset,
                         "split": p.split, "resolution": "x".join(map(str, p.resolution)),
                         "num_images": p.num_images, "seeds": list(p.seeds),
                         "segmenter": p.segmentation.segmenter,
                         "description": (p.description or "").strip().splitlines()[0]
                         if p.description else "", "source": p.source})
        return rows, ["name", "hash", "dataset", "split", "resolution", "segmenter", "description"]
    raise ValueError(what)


def _class_capabilities(cls: type) -> dict[str, bool]:
    """Capabilities a method class declares without building it (multimodal is a property of
    the configuration, e.g. SPADE with or without its encoder, so it is reported as declared)."""
    from methods.base import Method
    caps = {"encode_style": getattr(cls, "encode_style", None) is not Method.encode_style,
            "import_official": getattr(cls, "import_official", None) is not Method.import_official}
    declared = cls.__dict__.get("multimodal") if "multimodal" in cls.__dict__ else \
        next((k.__dict__["multimodal"] for k in cls.__mro__ if "multimodal" in k.__dict__), None)
    if isinstance(declared, bool):
        caps["multimodal"] = declared
    else:  # a property: multimodal when overridden (it may still depend on the configuration)
        caps["multimodal"] = declared is not Method.__dict__["multimodal"]
    return caps


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        on = [k for k, v in value.items() if v is True]
        return ",".join(on) if on else "-"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12]
    return str(value)


def cmd_list(args: argparse.Namespace) -> int:
    rows, columns = list_rows(args.what)
    if args.json:
        emit_json(rows)
    else:
        emit_table([{c: _cell(r.get(c)) for c in columns} for r in rows], columns)
    return 0
