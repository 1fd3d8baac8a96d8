"""Finite training state: no checkpoint holds a NaN or an infinity.

The non-finite-loss guard (:mod:`harness.train.guards`) only sees the losses. A weight, a
BatchNorm running statistic or an optimiser moment can overflow without the loss noticing (in
train mode BatchNorm normalises with the batch's statistics, so an infinite ``running_var``
trains on silently and only ruins evaluation). So every tensor of the method state - each
network's parameters *and* buffers, the optimiser states, the method's extra state - is checked
before a checkpoint is written (:func:`check_before_saving`) and again when one is read
(:func:`first_nonfinite`, used by :func:`harness.train.checkpoint.read`).

A non-finite state is never written, so 'latest' and 'best' keep naming the newest finite
checkpoint; training stops with :class:`NonFiniteStateError` naming the first bad tensor and the
step.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch

from harness.train.guards import TrainingError


class NonFiniteStateError(TrainingError):
    """Training stopped: the model state went non-finite; the last finite checkpoint is kept."""

    def __init__(self, message: str, *, step: int, tensor: str,
                 checkpoint: Path | None) -> None:
        super().__init__(message)
        self.step, self.tensor, self.checkpoint = step, tensor, checkpoint

    def __reduce__(self):  # picklable: rank 0 broadcasts it to the other ranks
        return (_rebuild, (str(self), self.step, self.tensor, self.checkpoint))


def _rebuild(message: str, step: int, tensor: str, checkpoint: Path | None) -> NonFiniteStateError:
    return NonFiniteStateError(message, step=step, tensor=tensor, checkpoint=checkpoint)


@dataclass(frozen=True)
class BadTensor:
    """The first non-finite tensor of a state: its name and what is wrong with it."""
    name: str
    shape: tuple[int, ...]
    nan: int
    inf: int

    def describe(self) -> str:
        n = 1
        for s in self.shape:
            n *= s
        kinds = [f"{self.nan} NaN" if self.nan else "", f"{self.inf} inf" if self.inf else ""]
        return (f"{self.name} (shape {list(self.shape)}: {' and '.join(k for k in kinds if k)} "
                f"of {n} values)")


def _named_arrays(state: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, tensor or numpy array) of every floating-point array in a nested state, in order."""
    if isinstance(state, torch.Tensor):
        if state.is_floating_point() or state.is_complex():
            yield path, state
        return
    if isinstance(state, dict):
        for k, v in state.items():
            yield from _named_arrays(v, path + (str(k),))
    elif isinstance(state, (list, tuple)):
        for i, v in enumerate(state):
            yield from _named_arrays(v, path + (str(i),))
    else:
        import numpy as np

        if isinstance(state, np.ndarray) and np.issubdtype(state.dtype, np.inexact):
            yield path, state


def _display(path: tuple[str, ...]) -> str:
    """'G.model.1.running_var' for a network tensor; 'optimizer G: state.3.exp_avg' for an
    optimiser moment; 'extra.<key>' for method extra state."""
    if len(path) >= 2 and path[0] == "networks":
        return ".".join(path[1:])
    if len(path) >= 2 and path[0] == "optimizers":
        return f"optimizer {path[1]}: {'.'.join(path[2:])}"
    return ".".join(path)


def _all_finite(t: torch.Tensor) -> torch.Tensor:
    """0-dim bool: every value finite. Min and max propagate NaN and show +-inf, and need no
    tensor-sized temporary (isfinite().all() allocates one and is ~20x slower on CPU)."""
    t = t.detach()
    if t.is_complex():
        t = torch.view_as_real(t)
    lo, hi = torch.aminmax(t)
    return torch.isfinite(lo) & torch.isfinite(hi)


def first_nonfinite(method_state: dict) -> BadTensor | None:
    """The first non-finite tensor of a method state (``Method.state_dict()``), or None.

    One device synchronisation per device, not per tensor: the per-tensor verdicts are stacked
    and fetched together; only a failing state is inspected further.
    """
    import numpy as np

    named = list(_named_arrays(method_state))
    verdicts: list[bool | None] = [None] * len(named)
    by_device: dict[torch.device, list[int]] = {}
    for i, (_, a) in enumerate(named):
        if isinstance(a, np.ndarray):
            verdicts[i] = bool(np.isfinite(a).all())
        elif a.numel() == 0:
            verdicts[i] = True
        else:
            by_device.setdefault(a.device, []).append(i)
    for indices in by_device.values():
        ok = torch.stack([_all_finite(named[i][1]) for i in indices]).cpu()
        for i, v in zip(indices, ok.tolist()):
            verdicts[i] = bool(v)
    for (path, a), ok in zip(named, verdicts):
        if ok:
            continue
        if isinstance(a, np.ndarray):
            nan, inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
        else:
            t = a.detach()
            nan, inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
        return BadTensor(_display(path), tuple(a.shape), nan, inf)
    return None


def check_before_saving(method_state: dict, *, step: int, last: tuple[Path, int] | None,
                        precision: str) -> NonFiniteStateError | None:
    """The error that stops training if ``method_state`` (about to be saved at ``step``) is not
    finite; None when it is. ``last``: the newest checkpoint written or loaded (path, step)."""
    bad = first_nonfinite(method_state)
    if bad is None:
        return None
    if last is not None:
        kept = (f"the newest finite checkpoint {last[0]} (step {last[1]}) stays 'latest'; running "
                "the same command again resumes from it")
    else:
        kept = ("no checkpoint was written before (train.checkpoint_every sets how often one is "
                "written); running the command again starts from the beginning")
    hint = "a lower learning rate"
    if precision == "fp16":
        hint += " or train.precision=bf16 / fp32"
    message = (f"training stopped: the model state is not finite at step {step}, so it was not "
               f"saved: first non-finite tensor {bad.describe()}; {kept}. The losses were finite "
               f"until then (a weight, buffer or optimiser moment overflowed); try {hint}")
    return NonFiniteStateError(message, step=step, tensor=bad.name,
                               checkpoint=last[0] if last else None)
