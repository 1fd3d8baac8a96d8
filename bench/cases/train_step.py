"""train_step: one training step (G/E update then D update, through methods.base.run_phases, the
runner's step function) of each built-in method on synthetic rectangles scenes, fp32, VGG loss off
(no weights offline), each method in a fresh process. CPU size: 128x128, ngf = ndf = 32, batch 1
(--quick: 64x64, ngf = ndf = 8); CUDA: 256x256 at the official widths, batch 1."""
from __future__ import annotations

DESCRIPTION = "one G+D training step per method (images/s, peak memory)"
DEVICES = ("cpu", "cuda")
DEFAULT = True
METHODS = ("pix2pixhd", "spade", "ccfpse")


def config(ctx):
    if ctx.quick:
        return (64, 64), 1, {"ngf": 8, "ndf": 8}
    if ctx.device == "cuda":
        return (256, 256), 1, {}
    return (128, 128), 1, {"ngf": 32, "ndf": 32}


def run(ctx):
    from bench.isolate import run_isolated, timing_from
    size, batch, overrides = config(ctx)
    for method in METHODS:
        r = run_isolated("bench.train_variant:measure_step", method=method, size=size,
                         batch=batch, device=ctx.device, repeats=ctx.repeats, warmup=ctx.warmup,
                         overrides=overrides)
        yield {"variant": method, "parameters": {"size": list(size), "batch": batch,
                                                 **overrides, "precision": "fp32",
                                                 "vgg_loss": False},
               "timing": timing_from(r), **r}
