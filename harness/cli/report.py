"""The `report` verb: one self-contained HTML page per dataset (:mod:`harness.report.html`)."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable

from harness.cli.common import emit_json

LOG = logging.getLogger("harness")


def add_parsers(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("report", "write a self-contained HTML report (leaderboard, figures, runs) for a "
                      "dataset",
            """
            python -m harness report --dataset synthetic
            python -m harness report --dataset cityscapes --protocol cityscapes-paper --out r.html
            """)
    p.add_argument("--dataset", required=True, help="the dataset the page is about")
    p.add_argument("--protocol", help="only this protocol (name or id; comma-separated)")
    p.add_argument("--methods", help="only these methods (comma-separated)")
    p.add_argument("--runs-dir", action="append", default=None,
                   help="folder(s) searched for metrics.json (default: runs)")
    p.add_argument("--results-dir", default="results",
                   help="published.csv, external rows and figures/ are read from here "
                        "(default: results)")
    p.add_argument("--out", help="HTML file (default: <results-dir>/report-<dataset>.html)")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from harness.core.config import ConfigError
    from harness.report.html import write_report
    from harness.results.select import SelectionError

    command = "python -m harness " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["report"] \
        else f"python -m harness report --dataset {args.dataset}"
    try:
        path = write_report(args.runs_dir or ["runs"], args.results_dir, args.dataset,
                            out=args.out, protocol=args.protocol, methods=args.methods,
                            command=command)
    except SelectionError as exc:
        raise ConfigError(str(exc)) from None
    LOG.info("wrote %s", path)
    emit_json({"report": str(path)})
    return 0
