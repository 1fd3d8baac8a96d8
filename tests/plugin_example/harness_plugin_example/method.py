"""example-pix2pix: a tiny conditional GAN (pix2pix-style) implementing the harness Method contract.

    label map --one-hot--> G (3x3 convs, InstanceNorm, ReLU, tanh) --> image
    [label map ; image] --> D (PatchGAN, 4x4 stride-2 convs) --> real/fake score per patch

Generator phase:      LSGAN  (D(G(x)) - 1)^2          + lambda_l1 * |G(x) - y|
Discriminator phase:  LSGAN  0.5 (D(y) - 1)^2 + 0.5 D(G(x))^2

There is no BatchNorm and no randomness, which makes multi-process training exactly comparable
to one process with the combined batch (the runner's DDP tests rely on that).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from harness.core.data.base import Batch, DatasetInfo
from methods.base import Method, Nets, Phase, Runtime, semantic_input, to_uint8


@dataclass
class ExampleConfig:
    ngf: int = 16                  # generator width
    ndf: int = 16                  # discriminator width
    g_layers: int = 3              # 3x3 conv + InstanceNorm + ReLU blocks before the output conv
    d_layers: int = 2              # stride-2 conv blocks of the PatchGAN
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lambda_l1: float = 10.0
    use_instance_edges: bool = False   # add the instance edge channel (datasets with instances)
    # TEST KNOB: multiply the generator's L1 term by NaN at this step (0-indexed), so that the
    # runner's non-finite-loss guard can be exercised. Leave null for real training.
    debug_nan_at_step: int | None = None

    def __post_init__(self) -> None:
        for name in ("ngf", "ndf", "g_layers", "d_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def _conv_in_relu(cin: int, cout: int) -> list[nn.Module]:
    # No bias before InstanceNorm: the normalisation removes it anyway.
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.InstanceNorm2d(cout), nn.ReLU(True)]


class Generator(nn.Module):
    def __init__(self, in_channels: int, ngf: int, layers: int) -> None:
        super().__init__()
        body = _conv_in_relu(in_channels, ngf)
        for _ in range(layers - 1):
            body += _conv_in_relu(ngf, ngf)
        self.body = nn.Sequential(*body)
        self.to_rgb = nn.Conv2d(ngf, 3, 3, padding=1)

    def forward(self, semantics: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.to_rgb(self.body(semantics)))


class PatchDiscriminator(nn.Module):
    def __init__(self, in_channels: int, ndf: int, layers: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1),
                                   nn.LeakyReLU(0.2, True)]
        width = ndf
        for _ in range(layers - 1):
            blocks += [nn.Conv2d(width, width * 2, 4, stride=2, padding=1, bias=False),
                       nn.InstanceNorm2d(width * 2), nn.LeakyReLU(0.2, True)]
            width *= 2
        blocks.append(nn.Conv2d(width, 1, 3, padding=1))
        self.model = nn.Sequential(*blocks)

    def forward(self, semantics: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.model(torch.cat([semantics, image], dim=1))


class ExamplePix2Pix(Method):
    """Tiny pix2pix-style conditional GAN (example plugin; LSGAN + L1, InstanceNorm, PatchGAN)."""

    Config = ExampleConfig
    # Every parameter is used in every step: DDP can skip its search for unused parameters.
    ddp_find_unused_parameters = False

    def __init__(self, cfg: ExampleConfig, info: DatasetInfo, runtime: Runtime | None = None) -> None:
        super().__init__(cfg, info, runtime)
        if cfg.use_instance_edges and not info.has_instances:
            raise ValueError(f"use_instance_edges=True but dataset {info.name!r} has no instance maps")
        self.in_channels = info.num_label_channels + int(cfg.use_instance_edges)
        self.nets = nn.ModuleDict({
            "G": Generator(self.in_channels, cfg.ngf, cfg.g_layers),
            "D": PatchDiscriminator(self.in_channels + 3, cfg.ndf, cfg.d_layers),
        })
        betas = (cfg.beta1, cfg.beta2)
        self._optimizers = {
            "G": torch.optim.Adam(self.nets["G"].parameters(), lr=cfg.lr, betas=betas),
            "D": torch.optim.Adam(self.nets["D"].parameters(), lr=cfg.lr, betas=betas),
        }

    # ---------------------------------------------------------------------------------------
    def semantics(self, label: torch.Tensor, instance: torch.Tensor | None = None,
                  edge: torch.Tensor | None = None) -> torch.Tensor:
        return semantic_input(label, self.info.num_label_channels, edge=edge, instance=instance,
                              use_edge=self.cfg.use_instance_edges)

    def phases(self) -> list[Phase]:
        return [Phase("generator", "G", ("G",), self.generator_loss),
                Phase("discriminator", "D", ("D",), self.discriminator_loss)]

    def generator_loss(self, batch: Batch, nets: Nets, step: int) -> dict[str, torch.Tensor]:
        sem = self.semantics(batch.label, batch.instance, batch.edge)
        fake = nets.G(sem)
        pred = nets.D(sem, fake)
        l1 = F.l1_loss(fake.float(), batch.image.float()) * self.cfg.lambda_l1
        if self.cfg.debug_nan_at_step is not None and step == self.cfg.debug_nan_at_step:
            l1 = l1 * float("nan")
        return {"G_GAN": F.mse_loss(pred.float(), torch.ones_like(pred, dtype=torch.float32)),
                "G_L1": l1}

    def discriminator_loss(self, batch: Batch, nets: Nets, step: int) -> dict[str, torch.Tensor]:
        sem = self.semantics(batch.label, batch.instance, batch.edge)
        with torch.no_grad():
            fake = nets.G(sem).detach()
        # Two separate D calls (like pix2pixHD), so the runner's DDP path sees a network used
        # twice before one backward.
        pred_fake = nets.D(sem, fake).float()
        pred_real = nets.D(sem, batch.image).float()
        return {"D_fake": 0.5 * F.mse_loss(pred_fake, torch.zeros_like(pred_fake)),
                "D_real": 0.5 * F.mse_loss(pred_real, torch.ones_like(pred_real))}

    @torch.no_grad()
    def generate(self, label, instance=None, *, edge=None, z=None, generator=None,
                 style_image=None) -> torch.Tensor:
        # Deterministic: z, generator and style_image have nothing to act on.
        sem = self.semantics(label.to(self.device),
                             None if instance is None else instance.to(self.device),
                             None if edge is None else edge.to(self.device))
        return to_uint8(self.nets["G"](sem))
