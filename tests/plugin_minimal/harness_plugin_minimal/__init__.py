"""minimal-gan: the smallest complete harness method, a plugin example (docs/plugins.md).

label map --one-hot--> G (3x3 convs) --tanh--> image;  [label map ; image] --> D (3x3 convs) -> score
per pixel. Generator: LSGAN + lambda_l1 * L1 to the real image; discriminator: LSGAN.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from harness.core.data.base import Batch, DatasetInfo
from methods.base import Method, Nets, Phase, Runtime, semantic_input, to_uint8


@dataclass
class MinimalConfig:
    width: int = 16          # channels of both networks
    lr: float = 2e-4
    lambda_l1: float = 10.0


def conv_stack(cin: int, width: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, width, 3, padding=1), nn.LeakyReLU(0.2),
                         nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(0.2),
                         nn.Conv2d(width, cout, 3, padding=1))


class MinimalGAN(Method):
    """Minimal conditional GAN (plugin example): label map -> image, LSGAN + L1, unimodal."""

    Config = MinimalConfig

    def __init__(self, cfg: MinimalConfig, info: DatasetInfo, runtime: Runtime | None = None):
        super().__init__(cfg, info, runtime)
        c = info.num_label_channels
        self.nets = nn.ModuleDict({"G": conv_stack(c, cfg.width, 3),
                                   "D": conv_stack(c + 3, cfg.width, 1)})
        self._optimizers = {k: torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
                            for k, net in self.nets.items()}

    def phases(self) -> list[Phase]:  # one step = one G update, then one D update
        return [Phase("generator", "G", ("G",), self.generator_loss),
                Phase("discriminator", "D", ("D",), self.discriminator_loss)]

    def generator_loss(self, batch: Batch, nets: Nets, step: int) -> dict[str, torch.Tensor]:
        sem = semantic_input(batch.label, self.info.num_label_channels)
        fake = torch.tanh(nets.G(sem))
        pred = nets.D(torch.cat([sem, fake], 1)).float()
        return {"G_GAN": F.mse_loss(pred, torch.ones_like(pred)),
                "G_L1": F.l1_loss(fake.float(), batch.image.float()) * self.cfg.lambda_l1}

    def discriminator_loss(self, batch: Batch, nets: Nets, step: int) -> dict[str, torch.Tensor]:
        sem = semantic_input(batch.label, self.info.num_label_channels)
        with torch.no_grad():
            fake = torch.tanh(nets.G(sem))
        pred_fake = nets.D(torch.cat([sem, fake], 1)).float()
        pred_real = nets.D(torch.cat([sem, batch.image], 1)).float()
        return {"D_fake": 0.5 * F.mse_loss(pred_fake, torch.zeros_like(pred_fake)),
                "D_real": 0.5 * F.mse_loss(pred_real, torch.ones_like(pred_real))}

    @torch.no_grad()
    def generate(self, label, instance=None, *, edge=None, z=None, generator=None,
                 style_image=None) -> torch.Tensor:
        sem = semantic_input(label.to(self.device), self.info.num_label_channels)
        return to_uint8(torch.tanh(self.nets["G"](sem)))  # unimodal: the seed changes nothing
