"""Parameter-free normalisation and the SPADE modulation layer (Park et al., CVPR 2019).

SPADE: x_hat = ParamFreeNorm(x); seg resized to x by nearest; a = ReLU(conv3x3(seg -> 128));
out = x_hat * (1 + conv3x3(a -> gamma)) + conv3x3(a -> beta). No spectral norm in the MLP.
'syncbatch' builds a plain BatchNorm2d(affine=False); the runner converts it to SyncBatchNorm when
training with several processes (same keys, same maths on one process).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def param_free_norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if kind in ("batch", "syncbatch"):
        return nn.BatchNorm2d(channels, affine=False)
    raise ValueError(f"unknown parameter-free norm {kind!r} (instance | batch | syncbatch)")


class SPADE(nn.Module):
    def __init__(self, norm_nc: int, label_nc: int, *, norm: str = "syncbatch", kernel_size: int = 3,
                 nhidden: int = 128) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.param_free_norm = param_free_norm(norm, norm_nc)
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, nhidden, kernel_size, padding=pad), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(nhidden, norm_nc, kernel_size, padding=pad)
        self.mlp_beta = nn.Conv2d(nhidden, norm_nc, kernel_size, padding=pad)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        normalized = self.param_free_norm(x)
        seg = F.interpolate(seg, size=x.shape[2:], mode="nearest")
        actv = self.mlp_shared(seg)
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)
