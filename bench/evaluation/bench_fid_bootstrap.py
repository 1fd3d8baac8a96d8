"""Time one FID bootstrap replicate: torch-fidelity's 2048x2048 eigen route vs the exact N x N
route evaluators.fid uses when N < 2048 (same value to ~1e-6 relative, tested).

    python bench/evaluation/bench_fid_bootstrap.py --n 50 500 --threads 1

Prints one JSON line per N (machine output on stdout); append them to results.jsonl.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from torch_fidelity.metric_fid import (fid_features_to_statistics,
                                           fid_statistics_to_metric)

    from evaluators.fid import _fid_against
    from harness.core.env import git_commit, package_versions

    rng = np.random.default_rng(0)
    for n in args.n:
        # pool3 features are non-negative and sparse-ish: |normal| ** 2 mimics that
        real = torch.from_numpy(np.abs(rng.normal(size=(n, 2048))).astype(np.float32) ** 2)
        gen = torch.from_numpy(np.abs(rng.normal(size=(n, 2048))).astype(np.float32) ** 2 * 1.1)
        stats_real = fid_features_to_statistics(real)
        idx = torch.from_numpy(rng.integers(0, n, size=n))
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            lib = fid_statistics_to_metric(fid_features_to_statistics(gen[idx]), stats_real,
                                           False)["frechet_inception_distance"]
        t_lib = (time.perf_counter() - t0) / args.repeats
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            fast = _fid_against(gen[idx], stats_real)
        t_fast = (time.perf_counter() - t0) / args.repeats
        print(json.dumps({
            "bench": "fid-bootstrap-replicate", "n": n, "dim": 2048, "threads": args.threads,
            "seconds_torch_fidelity": round(t_lib, 4), "seconds_low_rank": round(t_fast, 4),
            "relative_difference": abs(lib - fast) / abs(lib),
            "command": "python bench/evaluation/bench_fid_bootstrap.py "
                       f"--n {' '.join(map(str, args.n))} --threads {args.threads}",
            "machine": platform.platform(), "cpu": platform.processor() or platform.machine(),
            "versions": package_versions(), "git_commit": git_commit(),
            "date": dt.date.today().isoformat()}))


if __name__ == "__main__":
    main()
