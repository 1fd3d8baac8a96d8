"""One training step (every phase: G/E update then D update) of a built-in method, in process,
through methods.base.run_phases (the runner's own step function) with the plain fp32 policy,
plus the levers the cases compare (optimizer implementation, channels_last)."""
from __future__ import annotations

import dataclasses

import torch

from harness.core.data.base import Batch, DatasetInfo

NO_VGG = {"pix2pixhd": {"lambda_vgg": 0.0}, "spade": {"lambda_vgg": 0.0},
          "ccfpse": {"vgg_loss": False}, "groupdnet": {"lambda_vgg": 0.0}}


def info(size: tuple[int, int], label_nc: int = 8) -> DatasetInfo:
    return DatasetInfo("bench", label_nc, False, True, tuple(f"c{i}" for i in range(label_nc)),
                       tuple(size))


def scene_batch(n: int, size: tuple[int, int], label_nc: int = 8, seed: int = 0) -> Batch:
    """Random rectangles of classes on a background; the image paints each class a colour."""
    from harness.core.data.edges import instance_edges
    g = torch.Generator().manual_seed(seed)
    h, w = size
    label = torch.zeros(n, h, w, dtype=torch.long)
    instance = torch.zeros(n, h, w, dtype=torch.long)
    for i in range(n):
        for r in range(4):
            cls = int(torch.randint(1, label_nc, (1,), generator=g))
            y0, x0 = int(torch.randint(0, h // 2, (1,), generator=g)), int(torch.randint(0, w // 2, (1,), generator=g))
            label[i, y0:y0 + h // 3, x0:x0 + w // 3] = cls
            instance[i, y0:y0 + h // 3, x0:x0 + w // 3] = r + 1
    colours = torch.rand(label_nc, 3, generator=g) * 2 - 1
    image = colours[label].permute(0, 3, 1, 2).contiguous()
    edge = instance_edges(instance)
    return Batch(label, image, [f"k{i}" for i in range(n)], instance, edge, torch.arange(n))


def build(method: str, size: tuple[int, int], device: str = "cpu", **overrides):
    from methods import METHODS
    cls = METHODS.get(method)
    cfg = dataclasses.replace(cls.Config(), **{**NO_VGG.get(method, {}), **overrides})
    torch.manual_seed(0)
    m = cls(cfg, info(size))
    m.nets.to(device)
    m.aux.to(device)
    return m


def set_optimizer(method, kind: str) -> None:
    """Rebuild every Adam with the same parameters and hyper-parameters; ``kind``: 'default'
    (torch's choice: for-loop on CPU, foreach on CUDA), 'foreach', 'fused' or 'forloop'."""
    flags = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True},
             "forloop": {"foreach": False}}[kind]
    new = {}
    for name, opt in method.optimizers().items():
        groups = [{k: v for k, v in g.items() if k not in ("foreach", "fused")}
                  for g in opt.param_groups]
        new[name] = type(opt)(groups, **flags)
    method._optimizers.clear()
    method._optimizers.update(new)


def to_channels_last(method, batch: Batch) -> Batch:
    method.nets.to(memory_format=torch.channels_last)
    batch.image = batch.image.contiguous(memory_format=torch.channels_last)
    if batch.edge is not None:
        batch.edge = batch.edge.contiguous(memory_format=torch.channels_last)
    return batch


def step_fn(method, batch: Batch, policy=None):
    from methods.base import StepPolicy, run_phases
    policy = policy or StepPolicy()
    state = {"step": 0}

    def step():
        state["step"] += 1
        return run_phases(method, batch, state["step"], policy)
    return step


class AutocastPolicy:
    """bf16 autocast around each phase's loss (CUDA cases)."""

    def __init__(self, dtype=torch.bfloat16) -> None:
        from methods.base import StepPolicy
        self._base = StepPolicy()
        self.grad_accum = 1
        self.dtype = dtype

    def nets_for(self, method, phase):
        return self._base.nets_for(method, phase)

    def autocast(self):
        return torch.autocast("cuda", dtype=self.dtype)

    def micro_context(self, method, phase, last):
        return self._base.micro_context(method, phase, last)

    def backward(self, phase, loss):
        loss.backward()

    def step(self, phase, optimizer):
        optimizer.step()
