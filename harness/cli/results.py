"""The `leaderboard` verb (tables from every metrics.json) and the `list` verb (methods, datasets,
protocols, segmenters)."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from harness.cli.common import emit_json, emit_table

LOG = logging.getLogger("harness")


def add_parsers(add: Callable[..., argparse.ArgumentParser]) -> None:
    """The `leaderboard`, `list` sub-commands."""
    p = add("leaderboard", "write results/leaderboard.{csv,md,tex} from every metrics.json",
            """
            python -m harness leaderboard --format csv,md
            python -m harness leaderboard --dataset cityscapes --protocol cityscapes-paper \\
                --methods spade,ccfpse --paper results/table.tex
            python -m harness leaderboard --remove-external "SPADE (released)"
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
    p.add_argument("--dataset", help="only this dataset (comma-separated list) in what is "
                   "printed and in --paper; the files always hold every record")
    p.add_argument("--protocol", help="only this protocol (name or id; comma-separated list)")
    p.add_argument("--methods", help="only these methods (comma-separated; the published rows "
                   "of the same methods and external rows by label too)")
    p.add_argument("--paper", nargs="?", const="results/leaderboard-paper.tex", metavar="FILE",
                   help="write the selected tables as a paper-ready LaTeX file to \\input "
                        "(default FILE: results/leaderboard-paper.tex); see docs/report.md")
    p.add_argument("--remove-external", action="append", default=[], metavar="LABEL",
                   help="delete the external row LABEL (from `evaluate --images --label`) and "
                        "rebuild; repeatable")
    p.add_argument("--list-external", action="store_true",
                   help="print the stored external rows as JSON and exit")
    p.set_defaults(func=cmd_leaderboard)

    p = add("list", "list methods, datasets, protocols or segmenters",
            """
            python -m harness list methods
            python -m harness list protocols --json
            """)
    p.add_argument("what", choices=("methods", "datasets", "protocols", "segmenters"))
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p.add_argument("--dataset", default="synthetic",
                   help="methods: report each method's capabilities for its preset on this "
                        "dataset (default: synthetic)")
    p.add_argument("--config", action="append", default=[], metavar="FILE",
                   help="methods: YAML layer(s) applied after the presets; a file that names "
                        "method.name lists that method only")
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
    from harness.results import external
    if args.list_external:
        emit_json(external.list_external(args.results_dir))
        return 0
    for label in args.remove_external:
        try:
            LOG.info("removed external row %r (%s)", label,
                     external.remove_external(args.results_dir, label))
        except external.ExternalError as exc:
            raise ConfigError(str(exc)) from None
    written = refresh_leaderboard(runs, args.results_dir, formats=formats,
                                  published=not args.no_published)
    for p in written:
        LOG.info("wrote %s", p)
    if args.dataset or args.protocol or args.methods or args.paper:
        return _selected_output(args, runs)
    if args.print_format != "none":
        suffix = {"csv": ".csv", "md": ".md", "latex": ".tex"}[args.print_format]
        shown = [p for p in written if Path(p).suffix == suffix]
        if shown:
            sys.stdout.write(Path(shown[0]).read_text())
    return 0


def _selected_output(args: argparse.Namespace, runs: Sequence[str]) -> int:
    """Print (and with --paper write) only the selected part of the leaderboard."""
    from harness.core.config import ConfigError
    from harness.core.io import atomic_write_text
    from harness.results import formats as fmt
    from harness.results.select import Selection, SelectionError, select

    try:
        sel = select(runs, args.results_dir, Selection.parse(args.dataset, args.protocol,
                                                             args.methods),
                     published=not args.no_published)
    except SelectionError as exc:
        raise ConfigError(str(exc)) from None
    if args.paper:
        from harness.results.paper_latex import to_paper_latex
        path = atomic_write_text(Path(args.paper), to_paper_latex(sel))
        LOG.info("wrote %s (paper table: \\input it; needs \\usepackage{booktabs})", path)
    render = {"csv": fmt.to_csv, "md": fmt.to_markdown, "latex": fmt.to_latex}
    if args.print_format != "none":
        sys.stdout.write(render[args.print_format](sel.board))
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


def list_rows(what: str, *, dataset: str = "synthetic",
              config_files: Sequence[str] = ()) -> tuple[list[dict], list[str]]:
    """Rows and table columns of `harness list <what>` (methods: capabilities of each method's
    configuration for ``dataset`` with ``config_files``, see :func:`method_capabilities`)."""
    from harness.core.registry import summary_line

    if what == "methods":
        from methods import METHODS
        named = _config_method_names(config_files)
        rows = []
        for e in METHODS.entries():
            if named and e.name not in named:
                continue
            caps, config = method_capabilities(e.name, e.obj, dataset, config_files)
            rows.append({"name": e.name, **_source_fields(e.source),
                         "description": summary_line(e.obj), "capabilities": caps,
                         "config": config})
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


def _config_method_names(config_files: Sequence[str]) -> set[str]:
    """The method names the --config files set (method.name), if any."""
    from harness.core.config import load_yaml

    return {str(m["name"]) for f in config_files
            if isinstance(m := load_yaml(f).get("method"), dict) and m.get("name")}


def method_capabilities(name: str, cls: type, dataset: str,
                        config_files: Sequence[str] = ()) -> tuple[dict, dict]:
    """(capabilities, which configuration they are for) of method ``name``: its presets for
    ``dataset`` plus ``config_files``, validated like `run` would (no network is built).
    A configuration that does not load still lists the method, with the error in place of its
    configuration and the capabilities its class declares for its default Config."""
    from harness.core.config import ConfigError
    from harness.core.registry import RegistryError
    from harness.core.errors import UserError
    from harness.experiment import load_experiment

    try:
        cfg = load_experiment(name, dataset, config_files=list(config_files))
    except (ConfigError, RegistryError, UserError, ValueError) as exc:
        try:
            caps = cls.capabilities_for(cls.Config())
        except Exception:  # noqa: BLE001 - a Config without defaults: nothing to report
            caps = {}
        return caps, {"dataset": dataset, "error": str(exc).splitlines()[0]}
    return cls.capabilities_for(cfg.method.config), {"name": cfg.name, "dataset": dataset,
                                                    "sources": list(cfg.sources)}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        on = [k for k, v in value.items() if v is True] + \
            [f"{k}?" for k, v in value.items() if v is None]  # not known before building
        return ",".join(on) if on else "-"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12]
    return str(value)


def cmd_list(args: argparse.Namespace) -> int:
    rows, columns = list_rows(args.what, dataset=args.dataset, config_files=args.config)
    if args.json:
        emit_json(rows)
    else:
        emit_table([{c: _cell(r.get(c)) for c in columns} for r in rows], columns)
    return 0
