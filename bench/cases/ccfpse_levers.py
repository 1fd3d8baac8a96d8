"""ccfpse_levers: CPU levers on the CC-FPSE training step (128x128, ngf = ndf = 32, batch 1; --quick
64x64, ngf = ndf = 8), each variant in a fresh process on the same weights and batch:
baseline (torch's default Adam: for-loop on CPU), foreach Adam, fused Adam, channels_last
(networks and batch), activation checkpointing, batched weight-prediction heads. Frozen networks already get no gradient in each
phase (methods.base.frozen_except sets requires_grad=False on the networks a phase does not
train), so that lever is the baseline. The GPU levers (bf16, torch.compile) are the gpu_levers
case (--device cuda)."""
from __future__ import annotations

DESCRIPTION = ("CC-FPSE step levers on CPU: foreach/fused Adam, channels_last, checkpointing, "
               "batched heads")
DEVICES = ("cpu",)
DEFAULT = True
VARIANTS = {
    "baseline": {},
    "adam_foreach": {"optimizer": "foreach"},
    "adam_fused": {"optimizer": "fused"},
    "channels_last": {"channels_last": True},
    "checkpoint_activations": {"overrides": {"checkpoint_activations": True}},
    # one first convolution for the four weight-prediction heads (and the SPADE shortcut's MLP);
    # the in-process interleaved comparison is the ccfpse_heads case
    "batched_heads": {"overrides": {"batched_heads": True}},
}


def run(ctx):
    from bench.isolate import run_isolated, timing_from
    size, widths = ((64, 64), {"ngf": 8, "ndf": 8}) if ctx.quick else ((128, 128), {"ngf": 32, "ndf": 32})
    base = None
    for name, lever in VARIANTS.items():
        overrides = {**widths, **lever.get("overrides", {})}
        kwargs = {k: v for k, v in lever.items() if k != "overrides"}
        r = run_isolated("bench.train_variant:measure_step", method="ccfpse", size=size, batch=1,
                         device=ctx.device, repeats=ctx.repeats, warmup=ctx.warmup,
                         overrides=overrides, **kwargs)
        t = timing_from(r)
        base = base or t
        yield {"variant": name, "parameters": {"size": list(size), "batch": 1, **overrides,
                                               **kwargs},
               "timing": t, **r, "speedup_vs_baseline": round(base.median_s / t.median_s, 3),
               "peak_memory_vs_baseline": round(t.peak_memory_mib / base.peak_memory_mib, 3)}
