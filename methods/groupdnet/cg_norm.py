"""CG-Norm, conditional group normalisation (GroupDNet's ``GROUP_SPADE``).

    out = ParamFreeNorm(x) * (1 + gamma) + beta,
    actv = ReLU(conv3x3_grouped(seg -> hidden)),  gamma / beta = conv3x3_grouped(actv -> norm_nc)

``seg`` is the full-resolution label input resized (nearest) to x. The first conv is always
grouped by class (each class's hidden units see only its own mask, and its edge map when edges
are interleaved); the hidden width and the grouping of the gamma / beta convs follow the
official per-dataset rules:

* ``cityscapes``: hidden = C * g; gamma / beta grouped by class (C groups), so every normalised
  width must be a multiple of C;
* ``ade20k`` (also every other dataset here): hidden = 2C when g divides C (g = C or 1), else
  C * g; gamma / beta grouped by the block's g.

With instance edges the label input has 2C channels ordered (mask_0, edge, mask_1, edge, ...)
(:func:`interleave_edges`), as the official Cityscapes generator builds it. No spectral norm here;
all convs have biases.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from methods.blocks.normalization import param_free_norm

RULES = ("ade20k", "cityscapes")


def hidden_width(rule: str, classes: int, groups: int) -> int:
    if rule == "cityscapes":
        return classes * groups
    if rule == "ade20k":
        return 2 * classes if classes % groups == 0 else classes * groups
    raise ValueError(f"unknown CG-Norm rule {rule!r} ({' | '.join(RULES)})")


def interleave_edges(semantics: torch.Tensor, classes: int) -> torch.Tensor:
    """[N, C + 1, H, W] (one-hot, edge last) -> [N, 2C, H, W] = (mask_c, edge) pairs."""
    if semantics.shape[1] != classes + 1:
        raise ValueError(f"expected {classes} class channels + 1 edge channel, got "
                         f"{semantics.shape[1]} channels")
    masks = semantics[:, :classes]
    edge = semantics[:, classes:].expand_as(masks)
    return torch.stack([masks, edge], dim=2).flatten(1, 2)


class CGNorm(nn.Module):
    def __init__(self, norm_nc: int, classes: int, groups: int, *, rule: str = "ade20k",
                 edges: bool = False, norm: str = "syncbatch", kernel_size: int = 3) -> None:
        super().__init__()
        hidden = hidden_width(rule, classes, groups)
        affine_groups = classes if rule == "cityscapes" else groups
        seg_nc = 2 * classes if edges else classes
        pad = kernel_size // 2
        self.param_free_norm = param_free_norm(norm, norm_nc)
        self.mlp_shared = nn.Sequential(
            nn.Conv2d(seg_nc, hidden, kernel_size, padding=pad, groups=classes), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, norm_nc, kernel_size, padding=pad, groups=affine_groups)
        self.mlp_beta = nn.Conv2d(hidden, norm_nc, kernel_size, padding=pad, groups=affine_groups)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        normalized = self.param_free_norm(x)
        actv = self.mlp_shared(F.interpolate(seg, size=x.shape[2:], mode="nearest"))
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)
