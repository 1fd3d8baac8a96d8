"""The SPADE / CC-FPSE image encoder for the VAE style code (``ConvEncoder``).

Input resized bilinearly to ``input_size`` (official: 256) -> stride-2 3x3 convs with spectral
norm and InstanceNorm (no bias), LeakyReLU(0.2) between layers and after the last -> flatten ->
two linear heads (mu, logvar) of ``z_dim``. Officially 6 convs 3-64-128-256-512-512-512 on
256x256 (4x4x512 = 8192 features, 10,463,424 parameters). ``input_size`` smaller than 256 uses
log2(input_size / 4) convs so tiny configurations keep a 4x4 grid (the official code crashes
below 256).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from methods.blocks.spectral import drop_bias, spectral


class ConvEncoder(nn.Module):
    def __init__(self, ndf: int = 64, z_dim: int = 256, input_size: int = 256) -> None:
        super().__init__()
        n_layers = int(math.log2(input_size // 4))
        if input_size < 8 or 2 ** n_layers * 4 != input_size:
            raise ValueError(f"encoder input_size must be 4 * 2^k >= 8, got {input_size}")
        n_layers = min(n_layers, 6)
        self.input_size = input_size
        chans = [3] + [ndf * min(2 ** i, 8) for i in range(n_layers)]
        for i in range(n_layers):
            conv = drop_bias(spectral(nn.Conv2d(chans[i], chans[i + 1], 3, stride=2, padding=1)))
            self.add_module(f"layer{i + 1}", nn.Sequential(conv, nn.InstanceNorm2d(chans[i + 1], affine=False)))
        self.n_layers = n_layers
        self.grid = input_size // 2 ** n_layers
        flat = chans[-1] * self.grid * self.grid
        self.fc_mu = nn.Linear(flat, z_dim)
        self.fc_var = nn.Linear(flat, z_dim)
        self.actvn = nn.LeakyReLU(0.2, False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape[2] != self.input_size or x.shape[3] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                              align_corners=False)
        for i in range(self.n_layers):
            x = getattr(self, f"layer{i + 1}")(x if i == 0 else self.actvn(x))
        x = self.actvn(x).flatten(1)
        return self.fc_mu(x), self.fc_var(x)
