"""gpu_levers (--device cuda only): per method (spade, ccfpse) at 256x256 and 512x256, official
widths, batch 1, VGG off: fp32, bf16 autocast, bf16 + channels_last, bf16 + fused Adam,
bf16 + torch.compile of the generator; images/s, CUDA max allocated, and the fraction of the
GPU's dense bf16 peak reached (FLOPs of one step counted by torch.utils.flop_counter).
Never run in this project yet: no GPU was lent (see bench/README.md)."""
from __future__ import annotations

DESCRIPTION = "GPU levers: bf16, channels_last, fused Adam, torch.compile (+ fraction of peak)"
DEVICES = ("cuda",)
DEFAULT = True
# Dense bf16 tensor-core peak, FLOP/s, from the vendors' data sheets (no sparsity).
BF16_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}
VARIANTS = {
    "fp32": {},
    "bf16": {"precision": "bf16"},
    "bf16_channels_last": {"precision": "bf16", "channels_last": True},
    "bf16_fused_adam": {"precision": "bf16", "optimizer": "fused"},
    "bf16_compile": {"precision": "bf16", "compile": True},
}


def peak_flops(name: str) -> float | None:
    return next((v for k, v in BF16_PEAK.items() if k in name), None)


def run(ctx):
    import torch

    from bench.isolate import run_isolated, timing_from
    peak = peak_flops(torch.cuda.get_device_name())
    sizes = [(256, 256)] if ctx.quick else [(256, 256), (256, 512)]
    for method in ("spade", "ccfpse"):
        for size in sizes:
            overrides = {"ngf": 8, "ndf": 8} if ctx.quick else {}
            if method == "ccfpse" and size == (256, 512):
                overrides["num_upsampling_layers"] = "more"  # Cityscapes' schedule
            for name, lever in VARIANTS.items():
                r = run_isolated("bench.train_variant:measure_step", method=method, size=size,
                                 batch=1, device="cuda", repeats=ctx.repeats, warmup=ctx.warmup + 2,
                                 overrides=overrides, count_flops=not lever.get("compile"), **lever)
                t = timing_from(r)
                flops = r.get("flops_per_step")
                frac = round(flops / t.median_s / peak, 4) if flops and peak else None
                yield {"variant": f"{method}/{name}", "parameters": {
                    "method": method, "size": list(size), "batch": 1, **overrides, **lever},
                       "timing": t, **r, "fraction_of_bf16_peak": frac}
