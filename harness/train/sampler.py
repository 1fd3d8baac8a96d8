"""Which dataset indices every rank trains on at every step: deterministic and resumable.

Epoch ``e`` uses one permutation of the dataset drawn from ``(seed, e)`` (the same on every
rank). Step ``s`` of the epoch takes the global batch ``perm[s*G:(s+1)*G]`` with
``G = batch_size x grad_accum x world_size``; rank ``r`` gets the contiguous slice
``[r*B:(r+1)*B]`` (``B = batch_size x grad_accum``). So N ranks together see exactly the batch
that one process with N times the batch sees, in the same order, and the position of a run is
just ``(epoch, step within the epoch)`` - nothing else to save or replay.

With ``drop_last`` the incomplete last global batch is dropped (the official behaviour);
otherwise the permutation is padded with its own beginning to a whole number of global batches,
like ``torch.utils.data.DistributedSampler``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch


class TooFewSamples(ValueError):
    pass


@dataclass(frozen=True)
class ResumableSampler:
    num_samples: int
    per_rank_batch: int            # batch_size x grad_accum
    world_size: int = 1
    rank: int = 0
    seed: int = 0
    drop_last: bool = True
    shuffle: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} outside world size {self.world_size}")
        if self.steps_per_epoch < 1:
            raise TooFewSamples(
                f"the training set has {self.num_samples} images, fewer than one global batch of "
                f"{self.global_batch} (batch_size x grad_accum = {self.per_rank_batch} per process "
                f"x {self.world_size} processes); lower train.batch_size / train.grad_accum, use "
                "fewer processes, or set train.drop_last=false")

    @property
    def global_batch(self) -> int:
        return self.per_rank_batch * self.world_size

    @property
    def steps_per_epoch(self) -> int:
        if self.drop_last:
            return self.num_samples // self.global_batch
        return math.ceil(self.num_samples / self.global_batch) if self.num_samples else 0

    def permutation(self, epoch: int) -> torch.Tensor:
        n = self.num_samples
        if not self.shuffle:
            perm = torch.arange(n)
        else:
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % (1 << 63))
            perm = torch.randperm(n, generator=g)
        need = self.steps_per_epoch * self.global_batch
        if need > n:  # pad (drop_last=False): repeat the permutation's beginning
            perm = torch.cat([perm] * math.ceil(need / n))
        return perm[:need]

    def batch_indices(self, epoch: int, step_in_epoch: int) -> list[int]:
        """This rank's dataset indices for one step."""
        perm = self.permutation(epoch)
        start = step_in_epoch * self.global_batch + self.rank * self.per_rank_batch
        return perm[start:start + self.per_rank_batch].tolist()

    def epoch_batches(self, epoch: int, start: int = 0) -> Iterator[list[int]]:
        """This rank's batches of ``epoch`` from step ``start`` on (resume mid-epoch)."""
        perm = self.permutation(epoch)
        for s in range(start, self.steps_per_epoch):
            begin = s * self.global_batch + self.rank * self.per_rank_batch
            yield perm[begin:begin + self.per_rank_batch].tolist()

    def position(self, step: int) -> dict[str, int]:
        """(epoch, step within the epoch) of global step ``step`` (what a checkpoint records)."""
        epoch, within = divmod(step, self.steps_per_epoch)
        return {"epoch": epoch, "step_in_epoch": within, "steps_per_epoch": self.steps_per_epoch,
                "global_batch": self.global_batch, "num_samples": self.num_samples,
                "seed": self.seed}


class BatchList(torch.utils.data.Sampler):
    """A batch sampler over a fixed list of index batches (for ``DataLoader(batch_sampler=)``)."""

    def __init__(self, batches: list[list[int]]) -> None:
        self.batches = batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)
