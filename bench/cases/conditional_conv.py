"""conv_cond: memory-lean vs unfold conditional depthwise convolution, forward + backward, batch 1,
at the sizes of CC-FPSE's two largest blocks (formerly bench/conditional_conv/bench.py; its
history stays in bench/conditional_conv/results.md)."""
from __future__ import annotations

DESCRIPTION = "CC-FPSE conditional depthwise conv, lean vs unfold (fwd+bwd, batch 1)"
DEVICES = ("cpu", "cuda")
DEFAULT = True
SIZES = {
    "up_2@256x256": (256, 128, 128),
    "up_3@256x256": (128, 256, 256),
    "up_2@512x256": (256, 128, 256),
    "up_3@512x256": (128, 256, 512),
}
QUICK = {"tiny@32x32": (16, 32, 32)}


def run(ctx):
    import torch

    from bench.measure import measure
    from methods.ccfpse.conditional_conv import IMPLEMENTATIONS as FUNCS

    sizes = QUICK if ctx.quick else (SIZES if ctx.device == "cuda" else dict(list(SIZES.items())[:2]))
    for name, (c, h, w) in sizes.items():
        for impl in ("lean", "unfold"):
            g = torch.Generator().manual_seed(0)
            x = torch.randn(1, c, h, w, generator=g).to(ctx.device).requires_grad_()
            k = torch.randn(1, 9 * c, h, w, generator=g).to(ctx.device).requires_grad_()
            grad = torch.randn(1, c, h, w, generator=g).to(ctx.device)

            def step():
                x.grad = k.grad = None
                FUNCS[impl](x, k).backward(grad)
            t = measure(step, device=ctx.device, repeats=ctx.repeats, warmup=ctx.warmup)
            yield {"variant": impl, "parameters": {"size": name, "channels": c, "height": h,
                                                   "width": w, "batch": 1, "dtype": "fp32"},
                   "timing": t}
            del x, k, grad
