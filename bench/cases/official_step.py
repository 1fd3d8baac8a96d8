"""official_step: one training step (G/E update, then D update) of the harness against the
OFFICIAL code at the same configuration, CC-FPSE (xh-liu/CC-FPSE) and SPADE (NVlabs/SPADE), on
the same inputs and the same weights (the official networks' seeded initialisation, saved as
official checkpoints and loaded through the harness's importer; generator outputs and the first
step's losses are checked equal before timing). CPU size: 128x128, ngf = ndf = 32, batch 1, fp32,
VGG loss off on both sides, 1 thread (--quick: 64x64, the same widths).

Time: both sides in ONE process, steps interleaved (official, harness, harness, official, ...)
after warm-up, so the shared machine's load hits both alike; ``speedup_vs_official`` = official
median / harness median. Memory: each side alone in a fresh process (peak RSS over its measured
steps, bench/memory.py); ``peak_memory_vs_official`` = harness peak / official peak.

The official code is never in this repository (non-commercial licences): name private checkouts
with BENCH_OFFICIAL_CCFPSE / BENCH_OFFICIAL_SPADE (see bench/README.md); the runtime
substitutions that let it run on a CPU with current PyTorch are listed in every record
(``official_patches``)."""
from __future__ import annotations

import sys

DESCRIPTION = ("training step vs the official CC-FPSE / SPADE code, same weights and inputs "
               "(needs BENCH_OFFICIAL_CCFPSE / BENCH_OFFICIAL_SPADE)")
DEVICES = ("cpu",)
DEFAULT = False   # needs a private checkout of the official code
METHODS = ("ccfpse", "spade")
THREADS = 1


def config(ctx):
    widths = {"ngf": 32, "ndf": 32}
    return ((64, 64) if ctx.quick else (128, 128)), 1, widths


def available() -> list[str]:
    """The methods whose official checkout is named; one clear error when none is."""
    import os

    from bench.official_step import ENV, OfficialCodeMissing, how_to_get
    found = [m for m in METHODS if os.environ.get(ENV[m])]
    if not found:
        raise OfficialCodeMissing("official_step compares against the official code, which is "
                                  "not part of this repository; for each method to compare,\n"
                                  + "\n".join(how_to_get(m) for m in METHODS))
    for m in METHODS:
        if m not in found:
            print(f"bench: official_step: {ENV[m]} is not set; {m} skipped", file=sys.stderr)
    return found


def run(ctx):
    import tempfile

    from bench.isolate import run_isolated, timing_from
    from bench.measure import Timing
    from bench.official_step import (COMMON_NOTES, PATCHES, REPOS, _loadavg, official_root)
    size, batch, widths = config(ctx)
    for method in available():
        official_root(method)  # a wrong path fails here, before minutes of work
        common = dict(method=method, size=list(size), batch=batch, widths=widths,
                      repeats=ctx.repeats, warmup=ctx.warmup, threads=THREADS)
        load_start = _loadavg()
        with tempfile.TemporaryDirectory(prefix=f"bench-official-{method}-") as tmp:
            print(f"bench: official_step {method}: both sides, interleaved ...", file=sys.stderr,
                  flush=True)
            c = run_isolated("bench.official_step:compare", checkpoint_dir=tmp, **common)
            mem = {}
            for side in ("official", "harness"):
                print(f"bench: official_step {method}: {side} alone (peak RSS) ...",
                      file=sys.stderr, flush=True)
                mem[side] = run_isolated("bench.official_step:memory", side=side,
                                         checkpoint_dir=tmp, **common)
        load_end = _loadavg()
        harness_t = timing_from(c)
        official_d = c.pop("official")
        official_t = Timing(*(official_d[f] for f in (
            "median_s", "min_s", "max_s", "repeats", "warmup", "peak_memory_mib",
            "peak_memory_kind", "memory_before_mib")))
        sep = {side: timing_from(dict(r)) for side, r in mem.items()}
        params = {"method": method, "size": list(size), "batch": batch, **widths,
                  "precision": "fp32", "vgg_loss": False, "threads": THREADS,
                  **({"use_vae": True} if method == "ccfpse" else {})}
        shared = {"official_repo": REPOS[method], "official_commit": c["official_commit"],
                  "official_patches": PATCHES[method], "notes": COMMON_NOTES,
                  "time_from": "one process, interleaved steps",
                  "memory_from": "a fresh process per side (peak RSS over its measured steps)",
                  "loadavg_start": load_start, "loadavg_end": load_end}
        records = {}
        for side, t in (("official", official_t), ("harness", harness_t)):
            m = sep[side]
            records[side] = {
                "variant": f"{method}_{side}", "parameters": params,
                "timing": Timing(t.median_s, t.min_s, t.max_s, t.repeats, t.warmup,
                                 m.peak_memory_mib, m.peak_memory_kind, m.memory_before_mib),
                "images_per_s": round(batch / t.median_s, 4),
                "separate_process_median_s": round(m.median_s, 4),
                "step_growth_mib": mem[side]["step_growth_mib"], **shared}
        h, o = records["harness"], records["official"]
        h.update({
            "speedup_vs_official": round(official_t.median_s / harness_t.median_s, 3),
            "pairwise_speedup_median": c["pairwise_speedup_median"],
            "pairwise_speedup_range": [c["pairwise_speedup_min"], c["pairwise_speedup_max"]],
            "separate_process_speedup": round(sep["official"].median_s / sep["harness"].median_s,
                                              3),
            "peak_memory_vs_official": round(sep["harness"].peak_memory_mib
                                             / sep["official"].peak_memory_mib, 3),
            "step_growth_vs_official": round(h["step_growth_mib"] / o["step_growth_mib"], 3)
            if o["step_growth_mib"] > 0 else None,
            "checks": {k: c[k] for k in (
                "generator_max_abs_diff", "generator_max_abs_diff_after_first_step",
                "first_step_loss_max_abs_diff", "first_step_losses_official",
                "first_step_losses_harness", "import_report", "parameters_million_official",
                "parameters_million_harness")},
        })
        yield o
        yield h
