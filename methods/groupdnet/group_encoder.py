"""GroupDNet's group encoder: one latent code per class, computed from that class's pixels only.

Input (:func:`class_crops`, the official ``trans_img``): for every sample and class c, the image
masked by the class, X_c = X * M_c, cropped to the bounding box of the class and resized (nearest,
the ``F.interpolate`` default) to the crop size (officially the training size: 256x256, 256x512
for Cityscapes); an all-zero 3xHxW block for an absent class. Concatenated over classes ->
[N, 3C, H, W] (class c at channels 3c .. 3c+2).

Network (:class:`GroupEncoder`): stride-2 grouped conv3x3 layers (groups C, spectral norm, no
bias, InstanceNorm without affine), LeakyReLU(0.2) between and after, widths
nef, 2nef, 4nef, 8nef, 8nef, 8nef (nef = C * per-class width; official 10 x 35 = 350 Cityscapes,
4 x 151 = 604 ADE20K); as many layers as bring the crop to the latent grid (6 for 256 -> 4).
Heads fc_mu / fc_var: grouped conv3x3 (groups C, bias, no spectral norm) -> 8 channels per class.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from methods.blocks.spectral import drop_bias, spectral
from methods.groupdnet.schedule import CODE_CHANNELS

MAX_LAYERS = 6


def _span(nonzero: torch.Tensor) -> tuple[int, int] | None:
    idx = torch.nonzero(nonzero).flatten()
    return (int(idx[0]), int(idx[-1])) if idx.numel() else None


@torch.no_grad()
def class_crops(image: torch.Tensor, onehot: torch.Tensor, crop_size: tuple[int, int], *,
                bbox: Literal["mask", "rgb_sum"] = "mask") -> torch.Tensor:
    """[N,3,H,W] image, [N,C,H,W] one-hot -> [N, 3C, *crop_size] per-class masked crops.

    ``bbox='mask'`` takes the box from the class mask. ``'rgb_sum'`` reproduces the official
    code, which finds it from row / column sums of the RGB-summed masked image, so a class whose
    masked pixels sum to 0 column by column counts as absent (bit-exact comparisons only).
    """
    n, c = onehot.shape[:2]
    out = image.new_zeros(n, c, 3, *crop_size)
    for i in range(n):
        for k in torch.nonzero(onehot[i].flatten(1).any(1)).flatten().tolist():
            masked = image[i] * onehot[i, k]
            if bbox == "mask":
                rows, cols = _span(onehot[i, k].any(1)), _span(onehot[i, k].any(0))
            else:
                total = masked.sum(0)
                cols, rows = _span(total.sum(0) != 0), _span(total.sum(1) != 0)
                if cols is None or rows is None:
                    continue
            crop = masked[:, rows[0]:rows[1] + 1, cols[0]:cols[1] + 1]
            out[i, k] = F.interpolate(crop[None], size=tuple(crop_size), mode="nearest")[0]
    return out.flatten(1, 2)


def encoder_layers(crop_size: tuple[int, int], latent: tuple[int, int]) -> int:
    """How many stride-2 layers bring the crop to the latent grid (one clear error otherwise)."""
    (h, w), (sh, sw) = crop_size, latent
    k = int(round(math.log2(max(h // max(sh, 1), 1))))
    if not 1 <= k <= MAX_LAYERS or (sh << k, sw << k) != (h, w):
        raise ValueError(f"GroupDNet encoder: crop size {h}x{w} must be the latent grid {sh}x{sw} "
                         f"times 2^k with 1 <= k <= {MAX_LAYERS}")
    return k


class GroupEncoder(nn.Module):
    def __init__(self, classes: int, nef_per_class: int, crop_size: tuple[int, int],
                 latent: tuple[int, int]) -> None:
        super().__init__()
        if nef_per_class < 1:
            raise ValueError(f"nef_per_class must be >= 1, got {nef_per_class}")
        self.classes, self.crop_size = classes, tuple(crop_size)
        if latent[0] * latent[1] < 2:
            # InstanceNorm needs more than one value per channel
            raise ValueError(f"GroupDNet encoder: the latent grid {latent[0]}x{latent[1]} is too "
                             "small (InstanceNorm needs at least 2 positions); use images of at "
                             "least 64x64 with num_upsampling_layers 'normal' (128x128 with 'more')")
        self.n_layers = encoder_layers(self.crop_size, latent)
        nef = classes * nef_per_class
        chans = [3 * classes] + [nef * min(2 ** i, 8) for i in range(self.n_layers)]
        for i in range(self.n_layers):
            conv = nn.Conv2d(chans[i], chans[i + 1], 3, stride=2, padding=1, groups=classes)
            self.add_module(f"layer{i + 1}", nn.Sequential(
                drop_bias(spectral(conv)), nn.InstanceNorm2d(chans[i + 1], affine=False)))
        self.fc_mu = nn.Conv2d(chans[-1], CODE_CHANNELS * classes, 3, padding=1, groups=classes)
        self.fc_var = nn.Conv2d(chans[-1], CODE_CHANNELS * classes, 3, padding=1, groups=classes)
        self.actvn = nn.LeakyReLU(0.2, False)

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[N, 3C, *crop_size] (from :func:`class_crops`) -> mu, logvar [N, 8C, sh, sw]."""
        if crops.shape[1] != 3 * self.classes or tuple(crops.shape[2:]) != self.crop_size:
            raise ValueError(f"encoder input must be [N, {3 * self.classes}, {self.crop_size[0]}, "
                             f"{self.crop_size[1]}], got {tuple(crops.shape)}")
        x = crops
        for i in range(self.n_layers):
            x = getattr(self, f"layer{i + 1}")(x if i == 0 else self.actvn(x))
        x = self.actvn(x)
        return self.fc_mu(x), self.fc_var(x)
