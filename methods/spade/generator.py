"""SPADE generator (Park et al., CVPR 2019): SPADE residual blocks on a progressively upsampled
latent grid.

    input  : conv3x3 on the nearest-downsampled label map (deterministic)  or  Linear(z) (VAE)
    head_0 : ResBlk 16nf -> 16nf                 at the latent grid (8x8; 4x8 for 512x256 'more')
    up, G_middle_0 : ResBlk 16nf -> 16nf
    ('more' / 'most': up)  G_middle_1 : ResBlk 16nf -> 16nf
    up, up_0 : 16nf -> 8nf;  up, up_1 : 8nf -> 4nf;  up, up_2 : 4nf -> 2nf;  up, up_3 : 2nf -> nf
    ('most': up, up_4 : nf -> nf/2)
    LeakyReLU(0.2) -> conv3x3 -> 3 -> tanh

Every ResBlk receives the full-resolution label map; each SPADE layer resizes it (nearest) to
its activation. Attribute names follow the official state_dict keys.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from methods.blocks.normalization import SPADE
from methods.blocks.spectral import spectral

UPSAMPLINGS = {"normal": 5, "more": 6, "most": 7}


def latent_size(image_size: tuple[int, int], num_upsampling_layers: str) -> tuple[int, int]:
    """(sh, sw) of the latent grid with the official rule: sw = W // 2^ups, sh = round(sw / (W/H))."""
    if num_upsampling_layers not in UPSAMPLINGS:
        raise ValueError(f"num_upsampling_layers must be one of {sorted(UPSAMPLINGS)}, got "
                         f"{num_upsampling_layers!r}")
    h, w = image_size
    sw = w // 2 ** UPSAMPLINGS[num_upsampling_layers]
    sh = round(sw / (w / h))
    scale = 2 ** UPSAMPLINGS[num_upsampling_layers]
    if sw < 1 or sh < 1 or (sh * scale, sw * scale) != (h, w):
        raise ValueError(
            f"image size {h}x{w} (HxW) does not match num_upsampling_layers="
            f"{num_upsampling_layers!r}: the latent grid {sh}x{sw} upsampled {scale}x gives "
            f"{sh * scale}x{sw * scale}; use a size that is a multiple of {scale} with the "
            "aspect ratio of the latent grid")
    return sh, sw


class SPADEResnetBlock(nn.Module):
    """SPADE -> LReLU -> conv3x3 -> SPADE -> LReLU -> conv3x3, plus a (learned when fin != fout)
    SPADE -> conv1x1 shortcut. Spectral norm on conv_0, conv_1, conv_s only."""

    def __init__(self, fin: int, fout: int, semantic_nc: int, *, norm: str = "syncbatch",
                 spectral_norm: bool = True, kernel_size: int = 3, nhidden: int = 128) -> None:
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        self.conv_0 = spectral(nn.Conv2d(fin, fmiddle, 3, padding=1), spectral_norm)
        self.conv_1 = spectral(nn.Conv2d(fmiddle, fout, 3, padding=1), spectral_norm)
        if self.learned_shortcut:
            self.conv_s = spectral(nn.Conv2d(fin, fout, 1, bias=False), spectral_norm)
        spade = dict(norm=norm, kernel_size=kernel_size, nhidden=nhidden)
        self.norm_0 = SPADE(fin, semantic_nc, **spade)
        self.norm_1 = SPADE(fmiddle, semantic_nc, **spade)
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, semantic_nc, **spade)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        x_s = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return x_s + dx


class SPADEGenerator(nn.Module):
    def __init__(self, semantic_nc: int, image_size: tuple[int, int], *, ngf: int = 64,
                 num_upsampling_layers: str = "normal", use_vae: bool = False, z_dim: int = 256,
                 norm: str = "syncbatch", spectral_norm: bool = True, spade_kernel_size: int = 3,
                 spade_nhidden: int = 128) -> None:
        super().__init__()
        nf = ngf
        self.num_upsampling_layers = num_upsampling_layers
        self.use_vae, self.z_dim = use_vae, z_dim
        self.sh, self.sw = latent_size(image_size, num_upsampling_layers)
        if use_vae:
            self.fc = nn.Linear(z_dim, 16 * nf * self.sh * self.sw)
        else:
            self.fc = nn.Conv2d(semantic_nc, 16 * nf, 3, padding=1)

        def block(fin, fout):
            return SPADEResnetBlock(fin, fout, semantic_nc, norm=norm, spectral_norm=spectral_norm,
                                    kernel_size=spade_kernel_size, nhidden=spade_nhidden)

        self.head_0 = block(16 * nf, 16 * nf)
        self.G_middle_0 = block(16 * nf, 16 * nf)
        self.G_middle_1 = block(16 * nf, 16 * nf)
        self.up_0 = block(16 * nf, 8 * nf)
        self.up_1 = block(8 * nf, 4 * nf)
        self.up_2 = block(4 * nf, 2 * nf)
        self.up_3 = block(2 * nf, nf)
        final_nc = nf
        if num_upsampling_layers == "most":
            self.up_4 = block(nf, nf // 2)
            final_nc = nf // 2
        self.conv_img = nn.Conv2d(final_nc, 3, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2)

    def forward(self, seg: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        if self.use_vae:
            if z is None:
                raise ValueError("the VAE generator needs z [N, z_dim] (sample it or encode an image)")
            x = self.fc(z).view(-1, self.fc.out_features // (self.sh * self.sw), self.sh, self.sw)
        else:
            x = self.fc(F.interpolate(seg, size=(self.sh, self.sw), mode="nearest"))
        x = self.head_0(x, seg)
        x = self.G_middle_0(self.up(x), seg)
        if self.num_upsampling_layers in ("more", "most"):
            x = self.up(x)
        x = self.G_middle_1(x, seg)
        x = self.up_0(self.up(x), seg)
        x = self.up_1(self.up(x), seg)
        x = self.up_2(self.up(x), seg)
        x = self.up_3(self.up(x), seg)
        if self.num_upsampling_layers == "most":
            x = self.up_4(self.up(x), seg)
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))
