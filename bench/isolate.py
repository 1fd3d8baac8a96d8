"""Run one measured variant in a fresh interpreter, so its peak memory (RSS or CUDA) is its own
and not inherited from networks an earlier variant left in the process.

    python -m bench.isolate '{"fn": "bench.train_variant:measure_step", "kwargs": {...}}'

prints one JSON line: the Timing fields plus what the function added.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_isolated(fn: str, **kwargs) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "bench.isolate",
                           json.dumps({"fn": fn, "kwargs": kwargs})],
                          cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{fn}({kwargs}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def timing_from(result: dict):
    from bench.measure import Timing
    fields = ("median_s", "min_s", "max_s", "repeats", "warmup", "peak_memory_mib",
              "peak_memory_kind", "memory_before_mib")
    return Timing(*(result.pop(f) for f in fields),
                  cpu_median_s=result.pop("cpu_median_s", float("nan")))


if __name__ == "__main__":
    import importlib
    spec = json.loads(sys.argv[1])
    module, name = spec["fn"].split(":")
    timing, extra = getattr(importlib.import_module(module), name)(**spec["kwargs"])
    print(json.dumps({**timing.as_dict(), **extra}))
