"""SPADE / GauGAN (Park et al., CVPR 2019) behind the harness Method contract.

Training step (official ``Pix2PixTrainer``): one generator update (hinge GAN + feature matching
+ VGG [+ KLD]) with D frozen, then one discriminator update on a fake regenerated without
gradient. Defaults are the official values (NVlabs/SPADE @ fecacc9, methods.md §2, B.2).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Mapping

import torch
from torch import nn

from harness.core.config import runtime
from harness.core.data.base import Batch, DatasetInfo
from methods import register_method
from methods.base import ImportReport, Method, Nets, Phase, Runtime, semantic_input, to_uint8
from methods.blocks.conv_encoder import ConvEncoder
from methods.blocks.init import init_weights
from methods.blocks.losses import GANLoss, kl_divergence, reparameterize
from methods.blocks.multiscale_discriminator import MultiscaleDiscriminator
from methods.blocks.vgg_loss import lazy_vgg_loss, vgg_weight_need
from methods.spade.common import (discriminator_terms, eval_mode, generator_adversarial_terms,
                                   randn_images)
from methods.spade.generator import SPADEGenerator
from methods.spade.official import OfficialCheckpointError, load_official, save_official


@register_method("spade")
class SPADE(Method):
    """SPADE (GauGAN): spatially-adaptive normalisation generator, multi-scale PatchGAN."""

    @dataclass
    class Config:
        # generator
        ngf: int = 64
        num_upsampling_layers: Literal["normal", "more", "most"] = "normal"  # 'more' for Cityscapes
        norm_G: Literal["syncbatch", "batch", "instance"] = "syncbatch"  # param-free norm in SPADE
        spectral_G: bool = True               # SN on the ResBlk convs (norm_G 'spectral...')
        spade_kernel_size: int = 3            # 'spade...3x3'
        spade_nhidden: int = 128              # hard-coded 128 in the official code
        use_instance_edges: bool = True       # add the edge map when the dataset has instances
        # VAE (multi-modal / style-guided variant; off for the paper's Table 1 numbers)
        use_vae: bool = False
        z_dim: int = 256
        encoder_input_size: int = 256         # the encoder resizes its input to this square
        lambda_kld: float = 0.05
        # discriminator
        ndf: int = 64
        num_D: int = 2
        n_layers_D: int = 4
        spectral_D: bool = True               # norm_D 'spectralinstance'
        # losses
        gan_mode: Literal["hinge", "ls", "original", "w"] = "hinge"
        lambda_feat: float = 10.0             # 0 disables feature matching (no_ganFeat_loss)
        lambda_vgg: float = 10.0              # 0 disables the VGG loss (no_vgg_loss)
        vgg_weights: str | None = runtime(None)  # vgg19-dcbb9e9d.pth; None: weights dir / hub
        # optimisation: TTUR (lr 2e-4 -> G lr/2, D 2 lr), Adam betas (0, 0.9)
        lr_G: float = 1e-4
        lr_D: float = 4e-4
        beta1: float = 0.0
        beta2: float = 0.9
        init_type: Literal["xavier", "normal", "kaiming", "orthogonal"] = "xavier"
        init_variance: float = 0.02           # used as the xavier gain, as in the official code

        def __post_init__(self) -> None:
            for name in ("ngf", "z_dim", "ndf", "num_D", "spade_nhidden"):
                if getattr(self, name) < 1:
                    raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
            if self.n_layers_D < 2:
                raise ValueError(f"n_layers_D must be >= 2, got {self.n_layers_D}")
            if self.spade_kernel_size % 2 != 1:
                raise ValueError(f"spade_kernel_size must be odd, got {self.spade_kernel_size}")
            for name in ("lambda_kld", "lambda_feat", "lambda_vgg", "lr_G", "lr_D"):
                if getattr(self, name) < 0:
                    raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def __init__(self, cfg: "SPADE.Config", info: DatasetInfo, runtime: Runtime | None = None) -> None:
        super().__init__(cfg, info, runtime)
        self.use_edge = bool(cfg.use_instance_edges and info.has_instances)
        self.semantic_nc = info.num_label_channels + int(self.use_edge)
        self.image_size = tuple(info.image_size)
        self.nets = nn.ModuleDict(build_networks(cfg, self.semantic_nc, self.image_size))
        for net in self.nets.values():
            init_weights(net, cfg.init_type, cfg.init_variance)
        self.gan_loss = GANLoss(cfg.gan_mode, scales="mean")
        g_params = list(self.nets["G"].parameters())
        if cfg.use_vae:
            g_params += list(self.nets["E"].parameters())
        betas = (cfg.beta1, cfg.beta2)
        self._optimizers = {"G": torch.optim.Adam(g_params, lr=cfg.lr_G, betas=betas),
                            "D": torch.optim.Adam(self.nets["D"].parameters(), lr=cfg.lr_D, betas=betas)}

    # ------------------------------------------------------------------------------------------
    @classmethod
    def required_weights(cls, cfg: "SPADE.Config") -> list:
        return [vgg_weight_need(cfg.vgg_weights, "method.lambda_vgg > 0")] if cfg.lambda_vgg > 0 else []

    @classmethod
    def multimodal_for(cls, cfg: "SPADE.Config") -> bool:
        return bool(cfg.use_vae)

    @classmethod
    def style_encoding_for(cls, cfg: "SPADE.Config") -> bool:
        return bool(cfg.use_vae)  # the encoder exists only in the VAE configuration

    @property
    def multimodal(self) -> bool:
        return self.cfg.use_vae

    @property
    def supports_style_encoding(self) -> bool:
        return self.cfg.use_vae  # the encoder exists only in the VAE configuration

    def phases(self) -> list[Phase]:
        g_nets = ("G", "E") if self.cfg.use_vae else ("G",)
        return [Phase("generator", "G", g_nets, self.generator_loss),
                Phase("discriminator", "D", ("D",), self.discriminator_loss)]

    def semantics(self, label: torch.Tensor, instance: torch.Tensor | None = None,
                  edge: torch.Tensor | None = None) -> torch.Tensor:
        dev = self.device
        return semantic_input(label.to(dev), self.info.num_label_channels,
                              None if edge is None else edge.to(dev),
                              None if instance is None else instance.to(dev), self.use_edge)

    def _fake(self, nets: Nets, semantics: torch.Tensor, real: torch.Tensor):
        """Generator forward as in training: z from the encoded real image when the VAE is on."""
        if not self.cfg.use_vae:
            return nets.G(semantics), None
        mu, logvar = nets.E(real)
        return nets.G(semantics, reparameterize(mu, logvar)), (mu, logvar)

    def generator_loss(self, batch: Batch, nets: Nets, step: int) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        semantics = self.semantics(batch.label, batch.instance, batch.edge)
        real = batch.image.to(semantics.device)
        fake, posterior = self._fake(nets, semantics, real)
        terms: dict[str, torch.Tensor] = {}
        if posterior is not None:
            terms["KLD"] = kl_divergence(*posterior) * cfg.lambda_kld
        terms.update(generator_adversarial_terms(
            self.gan_loss, nets.D, semantics, fake, real, lambda_feat=cfg.lambda_feat,
            num_D=cfg.num_D, lambda_vgg=cfg.lambda_vgg,
            vgg_loss=lambda: lazy_vgg_loss(self.aux, cfg.vgg_weights, fake.device)))
        return terms

    def discriminator_loss(self, batch: Batch, nets: Nets, step: int) -> dict[str, torch.Tensor]:
        semantics = self.semantics(batch.label, batch.instance, batch.edge)
        real = batch.image.to(semantics.device)
        with torch.no_grad():
            fake, _ = self._fake(nets, semantics, real)
        return discriminator_terms(self.gan_loss, nets.D, semantics, fake, real)

    # ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, label, instance=None, *, edge=None, z=None, generator=None, style_image=None):
        semantics = self.semantics(label, instance, edge)
        n = semantics.shape[0]
        if tuple(semantics.shape[2:]) != self.image_size:
            raise ValueError(f"SPADE generates {self.image_size[0]}x{self.image_size[1]} images "
                             f"(its latent grid is fixed by the training size); got a label map "
                             f"of {semantics.shape[2]}x{semantics.shape[3]}")
        if not self.cfg.use_vae:
            if z is not None or style_image is not None:
                raise ValueError("this SPADE configuration is deterministic (use_vae: false): "
                                 "z and style_image are not used")
        elif z is None:
            if style_image is not None:
                z = self.encode_style(style_image, label, generator=generator)
            else:
                z = randn_images((self.cfg.z_dim,), generator, n, semantics.device)
        elif tuple(z.shape) != (n, self.cfg.z_dim):
            raise ValueError(f"z must be [{n}, {self.cfg.z_dim}], got {tuple(z.shape)}")
        G = self.nets["G"]
        with eval_mode(G):
            fake = G(semantics, None if z is None else z.to(semantics.device))
        return to_uint8(fake)

    @torch.no_grad()
    def encode_style(self, image, label, *, generator=None):
        """z = mu + eps * sigma of the encoded image (the official test-time style code)."""
        if not self.cfg.use_vae:
            return super().encode_style(image, label, generator=generator)
        E = self.nets["E"]
        with eval_mode(E):
            mu, logvar = E(image.to(self.device))
        eps = randn_images(tuple(mu.shape[1:]), generator, mu.shape[0], mu.device)
        return mu + eps * torch.exp(0.5 * logvar)

    # official checkpoints ----------------------------------------------------------------------
    OFFICIAL_FILES = {"G": "latest_net_G.pth", "D": "latest_net_D.pth", "E": "latest_net_E.pth"}

    def import_official(self, paths: Mapping[str, str | Path]) -> ImportReport:
        """Load NVlabs/SPADE ``latest_net_{G,D,E}.pth`` (keys 'G', 'D', 'E'); strict keys."""
        unknown = sorted(set(paths) - set(self.nets))
        if unknown:
            raise OfficialCheckpointError(f"unknown network(s) {unknown} for SPADE; this "
                                          f"configuration has {sorted(self.nets)}")
        if "G" not in paths:
            raise OfficialCheckpointError("import_official needs at least the generator: "
                                          "{'G': 'latest_net_G.pth'}")
        hint = (f"the options must match the checkpoint (semantic channels {self.semantic_nc}, "
                f"ngf {self.cfg.ngf}, num_upsampling_layers {self.cfg.num_upsampling_layers!r}, "
                f"use_vae {self.cfg.use_vae})")
        report = ImportReport(loaded={})
        for name, path in paths.items():
            count, tolerated = load_official(self.nets[name], path, f"SPADE {name}", hint)
            report.loaded[str(path)] = count
            if tolerated:
                report.notes.append(f"{path}: {len(tolerated)} BatchNorm step counters absent "
                                    "(filled with 0; they do not change any output)")
        return report

    def export_official(self, directory: str | Path) -> dict[str, Path]:
        """Write latest_net_{G,D,E}.pth in the official key layout (loadable by NVlabs/SPADE)."""
        directory = Path(directory)
        return {name: save_official(net, directory / self.OFFICIAL_FILES[name])
                for name, net in self.nets.items()}


def build_networks(cfg: SPADE.Config, semantic_nc: int,
                   image_size: tuple[int, int]) -> dict[str, nn.Module]:
    """G, D (and E with the VAE) at the configuration; no initialisation (see SPADE.__init__)."""
    nets: dict[str, nn.Module] = {
        "G": SPADEGenerator(semantic_nc, image_size, ngf=cfg.ngf,
                            num_upsampling_layers=cfg.num_upsampling_layers, use_vae=cfg.use_vae,
                            z_dim=cfg.z_dim, norm=cfg.norm_G, spectral_norm=cfg.spectral_G,
                            spade_kernel_size=cfg.spade_kernel_size, spade_nhidden=cfg.spade_nhidden),
        "D": MultiscaleDiscriminator(semantic_nc + 3, num_D=cfg.num_D, n_layers=cfg.n_layers_D,
                                     ndf=cfg.ndf, layout="spade", spectral_norm=cfg.spectral_D),
    }
    if cfg.use_vae:
        # the official encoder's width is ngf (its --nef option is unused)
        nets["E"] = ConvEncoder(ndf=cfg.ngf, z_dim=cfg.z_dim, input_size=cfg.encoder_input_size)
    return nets
