"""Weight initialisation of the official code bases.

SPADE family (SPADE, CC-FPSE, SMIS): ``init_type='xavier'`` with ``init_variance=0.02`` used as the
xavier *gain*; conv / linear biases 0; affine BatchNorm weight ~ N(1, 0.02), bias 0.
pix2pixHD: conv weights ~ N(0, 0.02) (biases keep PyTorch's default); BatchNorm as above.
Spectral-normalised layers are initialised through ``weight_orig``.
"""
from __future__ import annotations

import torch
from torch import nn


def _weight(m: nn.Module) -> torch.Tensor | None:
    w = getattr(m, "weight_orig", None)
    if w is None:
        w = getattr(m, "weight", None)
    return w if isinstance(w, torch.Tensor) else None


@torch.no_grad()
def init_weights(module: nn.Module, kind: str = "xavier", gain: float = 0.02) -> nn.Module:
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            if m.weight is not None:
                nn.init.normal_(m.weight, 1.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            w = _weight(m)
            if w is None:
                continue
            if kind == "xavier":
                nn.init.xavier_normal_(w, gain=gain)
            elif kind == "normal":
                nn.init.normal_(w, 0.0, gain)
            elif kind == "kaiming":
                nn.init.kaiming_normal_(w, a=0, mode="fan_in")
            elif kind == "orthogonal":
                nn.init.orthogonal_(w, gain=gain)
            else:
                raise ValueError(f"unknown init kind {kind!r}")
            if kind != "normal" and m.bias is not None:
                nn.init.zeros_(m.bias)
    return module
