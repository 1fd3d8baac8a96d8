"""The `compare` verb: paired differences of two evaluated runs (harness/compare.py)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from harness.cli.common import emit_json


def add_parser(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("compare", "paired bootstrap differences of every metric between two evaluated runs",
            """
            python -m harness compare runs/synthetic/spade/<run-id> runs/synthetic/ccfpse/<run-id>
            python -m harness compare --methods spade,ccfpse --dataset synthetic --json
            """)
    p.add_argument("runs", nargs="*", metavar="RUN",
                   help="two run folders (or their metrics.json files): A then B")
    p.add_argument("--methods", help="A,B: the newest evaluated run of each method "
                                     "(with --dataset)")
    p.add_argument("--dataset", help="the dataset of --methods")
    p.add_argument("--runs-dir", default="runs", help="where --methods looks (default: runs)")
    p.add_argument("--protocol", help="protocol name or id, when the runs share several")
    p.add_argument("--inference", help="inference mode, when the runs share several")
    p.add_argument("--resamples", type=int, help="bootstrap replicates (default: the "
                                                 "protocol's fid.bootstrap_resamples)")
    p.add_argument("--confidence", type=float,
                   help="interval level (default: the protocol's fid.confidence)")
    p.add_argument("--seed", type=int, help="resampling seed (default: the protocol's)")
    p.add_argument("--json", action="store_true", help="JSON on stdout instead of a table")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.compare import CompareError, compare, load_sides, newest_run, table_lines

    if args.methods or args.dataset:
        if args.runs:
            raise CompareError("give either two RUN folders or --methods A,B --dataset D")
        methods = [m.strip() for m in (args.methods or "").split(",") if m.strip()]
        if len(methods) != 2 or not args.dataset:
            raise CompareError("--methods takes two names A,B and needs --dataset D")
        runs = [newest_run(Path(args.runs_dir), args.dataset, m) for m in methods]
    else:
        if len(args.runs) != 2:
            raise CompareError(f"compare needs two runs (A and B), got {len(args.runs)}")
        runs = args.runs
    a, b = load_sides(runs[0], runs[1], protocol=args.protocol, inference=args.inference)
    result = compare(a, b, resamples=args.resamples, confidence=args.confidence, seed=args.seed)
    if args.json:
        emit_json(result)
    else:
        sys.stdout.write("\n".join(table_lines(result)) + "\n")
    return 0
