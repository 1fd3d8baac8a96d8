"""The feature-pyramid semantics-embedding (FPSE) discriminator of CC-FPSE.

The image alone (3 channels) goes through a bottom-up encoder of SN-Conv3x3 stride-2 layers
(no bias) + InstanceNorm + LeakyReLU(0.2): 64, 128, 256, 512, 512 channels at 1/2 ... 1/32.
A top-down pathway (SN 1x1 laterals to 256 channels, bilinear x2 upsampling, sums) and
SN-Conv3x3(256 -> 128) "final" layers give features at 1/4, 1/8 and 1/16. Two 1x1 heads are
shared across these three scales: ``tf`` (128 -> 1, the patch real/fake logit) and ``seg``
(128 -> 128, a semantic feature). The label map enters only through a projection term: a 1x1
embedding (S -> 128) of the full-resolution one-hot map, average-pooled 2x2 repeatedly to each
scale. The score at each scale is

    pred_k = tf(f_k) + sum_channels( embedding_k * seg(f_k) ).

Returns ``(features, predictions)``: the four encoder outputs at 1/4 ... 1/32 (for feature
matching) and the three score maps (1/4, 1/8, 1/16).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from methods.blocks.spectral import drop_bias, spectral


def sn_conv_in_lrelu(in_nc: int, out_nc: int, kernel_size: int, stride: int = 1) -> nn.Sequential:
    """(SN-conv without bias -> InstanceNorm) -> LeakyReLU(0.2), nested as the official keys are."""
    conv = drop_bias(spectral(nn.Conv2d(in_nc, out_nc, kernel_size, stride=stride,
                                        padding=kernel_size // 2)))
    return nn.Sequential(nn.Sequential(conv, nn.InstanceNorm2d(out_nc, affine=False)),
                         nn.LeakyReLU(0.2, inplace=True))


class FPSEDiscriminator(nn.Module):
    def __init__(self, semantic_nc: int, ndf: int = 64) -> None:
        super().__init__()
        nf = ndf
        # bottom-up, image only
        self.enc1 = sn_conv_in_lrelu(3, nf, 3, stride=2)
        self.enc2 = sn_conv_in_lrelu(nf, nf * 2, 3, stride=2)
        self.enc3 = sn_conv_in_lrelu(nf * 2, nf * 4, 3, stride=2)
        self.enc4 = sn_conv_in_lrelu(nf * 4, nf * 8, 3, stride=2)
        self.enc5 = sn_conv_in_lrelu(nf * 8, nf * 8, 3, stride=2)
        # top-down laterals
        self.lat2 = sn_conv_in_lrelu(nf * 2, nf * 4, 1)
        self.lat3 = sn_conv_in_lrelu(nf * 4, nf * 4, 1)
        self.lat4 = sn_conv_in_lrelu(nf * 8, nf * 4, 1)
        self.lat5 = sn_conv_in_lrelu(nf * 8, nf * 4, 1)
        # per-scale final layers
        self.final2 = sn_conv_in_lrelu(nf * 4, nf * 2, 3)
        self.final3 = sn_conv_in_lrelu(nf * 4, nf * 2, 3)
        self.final4 = sn_conv_in_lrelu(nf * 4, nf * 2, 3)
        # heads shared across scales, and the label embedding
        self.tf = nn.Conv2d(nf * 2, 1, kernel_size=1)
        self.seg = nn.Conv2d(nf * 2, nf * 2, kernel_size=1)
        self.embedding = nn.Conv2d(semantic_nc, nf * 2, kernel_size=1)

    @staticmethod
    def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=like.shape[2:], mode="bilinear", align_corners=False)

    def forward(self, image: torch.Tensor,
                seg: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        feat11 = self.enc1(image)
        feat12 = self.enc2(feat11)
        feat13 = self.enc3(feat12)
        feat14 = self.enc4(feat13)
        feat15 = self.enc5(feat14)

        lat4, lat3, lat2 = self.lat4(feat14), self.lat3(feat13), self.lat2(feat12)
        feat25 = self.lat5(feat15)
        feat24 = self._up(feat25, lat4) + lat4
        feat23 = self._up(feat24, lat3) + lat3
        feat22 = self._up(feat23, lat2) + lat2

        finals = [self.final2(feat22), self.final3(feat23), self.final4(feat24)]

        emb = F.avg_pool2d(self.embedding(seg), 2)      # 1/2
        predictions = []
        for f in finals:                                # 1/4, 1/8, 1/16
            emb = F.avg_pool2d(emb, 2)
            predictions.append(self.tf(f) + (emb * self.seg(f)).sum(dim=1, keepdim=True))
        return [feat12, feat13, feat14, feat15], predictions
