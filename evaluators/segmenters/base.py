"""The segmenter contract used for mIoU / pixel accuracy.

A segmenter takes uint8 RGB images and returns class ids in an evaluation label space (e.g.
'cityscapes-trainid' = 19 classes) at a requested size. It owns its preprocessing (mean/std,
BGR, internal resizing), so the caller never needs to know how the original code fed it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from harness.core.weights import ResolvedWeights, WeightSpec


# SegmenterEntry.label_space of segmenters trained on the evaluated dataset itself: the built
# segmenter's label_space is then that dataset's (e.g. 'harness-trained').
DATASET_LABEL_SPACE = "dataset"


class Segmenter(nn.Module):
    name: ClassVar[str] = ""
    label_space: ClassVar[str] = ""      # must equal the dataset's EvalLabelSpace.name
    num_classes: ClassVar[int] = 0

    def __init__(self) -> None:
        super().__init__()
        self.resolved_weights: list[ResolvedWeights] = []
        self.config: dict[str, Any] = {}     # the options this instance was built with

    @torch.no_grad()
    def predict(self, images: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        """uint8 [N,3,H,W] RGB -> int64 [N, out_H, out_W] class ids (0..num_classes-1)."""
        raise NotImplementedError

    def weights_record(self) -> list[dict]:
        return [w.record() for w in self.resolved_weights]

    def identity(self) -> dict:
        """What determines this instance's predictions (for hashing): no local paths."""
        return {"name": self.name, "label_space": self.label_space,
                "num_classes": self.num_classes, "config": self.config,
                "weights": [{"file": w.spec.filename, "sha256": w.sha256}
                            for w in self.resolved_weights]}


@dataclass(frozen=True)
class SegmenterEntry:
    """A registered segmenter: how to build it and what identifies it in a protocol hash."""
    name: str
    label_space: str
    description: str
    build: Callable[..., Segmenter]            # build(weights=None, device='cpu', **options)
    identity: dict = field(default_factory=dict)  # weight specs, input policy, ... (hashed)
    options: dict[str, Any] = field(default_factory=dict)
    # The files build() resolves with its default options (checked up front by the preflight);
    # empty when there is none to fetch (harness-trained segmenters train on first use).
    weights: tuple[WeightSpec, ...] = ()
