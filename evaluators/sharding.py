"""Split evaluation work across ranks and put the pieces back in dataset order.

Each rank takes every world_size-th index (round robin); per-image results (feature rows,
per-map diversity values) are gathered with their indices and re-assembled in the original
order, so a sharded evaluation computes exactly what one process computes; confusion matrices
are summed. The pure functions here are what the single-process tests exercise; the collective
wrappers call :mod:`harness.core.dist`.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from harness.core import dist as hdist
from harness.core.dist import DistInfo


def shard_indices(n: int, d: DistInfo | None) -> list[int]:
    """The indices of ``range(n)`` this rank processes."""
    d = d or DistInfo()
    return list(range(d.rank, n, d.world_size))


def merge_rows(parts: Sequence[tuple[Sequence[int], torch.Tensor]], n: int) -> torch.Tensor:
    """[(indices, rows [k, D])] from every rank -> rows [n, D] in index order."""
    parts = [(list(idx), rows) for idx, rows in parts]
    template = next((rows for _, rows in parts if rows.shape[0]), parts[0][1])
    out = torch.empty((n, *template.shape[1:]), dtype=template.dtype)
    seen = torch.zeros(n, dtype=torch.bool)
    for idx, rows in parts:
        if len(idx) != rows.shape[0]:
            raise ValueError(f"shard has {len(idx)} indices but {rows.shape[0]} rows")
        if idx:
            t = torch.tensor(idx)
            out[t] = rows.to(out.dtype)
            seen[t] = True
    if not bool(seen.all()):
        raise ValueError(f"shards cover {int(seen.sum())} of {n} items")
    return out


def merge_values(parts: Sequence[tuple[Sequence[int], Sequence[Any]]], n: int) -> list[Any]:
    """[(indices, values)] from every rank -> values in index order."""
    out: list[Any] = [None] * n
    filled = 0
    for idx, values in parts:
        for i, v in zip(idx, values):
            out[i] = v
            filled += 1
    if filled != n:
        raise ValueError(f"shards cover {filled} of {n} items")
    return out


def merge_confusions(parts: Sequence[torch.Tensor]) -> torch.Tensor:
    total = parts[0].clone()
    for p in parts[1:]:
        total += p
    return total


# --- collectives (no-ops in one process) --------------------------------------------------------
def _check(d: DistInfo | None) -> bool:
    if d is None or d.world_size <= 1:
        return False
    if hdist.info().world_size != d.world_size:
        raise RuntimeError(f"dist says world_size={d.world_size} but no process group of that "
                           "size is initialised (call harness.core.dist.init() under torchrun)")
    return True


def gather_rows(indices: Sequence[int], rows: torch.Tensor, n: int,
                d: DistInfo | None) -> torch.Tensor:
    if not _check(d):
        return merge_rows([(indices, rows.cpu())], n)
    return merge_rows(hdist.all_gather_object((list(indices), rows.cpu())), n)


def gather_values(indices: Sequence[int], values: Sequence[Any], n: int,
                  d: DistInfo | None) -> list[Any]:
    if not _check(d):
        return merge_values([(indices, values)], n)
    return merge_values(hdist.all_gather_object((list(indices), list(values))), n)


def reduce_confusion(cm: torch.Tensor, d: DistInfo | None) -> torch.Tensor:
    if not _check(d):
        return cm
    # all_gather_object rather than all_reduce: works with CPU tensors on NCCL and gloo alike.
    return merge_confusions(hdist.all_gather_object(cm.cpu()))


def broadcast(obj: Any, d: DistInfo | None) -> Any:
    if not _check(d):
        return obj
    return hdist.broadcast_object(obj)
