"""The learning-rate schedule: a pure function of the step (never an incremental update).

The official SPADE / pix2pixHD / CC-FPSE rule: keep the initial learning rate for ``niter``
epochs, then subtract ``lr0 / niter_decay`` at the end of every further epoch. Written as a
function of the 0-indexed epoch ``e`` the step falls in::

    factor(e) = 1 - max(0, e - niter) / niter_decay        (1 when niter_decay == 0)

so the last epoch (e = niter + niter_decay - 1) trains at lr0 / niter_decay, as in the official
code, and resuming anywhere (even inside the decay) gives the same learning rate as a straight
run - the SPADE-family code restarts from lr0 instead. Each param group's rate is
``initial_lr x factor``; ``initial_lr`` is recorded in the group the first time the runner sees it
(methods that rebuild an optimiser, like pix2pixHD after ``niter_fix_global``, get it recorded
again from the rate they build it with).
"""
from __future__ import annotations

import torch


def lr_factor(step: int, steps_per_epoch: int, niter: int, niter_decay: int) -> float:
    """Multiplier of the initial learning rate during 0-indexed ``step``."""
    if niter_decay <= 0:
        return 1.0
    epoch = step // max(1, steps_per_epoch)
    return max(0.0, 1.0 - max(0, epoch - niter) / niter_decay)


def total_steps(steps_per_epoch: int, niter: int, niter_decay: int, max_steps: int | None) -> int:
    """Optimisation steps of the whole run: (niter + niter_decay) epochs, capped by max_steps."""
    total = steps_per_epoch * (niter + niter_decay)
    if max_steps is None:
        return total
    # epochs_constant + epochs_decay == 0 is allowed with max_steps: then max_steps decides.
    return min(total, max_steps) if total > 0 else max_steps


def apply_lr(optimizer: torch.optim.Optimizer, factor: float) -> list[float]:
    """Set every param group's lr to initial_lr x factor; returns the rates set."""
    rates = []
    for group in optimizer.param_groups:
        if "initial_lr" not in group:
            group["initial_lr"] = group["lr"]
        group["lr"] = group["initial_lr"] * factor
        rates.append(group["lr"])
    return rates
