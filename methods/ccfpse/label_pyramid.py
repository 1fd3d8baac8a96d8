"""The global-context-aware weight-prediction network: a feature pyramid over the label map.

Bottom-up, ``labelenc1`` (3x3, stride 1) and ``labelenc2..L`` (3x3, stride 2) encode the one-hot
(+ edge) map from full resolution down to 1/2^(L-1). Top-down, the coarsest level is upsampled
(nearest, x2), summed with a 1x1 lateral of the encoder level at that scale (``labellat``) and
smoothed by a 3x3 conv (``labeldec``), level by level up to full resolution. Every conv is
spectral-normalised (no bias), followed by an affine BatchNorm (SyncBatchNorm when the runner
trains on several processes) and LeakyReLU(0.2); every map has ``nf`` (64) channels.

The output list is coarsest first: one map per generator resolution (L = 6 for the 'normal'
schedule, 8x8 ... 256x256; L = 7 for Cityscapes' 'more' schedule, 4x8 ... 256x512). Each
conditional-convolution block concatenates the map of its resolution with the resized one-hot map
so that its kernels see both the local label and the global layout context.

Attribute names equal the official ``CondConvGenerator`` keys (``labelenc1.0.0.weight_orig``, ...)
so that released checkpoints map onto this module by a prefix.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from methods.blocks.spectral import drop_bias, spectral

LEVELS = {"normal": 6, "more": 7}


def sn_conv_bn_lrelu(in_nc: int, out_nc: int, kernel_size: int, stride: int = 1) -> nn.Sequential:
    """(SN-conv without bias -> affine BN) -> LeakyReLU(0.2), nested as the official keys are."""
    conv = drop_bias(spectral(nn.Conv2d(in_nc, out_nc, kernel_size, stride=stride,
                                        padding=kernel_size // 2)))
    return nn.Sequential(nn.Sequential(conv, nn.BatchNorm2d(out_nc, affine=True)),
                         nn.LeakyReLU(0.2, inplace=True))


class LabelFeaturePyramid(nn.Module):
    def __init__(self, semantic_nc: int, nf: int = 64, levels: int = 6) -> None:
        super().__init__()
        if levels < 2:
            raise ValueError(f"the label pyramid needs at least 2 levels, got {levels}")
        self.levels = levels
        for k in range(1, levels + 1):  # bottom-up encoder
            self.add_module(f"labelenc{k}", sn_conv_bn_lrelu(semantic_nc if k == 1 else nf, nf, 3,
                                                             stride=1 if k == 1 else 2))
        for k in range(1, levels):      # top-down: laterals and smoothing
            self.add_module(f"labellat{k}", sn_conv_bn_lrelu(nf, nf, 1))
        for k in range(1, levels):
            self.add_module(f"labeldec{k}", sn_conv_bn_lrelu(nf, nf, 3))

    def forward(self, seg: torch.Tensor) -> list[torch.Tensor]:
        encoded = []
        x = seg
        for k in range(1, self.levels + 1):
            x = getattr(self, f"labelenc{k}")(x)
            encoded.append(x)                       # full resolution first
        outputs = [encoded[-1]]
        for k in range(1, self.levels):
            lateral = getattr(self, f"labellat{k}")(encoded[-1 - k])
            top = F.interpolate(outputs[-1], size=lateral.shape[2:], mode="nearest")
            outputs.append(getattr(self, f"labeldec{k}")(top + lateral))
        return outputs                              # coarsest first
