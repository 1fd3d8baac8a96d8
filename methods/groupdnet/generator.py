"""GroupDNet decoder: per-class codes -> grouped fc -> CG-Blocks on a progressively upsampled grid.

    z [N, 8C, sh, sw] (class c owns channels 8c .. 8c+7) -> fc: grouped conv3x3 (groups C)
    head_0 -> up -> G_middle_0 -> ('more': up) -> G_middle_1 -> up -> up_0 -> up -> up_1
    -> up -> up_2 -> up -> up_3 -> LReLU(0.2) -> conv3x3 -> 3 -> tanh

Widths and groups come from a :class:`~methods.groupdnet.schedule.DecoderPlan`. The 'more' schedule
(6 upsamplings, the official default for every SMIS dataset) starts from 4x4 at 256x256 and from
4x8 at 512x256; 'normal' (5) is offered for tiny images. Attribute names follow the official
state_dict keys; the ADE20K layout's ``up_4`` is built but never called (frozen, see
``freeze_unused``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from methods.groupdnet.cg_block import CGBlock
from methods.groupdnet.cg_norm import interleave_edges
from methods.groupdnet.schedule import CODE_CHANNELS, DecoderPlan
from methods.spade.generator import latent_size

SCHEDULES = ("normal", "more")


class GroupDNetGenerator(nn.Module):
    def __init__(self, plan: DecoderPlan, image_size: tuple[int, int], *, edges: bool = False,
                 num_upsampling_layers: str = "more", norm: str = "syncbatch",
                 spectral_norm: bool = True) -> None:
        super().__init__()
        if num_upsampling_layers not in SCHEDULES:
            raise ValueError(f"GroupDNet num_upsampling_layers must be one of {SCHEDULES}, got "
                             f"{num_upsampling_layers!r}")
        self.classes, self.edges = plan.classes, edges
        self.plan_groups = plan.groups
        self.num_upsampling_layers = num_upsampling_layers
        self.sh, self.sw = latent_size(tuple(image_size), num_upsampling_layers)
        c = plan.classes
        self.fc = nn.Conv2d(CODE_CHANNELS * c, plan.fc_out, 3, padding=1, groups=c)
        for b in plan.blocks:
            self.add_module(b.name, CGBlock(b.fin, b.fout, b.groups, c, rule=plan.layout,
                                            edges=edges, norm=norm, spectral_norm=spectral_norm))
        self.unused = tuple(b.name for b in plan.blocks if not b.used)
        self.conv_img = nn.Conv2d(plan.conv_img_in, 3, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2)

    @property
    def code_shape(self) -> tuple[int, int, int, int]:
        """(classes, 8, sh, sw): the per-class view of z."""
        return (self.classes, CODE_CHANNELS, self.sh, self.sw)

    def freeze_unused(self) -> None:
        """Blocks that forward never calls get no gradient: keep them out of training."""
        for name in self.unused:
            getattr(self, name).requires_grad_(False)

    def label_input(self, semantics: torch.Tensor) -> torch.Tensor:
        """One-hot (+ edge last) -> the CG-Norm input ((mask, edge) pairs when edges are used)."""
        expected = self.classes + int(self.edges)
        if semantics.shape[1] != expected:
            raise ValueError(f"GroupDNet generator expects {expected} label channels "
                             f"({self.classes} classes{' + edge' if self.edges else ''}), got "
                             f"{semantics.shape[1]}")
        return interleave_edges(semantics, self.classes) if self.edges else semantics

    def forward(self, semantics: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        n = semantics.shape[0]
        want = (n, CODE_CHANNELS * self.classes, self.sh, self.sw)
        if tuple(z.shape) != want:
            raise ValueError(f"z must be {want} (8 channels per class), got {tuple(z.shape)}")
        seg = self.label_input(semantics)
        x = self.fc(z.to(seg.dtype))
        x = self.head_0(x, seg)
        x = self.G_middle_0(self.up(x), seg)
        if self.num_upsampling_layers == "more":
            x = self.up(x)
        x = self.G_middle_1(x, seg)
        for name in ("up_0", "up_1", "up_2", "up_3"):
            x = getattr(self, name)(self.up(x), seg)
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))
