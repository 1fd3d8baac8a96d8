"""ccfpse_heads: CC-FPSE with the weight-prediction heads separate vs batched
(method.batched_heads), interleaved in ONE process on the same weights and inputs, so that the
load of a shared machine hits both sides alike. Two pairs:

- ``G_*``: the generator's forward + backward (train mode, fixed z and layout), the part the
  lever touches;
- ``step_*``: one whole training step (G/E update then D update, methods.base.run_phases).

Each repeat runs plain then batched, or batched then plain (alternating, so neither side always
runs second); the median of the per-repeat ratios (``time_vs_plain`` = batched / plain) is the
number to read. CPU: 128x128, ngf = ndf = 32, batch 1 (--quick: 64x64, ngf = ndf = 8); CUDA:
256x256 at the official widths. Peak memory is the process's over both sides (in-process)."""
from __future__ import annotations

import os
import statistics
import time

DESCRIPTION = "CC-FPSE heads separate vs batched (method.batched_heads), interleaved in-process"
DEVICES = ("cpu", "cuda")
DEFAULT = True


def _loadavg() -> str | None:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return None


def _config(ctx):
    if ctx.quick:
        return (64, 64), {"ngf": 8, "ndf": 8}
    if ctx.device == "cuda":
        return (256, 256), {}
    return (128, 128), {"ngf": 32, "ndf": 32}


def _generator_pass(method, batch, device):
    import torch
    G = method.nets["G"]
    seg = method.semantics(batch.label, batch.edge, batch.instance)
    z = torch.randn(seg.shape[0], method.cfg.z_dim, generator=torch.Generator().manual_seed(5)).to(device)
    weight = torch.randn((seg.shape[0], 3, *seg.shape[2:]),
                         generator=torch.Generator().manual_seed(6)).to(device)
    G.train()

    def run():
        for p in G.parameters():
            p.grad = None
        (G(seg, z) * weight).sum().backward()
    return run


def _interleaved(fns: dict, ctx):
    """Alternating-order timing of the two callables; per-side Timing and per-repeat ratios."""
    import torch

    from bench import memory
    from bench.measure import Timing
    names = list(fns)
    for _ in range(ctx.warmup):
        for name in names:
            fns[name]()
    before = memory.current_mib(ctx.device)
    kind = memory.reset_peak(ctx.device)
    times = {name: [] for name in names}
    for i in range(ctx.repeats):
        for name in (names if i % 2 == 0 else names[::-1]):
            if ctx.device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fns[name]()
            if ctx.device == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t0)
    peak = memory.peak_mib(ctx.device)
    timings = {n: Timing(statistics.median(t), min(t), max(t), ctx.repeats, ctx.warmup, peak,
                         kind + "_both_sides", before) for n, t in times.items()}
    ratios = [b / a for a, b in zip(times[names[0]], times[names[1]])]
    return timings, ratios


def run(ctx):
    import torch

    from bench.steps import build, scene_batch, step_fn
    size, widths = _config(ctx)
    methods = {on: build("ccfpse", size, ctx.device, batched_heads=on, **widths)
               for on in (False, True)}
    methods[True].nets.load_state_dict(methods[False].nets.state_dict())
    batch = scene_batch(1, size).to(ctx.device)
    threads = torch.get_num_threads()
    for part, make in (("G", lambda m: _generator_pass(m, batch, ctx.device)),
                       ("step", lambda m: step_fn(m, batch))):
        load_before = _loadavg()
        fns = {"plain": make(methods[False]), "batched": make(methods[True])}
        timings, ratios = _interleaved(fns, ctx)
        load_after = _loadavg()
        what = ("generator forward + backward" if part == "G"
                else "training step (G/E then D update)")
        for name, t in timings.items():
            extra = {}
            if name == "batched":
                extra = {"time_vs_plain": round(statistics.median(ratios), 3),
                         "time_vs_plain_per_repeat": [round(r, 3) for r in ratios]}
            yield {"variant": f"{part}_{name}",
                   "parameters": {"size": list(size), "batch": 1, **widths, "measured": what,
                                  "batched_heads": name == "batched", "interleaved": True,
                                  "torch_threads": threads},
                   "timing": t, "images_per_s": round(1 / t.median_s, 4),
                   "loadavg_before": load_before, "loadavg_after": load_after,
                   "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), **extra}
