"""How the runner executes a method's phases: DDP wrappers, accumulation, precision, LR.

Installed on a method as ``method.policy``; ``methods.base.run_phases`` calls it. The method
keeps its raw networks in ``method.nets`` (so its state_dict keys never change); the policy
hands the phase's loss DDP-wrapped versions of the networks that phase trains.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Literal

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from methods.base import Method, Nets, Phase, StepPolicy
from harness.train.schedule import apply_lr

LOG = logging.getLogger("harness.train")

Precision = Literal["fp32", "bf16", "fp16"]
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class RunnerPolicy(StepPolicy):
    """Autocast (bf16 / fp16), one GradScaler per optimiser (fp16), DistributedDataParallel per
    trained network, ``no_sync`` for all but the last micro-batch, and the LR schedule."""

    def __init__(self, *, device: torch.device, precision: Precision = "fp32", grad_accum: int = 1,
                 world_size: int = 1, optimizer_names: tuple[str, ...] = (),
                 find_unused_parameters: bool = True) -> None:
        self.device = device
        self.precision = precision
        self.grad_accum = grad_accum
        self.world_size = world_size
        self.find_unused_parameters = find_unused_parameters
        self.lr_factor = 1.0                       # set by the trainer before every step
        self.last_lr: dict[str, float] = {}        # first group's rate per optimiser (logging)
        self._ddp: dict[str, tuple[tuple, nn.Module]] = {}
        self.scalers: dict[str, torch.amp.GradScaler] = {}
        if precision == "fp16":
            for name in optimizer_names:
                self.scaler(name)

    # precision -------------------------------------------------------------------------------
    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return _DTYPES.get(self.precision)

    def autocast(self) -> contextlib.AbstractContextManager:
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def scaler(self, optimizer: str) -> torch.amp.GradScaler | None:
        if self.precision != "fp16":
            return None
        if optimizer not in self.scalers:
            self.scalers[optimizer] = torch.amp.GradScaler(self.device.type)
        return self.scalers[optimizer]

    def scaler_states(self) -> dict[str, dict]:
        return {k: s.state_dict() for k, s in self.scalers.items()}

    def load_scaler_states(self, states: dict[str, dict]) -> None:
        for name, state in (states or {}).items():
            scaler = self.scaler(name)
            if scaler is not None and state:
                scaler.load_state_dict(state)

    # distributed -----------------------------------------------------------------------------
    def _wrapped(self, name: str, net: nn.Module) -> nn.Module:
        """The DDP wrapper of ``net``, built once - again only if the module or the set of
        trainable parameters changed (a method may freeze/unfreeze parameters)."""
        signature = (id(net), tuple(p.requires_grad for p in net.parameters()))
        cached = self._ddp.get(name)
        if cached is not None and cached[0] == signature:
            return cached[1]
        if not any(signature[1]):
            return net  # nothing to synchronise
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        wrapper = DistributedDataParallel(net, device_ids=device_ids,
                                          find_unused_parameters=self.find_unused_parameters)
        if cached is not None:
            LOG.info("rebuilt the DDP wrapper of %s (its trainable parameters changed)", name)
        self._ddp[name] = (signature, wrapper)
        return wrapper

    def nets_for(self, method: Method, phase: Phase) -> Nets:
        modules = dict(method.nets.items())
        if self.world_size > 1:
            for name in phase.networks:
                modules[name] = self._wrapped(name, method.nets[name])
        return Nets(modules)

    def micro_context(self, method: Method, phase: Phase, last: bool) -> contextlib.AbstractContextManager:
        if last or self.world_size == 1:
            return contextlib.nullcontext()
        stack = contextlib.ExitStack()
        for name in phase.networks:
            cached = self._ddp.get(name)
            if cached is not None and isinstance(cached[1], DistributedDataParallel):
                stack.enter_context(cached[1].no_sync())
        return stack

    # optimisation ----------------------------------------------------------------------------
    def backward(self, phase: Phase, loss: torch.Tensor) -> None:
        scaler = self.scaler(phase.optimizer)
        (scaler.scale(loss) if scaler is not None else loss).backward()

    def step(self, phase: Phase, optimizer: torch.optim.Optimizer) -> None:
        # Applied here, right before the update, so that optimisers a method rebuilds in
        # begin_step get the scheduled rate too.
        rates = apply_lr(optimizer, self.lr_factor)
        self.last_lr[phase.optimizer] = rates[0] if rates else 0.0
        scaler = self.scaler(phase.optimizer)
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)
            scaler.update()
