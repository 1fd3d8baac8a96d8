"""One training-step variant, measured (called in a fresh process through bench.isolate)."""
from __future__ import annotations


def measure_step(method: str, size, batch: int, device: str, repeats: int, warmup: int,
                 overrides: dict | None = None, optimizer: str = "default",
                 channels_last: bool = False, precision: str = "fp32", compile: bool = False,
                 count_flops: bool = False):
    import torch

    from bench.measure import measure
    from bench.steps import (AutocastPolicy, build, scene_batch, set_optimizer, step_fn,
                             to_channels_last)
    size = tuple(size)
    m = build(method, size, device, **(overrides or {}))
    b = scene_batch(batch, size).to(device)
    if optimizer != "default":
        set_optimizer(m, optimizer)
    if channels_last:
        b = to_channels_last(m, b)
    if compile:
        m.nets[m.generator_name].forward = torch.compile(m.nets[m.generator_name].forward)
    policy = AutocastPolicy() if precision == "bf16" else None
    fn = step_fn(m, b, policy)
    extra = {}
    if count_flops:
        from torch.utils.flop_counter import FlopCounterMode
        fn()  # compile / allocate outside the count
        with FlopCounterMode(display=False) as counter:
            fn()
        extra["flops_per_step"] = counter.get_total_flops()
    t = measure(fn, device=device, repeats=repeats, warmup=warmup)
    extra["images_per_s"] = round(batch / t.median_s, 4)
    extra["parameters_million"] = round(sum(p.numel() for p in m.nets.parameters()) / 1e6, 3)
    return t, extra
