"""The segmenter contract used for mIoU / pixel accuracy.

A segmenter takes uint8 RGB images and returns class ids in an evaluation label space (e.g.
'cityscapes-trainid' = 19 classes) at a requested size. It owns its preprocessing (mean/std,
BGR, internal resizing), so the caller never needs to know how the original code fed it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from evaluators.weights import ResolvedWeights


class Segmenter(nn.Module):
    name: ClassVar[str] = ""
    label_space: ClassVar[str] = ""      # must equal the dataset's EvalLabelSpace.name
    num_classes: ClassVar[int] = 0

    def __init__(self) -> None:
        super().__init__()
        self.resolved_weights: list[ResolvedWeights] = []

    @torch.no_grad()
    def predict(self, images: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        """uint8 [N,3,H,W] RGB -> int64 [N, out_H, out_W] class ids (0..num_classes-1)."""
        raise NotImplementedError

    def weights_record(self) -> list[dict]:
        return [w.record() for w in self.resolved_weights]


@dataclass(frozen=True)
class SegmenterEntry:
    """A registered segmenter: how to build it and what identifies it in a protocol hash."""
    name: str
    label_space: str
    description: str
    build: Callable[..., Segmenter]            # build(weights=None, device='cpu', **options)
    identity: dict = field(default_factory=dict)  # weight specs, input policy, ... (hashed)
    options: dict[str, Any] = field(default_factory=dict)
