"""fid_bootstrap: one FID bootstrap replicate, torch-fidelity's 2048x2048 eigen route vs the exact
N x N route evaluators.fid uses when N < 2048 (formerly bench/evaluation/bench_fid_bootstrap.py;
its history stays in bench/evaluation/results.jsonl)."""
from __future__ import annotations

DESCRIPTION = "FID of one bootstrap replicate: torch-fidelity route vs the low-rank route"
DEVICES = ("cpu",)
DEFAULT = True


def run(ctx):
    import numpy as np
    import torch
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    from bench.measure import measure
    from evaluators.fid import _fid_against

    rng = np.random.default_rng(0)
    for n in ([50] if ctx.quick else [50, 500]):
        # pool3 features are non-negative and sparse-ish: |normal| ** 2 mimics that
        real = torch.from_numpy(np.abs(rng.normal(size=(n, 2048))).astype(np.float32) ** 2)
        gen = torch.from_numpy(np.abs(rng.normal(size=(n, 2048))).astype(np.float32) ** 2 * 1.1)
        stats_real = fid_features_to_statistics(real)
        idx = torch.from_numpy(rng.integers(0, n, size=n))
        out = {}

        def lib():
            out["lib"] = fid_statistics_to_metric(fid_features_to_statistics(gen[idx]), stats_real,
                                                  False)["frechet_inception_distance"]

        def fast():
            out["fast"] = _fid_against(gen[idx], stats_real)
        t_lib = measure(lib, repeats=ctx.repeats, warmup=ctx.warmup)
        t_fast = measure(fast, repeats=ctx.repeats, warmup=ctx.warmup)
        params = {"n": n, "dim": 2048}
        rel = abs(out["lib"] - out["fast"]) / abs(out["lib"])
        yield {"variant": "torch_fidelity", "parameters": params, "timing": t_lib}
        yield {"variant": "low_rank", "parameters": params, "timing": t_fast,
               "relative_difference": rel, "speedup_vs_torch_fidelity":
               round(t_lib.median_s / t_fast.median_s, 3)}
