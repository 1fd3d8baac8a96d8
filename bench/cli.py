"""``python -m bench [CASE ...] [--device cpu|cuda] [--quick]``: run named benchmark cases.

Every measured variant prints one JSON line on stdout (progress on stderr) and is appended to
bench/results.jsonl with the case, its parameters, device name, torch version, git commit, date,
median / min / max seconds of >= 5 measured repeats after warm-up, and the peak memory (CUDA max
allocated on a GPU, peak RSS on the CPU).

Examples::

    python -m bench --list
    python -m bench conv_cond --quick
    OMP_NUM_THREADS=1 python -m bench ccfpse_step ccfpse_levers
    python -m bench gpu_levers --device cuda
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import shlex
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.jsonl"
# name -> module under bench.cases; each module has DESCRIPTION, DEVICES, DEFAULT and run(ctx)
CASES = {
    "conv_cond": "conditional_conv",
    "fid_bootstrap": "fid_bootstrap",
    "fid_extract": "fid_extract",
    "evaluate_cache": "evaluate_cache",
    "evaluate_one_pass": "evaluate_one_pass",
    "train_step": "train_step",
    "ccfpse_levers": "ccfpse_levers",
    "ccfpse_checkpoint": "ccfpse_checkpoint",
    "ccfpse_heads": "ccfpse_heads",
    "train_runner": "train_runner",
    "quickstart": "quickstart",
    "gpu_levers": "gpu_levers",
    "official_step": "official_step",
}


class Context:
    def __init__(self, device: str, quick: bool, repeats: int, warmup: int) -> None:
        self.device, self.quick, self.repeats, self.warmup = device, quick, repeats, warmup


def load(name: str):
    return importlib.import_module(f"bench.cases.{CASES[name]}")


def device_name(device: str) -> str:
    import torch
    if device == "cuda":
        return torch.cuda.get_device_name()
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu} ({os.cpu_count()} cores, torch threads {torch.get_num_threads()})"


def record(case: str, result: dict, ctx: Context, argv: list[str]) -> dict:
    import torch

    from harness.core.env import git_commit
    timing = result.pop("timing")
    return {"case": case, "variant": result.pop("variant", None),
            "parameters": result.pop("parameters", {}), "device": ctx.device,
            "device_name": device_name(ctx.device), "torch": torch.__version__,
            "git_commit": git_commit(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            **timing.as_dict(), "quick": ctx.quick, **result,
            "command": "python -m bench " + shlex.join(argv)}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cases", nargs="*", metavar="CASE", help="cases to run (default: every "
                   "default case for the device); see --list")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--quick", action="store_true", help="smallest sizes (a smoke run; numbers "
                   "are recorded with quick=true)")
    p.add_argument("--repeats", type=int, default=5, help="measured repeats (>= 5; default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up calls (default 1)")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("--no-record", action="store_true", help="print only; do not append to "
                   "bench/results.jsonl")
    p.add_argument("--results", type=Path, default=RESULTS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.list:
        for name in CASES:
            mod = load(name)
            print(f"{name:18s} [{','.join(mod.DEVICES)}{'' if mod.DEFAULT else '; by name only'}]"
                  f"  {mod.DESCRIPTION}")
        return 0
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        p.error(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(CASES)}")
    if args.repeats < 5:
        p.error(f"--repeats must be >= 5 (the median of at least 5 measured repeats), got "
                f"{args.repeats}")
    import torch
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    ctx = Context(args.device, args.quick, args.repeats, args.warmup)
    names = args.cases or [n for n in CASES if load(n).DEFAULT and args.device in load(n).DEVICES]
    status = 0
    for name in names:
        mod = load(name)
        if args.device not in mod.DEVICES:
            print(f"bench: {name} runs only with --device {'/'.join(mod.DEVICES)}; skipped",
                  file=sys.stderr)
            continue
        print(f"bench: {name} ({args.device}{', quick' if args.quick else ''}) ...",
              file=sys.stderr, flush=True)
        try:
            for result in mod.run(ctx):
                rec = record(name, result, ctx, argv)
                print(json.dumps(rec), flush=True)
                if not args.no_record:
                    with open(args.results, "a") as f:
                        f.write(json.dumps(rec) + "\n")
        except Exception as exc:  # one failing case must not hide the others' numbers
            print(f"bench: {name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            status = 1
    return status
