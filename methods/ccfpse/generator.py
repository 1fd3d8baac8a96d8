"""The CC-FPSE generator (official ``CondConvGenerator``), read top to bottom like the paper's figure.

1. Latent input at 1/2^U of the output size (U = 5 upsamplings 'normal', 6 'more'):
   VAE: Linear(z 256 -> 16nf * sh * sw) reshaped to [16nf, sh, sw]; deterministic: Conv3x3 on the
   nearest-downsampled one-hot map.
2. The label feature pyramid (:mod:`methods.ccfpse.label_pyramid`): one 64-channel map per
   generator resolution.
3. Seven conditional-convolution blocks on the SPADE skeleton, channels
   16nf, 16nf, 16nf, 8nf, 4nf, 2nf, nf, nearest x2 upsampling between them; each block is
   conditioned on [one-hot resized to its resolution, pyramid map of its resolution].
4. LeakyReLU(0.2) -> Conv3x3(nf -> 3) -> tanh.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from methods.ccfpse.cc_block import ConditionalConvBlock
from methods.ccfpse.label_pyramid import LEVELS, LabelFeaturePyramid

# A x2 upsampling precedes every block but head_0, and G_middle_1 only in the 'more' schedule.
BLOCKS = ("head_0", "G_middle_0", "G_middle_1", "up_0", "up_1", "up_2", "up_3")


def num_upsamplings(schedule: str) -> int:
    if schedule not in LEVELS:
        raise ValueError(f"num_upsampling_layers must be one of {sorted(LEVELS)}, got {schedule!r}")
    return LEVELS[schedule] - 1


def latent_size(image_size: tuple[int, int], schedule: str) -> tuple[int, int]:
    """(sh, sw) of the first feature map; the image size must be a multiple of 2^U."""
    h, w = image_size
    factor = 2 ** num_upsamplings(schedule)
    if h % factor or w % factor or h < factor or w < factor:
        raise ValueError(f"image size {h}x{w} (HxW) must be a positive multiple of {factor} for "
                         f"the '{schedule}' upsampling schedule")
    return h // factor, w // factor


class CondConvGenerator(nn.Module):
    def __init__(self, semantic_nc: int, image_size: tuple[int, int], *, ngf: int = 64,
                 z_dim: int = 256, use_vae: bool = True, num_upsampling_layers: str = "normal",
                 hidden: int = 128, conditional_conv: str = "lean",
                 checkpoint_activations: bool = False, batched_heads: bool = False) -> None:
        super().__init__()
        nf = ngf
        self.use_vae, self.z_dim, self.ngf = use_vae, z_dim, ngf
        self.schedule = num_upsampling_layers
        self.sh, self.sw = latent_size(image_size, num_upsampling_layers)

        if use_vae:
            self.fc = nn.Linear(z_dim, 16 * nf * self.sh * self.sw)
        else:
            self.fc = nn.Conv2d(semantic_nc, 16 * nf, 3, padding=1)

        self.label_pyramid = LabelFeaturePyramid(semantic_nc, nf, LEVELS[num_upsampling_layers])

        cond_nc = semantic_nc + nf
        channels = (16 * nf, 16 * nf, 16 * nf, 16 * nf, 8 * nf, 4 * nf, 2 * nf, nf)
        for name, fin, fout in zip(BLOCKS, channels[:-1], channels[1:]):
            self.add_module(name, ConditionalConvBlock(fin, fout, cond_nc, hidden=hidden,
                                                       implementation=conditional_conv,
                                                       checkpoint_activations=checkpoint_activations,
                                                       batched_heads=batched_heads))
        self.conv_img = nn.Conv2d(nf, 3, 3, padding=1)

    def upsample_before(self, name: str) -> bool:
        return name != "head_0" and (name != "G_middle_1" or self.schedule == "more")

    def forward(self, seg: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        if self.use_vae:
            if z is None:
                z = torch.randn(seg.shape[0], self.z_dim, device=seg.device)
            x = self.fc(z).view(-1, 16 * self.ngf, self.sh, self.sw)
        else:
            x = self.fc(F.interpolate(seg, size=(self.sh, self.sw), mode="nearest"))

        context = {tuple(m.shape[2:]): m for m in self.label_pyramid(seg)}
        for name in BLOCKS:
            if self.upsample_before(name):
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            size = tuple(x.shape[2:])
            cond = torch.cat([F.interpolate(seg, size=size, mode="nearest"), context[size]], dim=1)
            x = getattr(self, name)(x, cond)

        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))
