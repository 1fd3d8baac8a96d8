"""Wall time of the README quick start: `python -m harness run --method all --dataset synthetic`.

Runs the command exactly as a user would, in a fresh temporary folder with a fresh cache (so
the synthetic dataset and the synthetic segmenter are generated / trained inside the measured
time), offline (metrics whose weights are missing are recorded as skipped). Reports the total
wall time and, per method, the seconds of each stage read back from the run directories
(run.json), and appends one JSON line with command, machine, versions and date to
bench/quickstart/results.jsonl.

    python bench/quickstart/bench_quickstart.py                 # all methods, default presets
    python bench/quickstart/bench_quickstart.py --threads 2     # OMP/torch threads (2-core box)
    python bench/quickstart/bench_quickstart.py --methods spade,pix2pixhd --keep /tmp/qs
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results.jsonl"


def _git() -> str | None:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                             capture_output=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, text=True,
                               capture_output=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "") if sha else None
    except (OSError, subprocess.SubprocessError):
        return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="all")
    ap.add_argument("--dataset", default="synthetic")
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS (default: unset)")
    ap.add_argument("--keep", help="work folder to keep (default: a temporary one, deleted)")
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                    help="more arguments for `harness run` (e.g. --protocol FILE)")
    args = ap.parse_args()

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="harness-quickstart-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HARNESS_OFFLINE="1", HARNESS_CACHE=str(work / "cache"),
               TORCH_HOME=str(work / "torch-home"))
    env.pop("HARNESS_WEIGHTS_DIR", None)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    cmd = [sys.executable, "-m", "harness", "run", "--method", args.methods, "--dataset",
           args.dataset, "--runs-dir", str(work / "runs"), "--results-dir",
           str(work / "results"), "--quiet", "--allow-missing-weights", *args.extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-5000:])
    stages = {}
    for status in sorted((work / "runs").glob("*/*/*/run.json")):
        data = json.loads(status.read_text())
        stages[data.get("method", status.parent.parent.name)] = {
            k.split("/")[0]: v.get("seconds") for k, v in data.get("stages", {}).items()}
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    record = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", "-m", "harness", "run", "--method", args.methods,
                             "--dataset", args.dataset, "--allow-missing-weights",
                             *args.extra]),
        "returncode": proc.returncode, "wall_s": round(wall, 1), "stages_s": stages,
        "leaderboard_csv": (work / "results" / "leaderboard.csv").is_file(),
        "omp_num_threads": env.get("OMP_NUM_THREADS"), "cpu_count": os.cpu_count(),
        "load_average_after": load, "machine": platform.platform(),
        "python": platform.python_version(), "git": _git(),
    }
    with open(RESULTS, "a") as f:
        f.write(json.dumps(record) + "\n")
    print(json.dumps(record, indent=2))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main())
