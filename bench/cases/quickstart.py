"""quickstart (by name only): wall time of the README quick start, `python -m harness run
--method all --dataset synthetic --allow-missing-weights`, exactly as a user runs it, in a fresh
folder with a fresh cache each repeat (dataset generation and segmenter training included), offline
(formerly bench/quickstart/bench_quickstart.py; its history stays in
bench/quickstart/results.jsonl). Each repeat takes minutes on 2 cores. --quick: spade only."""
from __future__ import annotations

DESCRIPTION = "README quick start wall time (fresh cache per repeat; minutes each)"
DEVICES = ("cpu", "cuda")
DEFAULT = False


def run(ctx):
    import os
    import shutil
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from bench.isolate import REPO
    from bench.measure import measure
    methods = "spade" if ctx.quick else "all"
    state = {}

    def fresh():
        if "work" in state:
            shutil.rmtree(state["work"], ignore_errors=True)
        state["work"] = Path(tempfile.mkdtemp(prefix="bench-quickstart-"))

    def once():
        work = state["work"]
        env = dict(os.environ, HARNESS_OFFLINE="1", HARNESS_CACHE=str(work / "cache"),
                   TORCH_HOME=str(work / "torch-home"), PYTHONPATH=str(REPO))
        env.pop("HARNESS_WEIGHTS_DIR", None)
        cmd = [sys.executable, "-m", "harness", "run", "--method", methods, "--dataset",
               "synthetic", "--runs-dir", str(work / "runs"), "--results-dir",
               str(work / "results"), "--quiet", "--allow-missing-weights",
               "--set", f"train.device={ctx.device}"]
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-3000:])
    try:
        t = measure(once, device="cpu", repeats=ctx.repeats, warmup=0, before=fresh)
    finally:
        fresh()
        shutil.rmtree(state["work"], ignore_errors=True)
    import dataclasses
    import resource
    # the run is a child process: its peak RSS (the largest child's), not this process's
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    t = dataclasses.replace(t, peak_memory_mib=child, peak_memory_kind="rss_peak_largest_child",
                            memory_before_mib=float("nan"))
    yield {"variant": methods, "parameters": {"methods": methods, "dataset": "synthetic"},
           "timing": t}
