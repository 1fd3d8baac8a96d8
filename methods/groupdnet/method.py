"""GroupDNet (Zhu et al., CVPR 2020; official code Seanseattle/SMIS) behind the Method contract.

Networks: ``E`` (group encoder, one code per class), ``G`` (CG-Block decoder), ``D`` (the SPADE
multi-scale PatchGAN on label ⊕ image). One training step, as the official trainer: a G/E update
(hinge ``G_GAN``, feature matching ``G_feat`` x 10 / num_D, VGG ``G_VGG`` x 10, ``KLD`` x 0.05
summed over all B x 8C x h x w code entries), then a D update on a detached fake. TTUR: G/E
1e-4, D 4e-4, Adam betas (0, 0.9).

Class-wise control (what makes GroupDNet "semantically multi-modal"). Codes are
``[N, C, 8, h, w]``: C one-hot label channels (don't-care included, the edge channel not),
8 latent channels per class on the latent grid ``(h, w)`` (4x4 at 256x256, 4x8 at 512x256 with
the 'more' schedule). ``z`` of the networks is the same memory viewed as ``[N, 8C, h, w]``::

    codes = m.sample_class_codes(label, generators)            # z ~ N(0, I) for every class
    codes = m.sample_class_codes(label, generators, base=codes, classes=[3])
                                                               # re-draw class 3 only
    codes = m.encode_class_codes(image, label)                 # mu of the group encoder
    mixed = codes_a.clone(); mixed[:, 7] = codes_b[:, 7]       # appearance mixture
    images = m.generate_from_codes(label, mixed)               # uint8 [N, 3, H, W]
    images = m.generate_from_codes(edited_label, codes)        # semantic manipulation
    images = m.generate_from_codes(label, (1 - a) * za + a * zb)   # style morphing

An absent class has no pixels: its encoded code is what E gives for an all-zero crop, and its
code does not change the image except through the classes the decoder's later blocks mix.
``capabilities()['classwise']`` is True.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Mapping, Sequence

import torch
from torch import nn

from harness.core.config import runtime
from harness.core.data.base import Batch, DatasetInfo
from methods import register_method
from methods.base import (ImportReport, Method, Nets, Phase, Runtime, randn_per_sample,
                          semantic_input, to_uint8)
from methods.blocks.init import init_weights
from methods.blocks.losses import GANLoss, kl_divergence, reparameterize
from methods.blocks.multiscale_discriminator import MultiscaleDiscriminator
from methods.groupdnet.generator import GroupDNetGenerator
from methods.groupdnet.group_encoder import GroupEncoder, class_crops
from methods.groupdnet.schedule import CODE_CHANNELS, plan_decoder
from methods.spade.common import discriminator_terms, eval_mode, generator_adversarial_terms

Generators = torch.Generator | Sequence[torch.Generator] | None


@dataclass
class GroupDNetConfig:
    """Hyper-parameters; defaults are the official ADE20K values (methods.md §4, B.4)."""
    layout: Literal["ade20k", "cityscapes"] = "ade20k"   # decoder widths + CG-Norm rule (schedule.py)
    ngf: int = 64                                       # official: ADE20K 64, Cityscapes 280
    groups: tuple[int, ...] | None = None               # head_0 ... up_3; None: official / derived
    num_upsampling_layers: Literal["normal", "more"] = "more"  # official 'more' on every dataset
    norm_G: Literal["syncbatch", "batch", "instance"] = "syncbatch"  # param-free norm in CG-Norm
    spectral_G: bool = True                             # SN on the CG-Block convs
    use_instance_edges: bool = True                     # (mask, edge) pairs when instances exist
    nef_per_class: int = 4                              # encoder width per class (Cityscapes 10)
    crop_bbox: Literal["mask", "rgb_sum"] = "mask"      # 'rgb_sum': the official quirk (§4.2)
    lambda_kld: float = 0.05
    # discriminator (SPADE multi-scale, norm_D spectralinstance)
    ndf: int = 64
    num_D: int = 2
    n_layers_D: int = 4
    spectral_D: bool = True
    # losses
    gan_mode: Literal["hinge", "ls", "original", "w"] = "hinge"
    lambda_feat: float = 10.0                           # 0 disables feature matching
    lambda_vgg: float = 10.0                            # 0 disables the VGG loss
    vgg_weights: str | None = runtime(None)             # vgg19-dcbb9e9d.pth; None: weights dir / hub
    # optimisation: TTUR, betas hard-coded (0, 0.9) in the official code
    lr_G: float = 1e-4
    lr_D: float = 4e-4
    beta1: float = 0.0
    beta2: float = 0.9
    init_type: Literal["xavier", "normal", "kaiming", "orthogonal"] = "xavier"
    init_variance: float = 0.02                         # used as the xavier gain (official)

    def __post_init__(self) -> None:
        for name in ("ngf", "ndf", "num_D", "nef_per_class"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_layers_D < 2:
            raise ValueError(f"n_layers_D must be >= 2, got {self.n_layers_D}")
        for name in ("lambda_kld", "lambda_feat", "lambda_vgg", "lr_G", "lr_D", "init_variance"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.groups is not None:
            self.groups = tuple(int(g) for g in self.groups)


def uses_edges(cfg: GroupDNetConfig, info: DatasetInfo) -> bool:
    return bool(cfg.use_instance_edges and info.has_instances)


def build_networks(cfg: GroupDNetConfig, info: DatasetInfo) -> dict[str, nn.Module]:
    """G, D, E at the configuration, uninitialised (works under ``torch.device('meta')``)."""
    classes, edges = info.num_label_channels, uses_edges(cfg, info)
    size = tuple(info.image_size)
    plan = plan_decoder(cfg.layout, classes, cfg.ngf, cfg.groups)
    G = GroupDNetGenerator(plan, size, edges=edges, num_upsampling_layers=cfg.num_upsampling_layers,
                           norm=cfg.norm_G, spectral_norm=cfg.spectral_G)
    return {
        "G": G,
        "D": MultiscaleDiscriminator(classes + int(edges) + 3, num_D=cfg.num_D, n_layers=cfg.n_layers_D,
                                     ndf=cfg.ndf, layout="spade", spectral_norm=cfg.spectral_D),
        # the official crops are resized to the training size (256x256, 256x512 Cityscapes)
        "E": GroupEncoder(classes, cfg.nef_per_class, size, (G.sh, G.sw)),
    }


@register_method("groupdnet")
class GroupDNet(Method):
    """GroupDNet: group encoder + CG-Norm decoder; one latent code per semantic class."""

    Config = GroupDNetConfig

    def __init__(self, cfg: GroupDNetConfig, info: DatasetInfo, runtime: Runtime | None = None) -> None:
        super().__init__(cfg, info, runtime)
        self.classes = info.num_label_channels
        self.use_edges = uses_edges(cfg, info)
        self.image_size = tuple(info.image_size)
        self.nets = nn.ModuleDict(build_networks(cfg, info))
        for net in self.nets.values():
            init_weights(net, cfg.init_type, cfg.init_variance)
        self.nets["G"].freeze_unused()
        self.gan_loss = GANLoss(cfg.gan_mode, scales="mean")
        betas = (cfg.beta1, cfg.beta2)
        g_params = [p for name in ("G", "E") for p in self.nets[name].parameters() if p.requires_grad]
        self._optimizers = {"G": torch.optim.Adam(g_params, lr=cfg.lr_G, betas=betas),
                            "D": torch.optim.Adam(self.nets["D"].parameters(), lr=cfg.lr_D, betas=betas)}

    # training ---------------------------------------------------------------------------------
    def phases(self) -> list[Phase]:
        return [Phase("generator", "G", ("G", "E"), self.generator_loss),
                Phase("discriminator", "D", ("D",), self.discriminator_loss)]

    def semantics(self, label: torch.Tensor, instance: torch.Tensor | None = None,
                  edge: torch.Tensor | None = None) -> torch.Tensor:
        """One-hot [N, C, H, W] (+ the instance edge channel last)."""
        dev = self.device
        seg = semantic_input(label.to(dev), self.classes, None if edge is None else edge.to(dev),
                             None if instance is None else instance.to(dev), self.use_edges)
        if tuple(seg.shape[2:]) != self.image_size:
            raise ValueError(f"GroupDNet generates {self.image_size[0]}x{self.image_size[1]} "
                             f"images (its latent grid is fixed by the training size); got a "
                             f"label map of {seg.shape[2]}x{seg.shape[3]}")
        return seg

    def _posterior(self, E: nn.Module, semantics: torch.Tensor, image: torch.Tensor):
        crops = class_crops(image.to(semantics.device, semantics.dtype), semantics[:, :self.classes],
                            self.image_size, bbox=self.cfg.crop_bbox)
        return E(crops)

    def _fake(self, nets: Nets, semantics: torch.Tensor, real: torch.Tensor):
        mu, logvar = self._posterior(nets.E, semantics, real)
        return nets.G(semantics, reparameterize(mu, logvar)), (mu, logvar)

    def generator_loss(self, batch: Batch, nets: Nets, step: int) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        semantics = self.semantics(batch.label, batch.instance, batch.edge)
        real = batch.image.to(semantics.device)
        fake, (mu, logvar) = self._fake(nets, semantics, real)
        from methods.blocks.vgg_loss import lazy_vgg_loss
        terms = {"KLD": kl_divergence(mu, logvar) * cfg.lambda_kld}
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

    # generation -------------------------------------------------------------------------------
    @classmethod
    def multimodal_for(cls, cfg: GroupDNetConfig) -> bool:
        return True  # every configuration samples per-class codes

    @property
    def multimodal(self) -> bool:
        return True

    @property
    def code_shape(self) -> tuple[int, int, int, int]:
        """(C, 8, h, w) of one image's class codes."""
        return self.nets["G"].code_shape

    def _codes_to_z(self, codes: torch.Tensor, n: int) -> torch.Tensor:
        want = (n, *self.code_shape)
        flat = (n, CODE_CHANNELS * self.classes, *self.code_shape[2:])
        if tuple(codes.shape) == flat:
            return codes
        if tuple(codes.shape) != want:
            raise ValueError(f"class codes must be {want} (or z {flat}), got {tuple(codes.shape)}")
        return codes.reshape(flat)

    def sample_class_codes(self, label: torch.Tensor, generator: Generators = None, *,
                           base: torch.Tensor | None = None,
                           classes: Sequence[int] | None = None) -> torch.Tensor:
        """N(0, I) codes [N, C, 8, h, w], one draw per image from its generator. With ``base``
        and ``classes`` only those classes are re-drawn (the official ``--test_mask``); the
        others are copied from ``base``."""
        n = label.shape[0]
        fresh = randn_per_sample(self.code_shape, n, generator, self.device)
        if base is None and classes is None:
            return fresh
        if base is None or classes is None:
            raise ValueError("re-sampling some classes needs both base codes and the classes")
        base = self._codes_to_z(base.to(self.device), n).reshape(n, *self.code_shape)
        idx = self._class_indices(classes)
        out = base.clone()
        out[:, idx] = fresh[:, idx]
        return out

    def _class_indices(self, classes: Sequence[int]) -> list[int]:
        idx = [int(c) for c in classes]
        bad = [c for c in idx if not 0 <= c < self.classes]
        if bad:
            raise ValueError(f"class ids {bad} out of range: this model has {self.classes} label "
                             f"channels (0 .. {self.classes - 1})")
        return idx

    @torch.no_grad()
    def encode_class_codes(self, image: torch.Tensor, label: torch.Tensor, *,
                           instance: torch.Tensor | None = None, edge: torch.Tensor | None = None,
                           generator: Generators = None, sample: bool = False) -> torch.Tensor:
        """Per-class codes [N, C, 8, h, w] of ``image`` ([N,3,H,W] in [-1,1]) under ``label``:
        the encoder mean, or with ``sample`` a reparameterised draw (eps from ``generator``).
        Every class's code depends only on that class's pixels."""
        if image.dim() != 4 or image.shape[1] != 3 or image.shape[0] != label.shape[0]:
            raise ValueError(f"image must be [N,3,H,W] in [-1,1] with one image per label map, "
                             f"got {tuple(image.shape)} for {label.shape[0]} label maps")
        # the encoder sees the class masks only (never the edge map): instance / edge are accepted
        # for symmetry with generate_from_codes and not needed
        onehot = semantic_input(label.to(self.device), self.classes)
        with eval_mode(self.nets["E"]):
            mu, logvar = self._posterior(self.nets["E"], onehot, image)
        z = reparameterize(mu, logvar, generator) if sample else mu
        return z.reshape(label.shape[0], *self.code_shape)

    @torch.no_grad()
    def encode_style(self, image: torch.Tensor, label: torch.Tensor, *,
                     generator: Generators = None) -> torch.Tensor:
        """z [N, 8C, h, w] = mu + eps * sigma of the group encoder (the training-time code)."""
        n = label.shape[0]
        return self._codes_to_z(self.encode_class_codes(image, label, generator=generator,
                                                        sample=True), n)

    @torch.no_grad()
    def generate_from_codes(self, label: torch.Tensor, codes: torch.Tensor, *,
                            instance: torch.Tensor | None = None,
                            edge: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 [N, 3, H, W] from class codes [N, C, 8, h, w] (or z [N, 8C, h, w])."""
        z = self._codes_to_z(codes.to(self.device), label.shape[0])
        semantics = self.semantics(label, instance, edge)
        with eval_mode(self.nets["G"]):
            return to_uint8(self.nets["G"](semantics, z))

    @torch.no_grad()
    def generate(self, label: torch.Tensor, instance: torch.Tensor | None = None, *,
                 edge: torch.Tensor | None = None, z: torch.Tensor | None = None,
                 generator: Generators = None, style_image: torch.Tensor | None = None) -> torch.Tensor:
        n = label.shape[0]
        if z is None:
            if style_image is not None:
                if style_image.shape[0] != n:
                    raise ValueError(f"{style_image.shape[0]} style images for {n} label maps")
                z = self.encode_class_codes(style_image, label, instance=instance, edge=edge,
                                            generator=generator, sample=True)
            else:
                z = self.sample_class_codes(label, generator)
        return self.generate_from_codes(label, z, instance=instance, edge=edge)

    # official checkpoints ---------------------------------------------------------------------
    def import_official(self, paths: Mapping[str, str | Path]) -> ImportReport:
        """Load SMIS ``latest_net_{G,D,E}.pth`` (``{'G': ..., 'D': ..., 'E': ...}``; G required),
        strictly: see :mod:`methods.groupdnet.official_import`."""
        from methods.groupdnet.official_import import import_official
        return import_official(self, paths)
