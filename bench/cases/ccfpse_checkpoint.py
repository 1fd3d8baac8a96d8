"""ccfpse_checkpoint: peak memory of one CC-FPSE training step with and without activation
checkpointing (method.checkpoint_activations) at 256x256, ngf = ndf = 16, batch 1 and 2 (CPU:
peak RSS of a fresh process; CUDA: max allocated at the official widths, batch 1, 2, 4); --quick:
64x64, ngf = ndf = 8, batch 1. The per-image slope (batch 2 minus batch 1) says how many images a
memory budget holds: at the larger batch each variant also records ``per_image_mib`` (the slope)
and ``images_in_budget`` = floor((budget - intercept) / slope) for ``budget_mib`` (CPU: 16 GiB of
RSS; CUDA: 80 GB of allocated memory, the issue's "80 GB GPU"), a linear extrapolation that says
how many images per step that budget would hold with and without checkpointing."""
from __future__ import annotations

DESCRIPTION = "CC-FPSE peak memory per step with / without activation checkpointing"
DEVICES = ("cpu", "cuda")
DEFAULT = True


def run(ctx):
    from bench.isolate import run_isolated, timing_from
    if ctx.quick:
        size, widths, batches = (128, 128), {"ngf": 8, "ndf": 8}, (1,)
    elif ctx.device == "cuda":
        size, widths, batches = (256, 256), {}, (1, 2, 4)
    else:
        size, widths, batches = (256, 256), {"ngf": 16, "ndf": 16}, (1, 2)
    budget_mib = 80e9 / 2**20 if ctx.device == "cuda" else 16 * 1024
    peaks: dict[bool, dict[int, float]] = {False: {}, True: {}}
    for batch in batches:
        plain = None
        for on in (False, True):
            overrides = {**widths, "checkpoint_activations": on}
            r = run_isolated("bench.train_variant:measure_step", method="ccfpse", size=size,
                             batch=batch, device=ctx.device, repeats=ctx.repeats,
                             warmup=ctx.warmup, overrides=overrides)
            t = timing_from(r)
            extra = {}
            peaks[on][batch] = t.peak_memory_mib
            if len(peaks[on]) >= 2:
                (b0, m0), (b1, m1) = sorted(peaks[on].items())[0], sorted(peaks[on].items())[-1]
                slope = (m1 - m0) / (b1 - b0)
                intercept = m0 - slope * b0
                extra["per_image_mib"] = round(slope, 1)
                extra["budget_mib"] = round(budget_mib)
                extra["images_in_budget"] = (int((budget_mib - intercept) // slope)
                                             if slope > 0 else None)
            if plain is None:
                plain = t
            else:
                extra |= {"peak_memory_vs_plain": round(t.peak_memory_mib / plain.peak_memory_mib, 3),
                          "step_delta_memory_vs_plain": round(
                              (t.peak_memory_mib - t.memory_before_mib)
                              / max(plain.peak_memory_mib - plain.memory_before_mib, 1e-9), 3),
                          "time_vs_plain": round(t.median_s / plain.median_s, 3),
                          "cpu_time_vs_plain": round(t.cpu_median_s / plain.cpu_median_s, 3)}
            yield {"variant": "checkpointed" if on else "plain",
                   "parameters": {"size": list(size), "batch": batch, **overrides},
                   "timing": t, **r, **extra}
