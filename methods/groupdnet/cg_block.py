"""CG-Block (GroupDNet's ``SPADEV2ResnetBlock``): the SPADE residual block with every conv grouped.

    CG-Norm(fin) -> LReLU(0.2) -> conv3x3 (fin -> fm, g groups) -> CG-Norm(fm) -> LReLU
    -> conv3x3 (fm -> fout, g groups);  shortcut when fin != fout: CG-Norm(fin) -> conv1x1 (g
    groups, no bias);  fm = min(fin, fout). Spectral norm on the three convs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from methods.blocks.spectral import spectral
from methods.groupdnet.cg_norm import CGNorm


class CGBlock(nn.Module):
    def __init__(self, fin: int, fout: int, groups: int, classes: int, *, rule: str = "ade20k",
                 edges: bool = False, norm: str = "syncbatch", spectral_norm: bool = True) -> None:
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        self.conv_0 = spectral(nn.Conv2d(fin, fmiddle, 3, padding=1, groups=groups), spectral_norm)
        self.conv_1 = spectral(nn.Conv2d(fmiddle, fout, 3, padding=1, groups=groups), spectral_norm)
        if self.learned_shortcut:
            self.conv_s = spectral(nn.Conv2d(fin, fout, 1, bias=False, groups=groups), spectral_norm)
        norm_kw = dict(rule=rule, edges=edges, norm=norm)
        self.norm_0 = CGNorm(fin, classes, groups, **norm_kw)
        self.norm_1 = CGNorm(fmiddle, classes, groups, **norm_kw)
        if self.learned_shortcut:
            self.norm_s = CGNorm(fin, classes, groups, **norm_kw)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        x_s = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return x_s + dx
