"""What every CLI verb shares: the help layout, the shared options, JSON and tables on stdout,
loading a configuration or opening a run directory, the skipped-metrics exit status."""
from __future__ import annotations

import argparse
import json
import sys
import textwrap
from typing import Any, Sequence


def emit_json(data: Any) -> None:
    """Machine output: indented JSON on stdout (logs and progress go to stderr)."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def open_run(path: str, verify_content: bool = False):
    """(RunDir, its resolved config) of an existing run directory (``verify_content``: fingerprint
    its dataset by file contents, as --verify-content asks)."""
    from harness.rundir import RunDir

    rd = RunDir.open(path)
    cfg = rd.load_config()
    from harness.weights_catalog import apply_config
    apply_config(cfg)  # the run's weights: section (strict keys)
    if verify_content:
        cfg.dataset.options.verify_content = True
    return rd, cfg


class Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def example(text: str) -> str:
    return "example:\n" + textwrap.indent(textwrap.dedent(text).strip("\n"), "  ")


def common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show tracebacks and debug logs")
    p.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="no progress bars, warnings only")
    p.add_argument("--weights-dir", default=argparse.SUPPRESS, metavar="DIR",
                   help="folder of pretrained weight files, searched by file name before "
                        "$HARNESS_WEIGHTS_DIR (docs/weights.md)")


def config_args(p: argparse.ArgumentParser, *, method: bool = True) -> None:
    if method:
        p.add_argument("--method", help="method name (see `harness list methods`); "
                       "may also come from a --config file")
    p.add_argument("--dataset", help="dataset name (see `harness list datasets`)")
    p.add_argument("--config", action="append", default=[], metavar="FILE",
                   help="extra YAML layer(s), applied after the built-in presets (repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override one key, e.g. --set train.batch_size=4 (YAML-typed, repeatable)")


def run_dir_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs-dir", default="runs", help="root of the run directories (default: runs)")
    p.add_argument("--run-id", help="run directory name (default: <config name>-<config hash>)")
    p.add_argument("--fresh", action="store_true",
                   help="delete this configuration's run directory and start over")
    no_wait_arg(p)


def no_wait_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-wait", action="store_true",
                   help="when another process is writing to the run directory, fail at once "
                        "(exit status 2) instead of waiting for it to finish")


def strict_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strict", action="store_true",
                   help="exit with status 3 when a requested metric was skipped (e.g. for a "
                        "missing weights file); the summary on stderr names each one")


def data_identity_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--verify-content", action="store_true",
                   help="fingerprint the dataset by file contents (sha256) instead of size + "
                        "mtime (same as --set dataset.verify_content=true; slower)")
    p.add_argument("--allow-data-change", action="store_true",
                   help="go on when the dataset's files differ from those this run recorded "
                        "(recorded in run.json; samples and metrics are recomputed); without "
                        "it a changed dataset is an error")


def emit_table(rows: list[dict], columns: Sequence[str]) -> None:
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip()]
    for r in rows:
        lines.append("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns).rstrip())
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def show_progress(args: argparse.Namespace) -> bool:
    return not getattr(args, "quiet", False)


def load_cfg(args: argparse.Namespace, method: str | None = None):
    from harness.experiment import load_experiment

    overrides = list(args.overrides)
    if getattr(args, "verify_content", False):
        overrides.append("dataset.verify_content=true")
    cfg = load_experiment(method if method is not None else args.method, args.dataset,
                          config_files=args.config, overrides=overrides)
    from harness.weights_catalog import apply_config
    apply_config(cfg)  # the weights: section (strict keys)
    return cfg


def skipped_status(args: argparse.Namespace, entries: Sequence[tuple[str, dict]]) -> int:
    """Print the skipped-metrics summary on stderr (rank 0); 3 with --strict when any."""
    from harness.core import dist as hdist
    from harness.skip_report import EXIT_SKIPPED_METRICS, summary

    text = summary(entries)
    if text is not None and hdist.info().is_main:
        sys.stderr.write(text + "\n")
    return EXIT_SKIPPED_METRICS if text is not None and args.strict else 0
