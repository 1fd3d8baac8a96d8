"""CC-FPSE (Liu et al., NeurIPS 2019) behind the harness Method contract.

Networks: ``G`` (:class:`CondConvGenerator`), ``D`` (:class:`FPSEDiscriminator`) and, with the VAE,
``E`` (the SPADE ``ConvEncoder``). One training step = a G/E update, then a D update on a freshly
generated (detached) fake, as in the official trainer. Losses (official recipe):

- generator: hinge ``G_GAN`` = -mean(D(fake)) averaged over the 3 score maps; ``G_feat`` = L1
  between the 4 encoder features of D on fake and real, each x lambda_feat / 4 (lambda_feat 20);
  ``G_VGG`` = VGG19 perceptual loss x 10; ``KLD`` = summed KL divergence x 0.05 (VAE only);
- discriminator: ``D_fake`` + ``D_real`` hinge terms (not halved), averaged over the 3 maps.

Inference: with the VAE the style code is z ~ N(0, I) by default; ``style_image`` encodes the
ground-truth image instead (a reparameterised sample, what the released test scripts did).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal, Mapping, Sequence

import torch
from torch import nn

from harness.core.config import runtime
from harness.core.data.base import Batch, DatasetInfo
from methods import register_method
from methods.base import (ImportReport, Method, Nets, NotSupported, Phase, Runtime, randn_per_sample,
                          semantic_input, to_uint8)
from methods.blocks.conv_encoder import ConvEncoder
from methods.blocks.init import init_weights
from methods.blocks.losses import GANLoss, feature_matching, kl_divergence, reparameterize
from methods.ccfpse import official
from methods.ccfpse.fpse_discriminator import FPSEDiscriminator
from methods.ccfpse.generator import CondConvGenerator, latent_size


@dataclass
class CCFPSEConfig:
    """Hyper-parameters; defaults are the official values (train.sh + option defaults)."""
    ngf: int = 64                      # generator width (16*ngf channels at the latent grid)
    ndf: int = 64                      # FPSE discriminator width
    z_dim: int = 256                   # VAE style code
    use_vae: bool = True               # all released models use the VAE (--use_vae)
    instance_edges: bool = True        # add the instance-edge channel when the dataset has instances
    num_upsampling_layers: Literal["normal", "more"] = "normal"  # 'more' for Cityscapes
    hidden: int = 128                  # width of the weight-prediction heads and SPADE shortcut MLPs
    encoder_input_size: int = 256      # the encoder resizes images to this square size
    gan_mode: Literal["hinge", "ls", "original", "w"] = "hinge"
    lambda_feat: float = 20.0          # train.sh (option default 10)
    lambda_vgg: float = 10.0
    lambda_kld: float = 0.05
    gan_feat_loss: bool = True
    vgg_loss: bool = True              # needs VGG19 ImageNet weights (weight resolution)
    vgg_weights: str | None = runtime(None)  # explicit VGG19 file; else $HARNESS_WEIGHTS_DIR / hub
    lr_g: float = 1e-4                 # TTUR: lr / 2 ...
    lr_d: float = 4e-4                 # ... and lr * 2, lr = 2e-4
    beta1: float = 0.0                 # hard-coded (0, 0.9) under TTUR in the official code
    beta2: float = 0.9
    init_type: Literal["xavier", "normal", "kaiming", "orthogonal"] = "xavier"
    init_gain: float = 0.02            # the official 'init_variance', used as the xavier gain
    # Affine BatchNorm init. The official recipe (--mpdist) builds nn.SyncBatchNorm, whose class
    # name escapes the official init rule, so it keeps weight 1 / bias 0 ('constant'); without
    # --mpdist the official code draws weight ~ N(1, init_gain) ('normal').
    batchnorm_init: Literal["constant", "normal"] = "constant"
    # Same maths (a runtime choice, not hashed); 'unfold' = the official, memory-hungry formulation.
    conditional_conv: Literal["lean", "unfold"] = runtime("lean")
    # Recompute the kernel-prediction heads and conditional convolutions of every block in
    # backward instead of storing them (same gradients, less memory, ~1/3 more generator compute;
    # bench: python -m bench ccfpse_checkpoint). A runtime choice, not hashed.
    checkpoint_activations: bool = runtime(False)
    # Run the weight-prediction heads' first convolutions (all reading the same layout map) as
    # one convolution; same parameters and state dict, same maths up to float summation order.
    # A runtime choice, not hashed (bench: python -m bench ccfpse_levers).
    batched_heads: bool = runtime(False)

    def __post_init__(self) -> None:
        for name in ("ngf", "ndf", "z_dim", "hidden", "encoder_input_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lambda_feat", "lambda_vgg", "lambda_kld", "lr_g", "lr_d", "init_gain"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {getattr(self, name)}")


def check_image_size(size: tuple[int, int], schedule: str) -> None:
    """The generator needs multiples of 2^U; the discriminator's 1/32 map needs >= 2 pixels
    (InstanceNorm); one clear error instead of a shape error deep inside a network."""
    latent_size(size, schedule)
    h, w = size
    if (h // 32) * (w // 32) < 2:
        raise ValueError(f"image size {h}x{w} (HxW) is too small for the FPSE discriminator: its "
                         "1/32 feature map needs at least 2 pixels (e.g. 64x64 or 32x64)")


def semantic_channels(cfg: CCFPSEConfig, info: DatasetInfo) -> int:
    """S: one-hot channels (+ don't-care) + the edge channel when used."""
    return info.num_label_channels + int(uses_edges(cfg, info))


def uses_edges(cfg: CCFPSEConfig, info: DatasetInfo) -> bool:
    return cfg.instance_edges and info.has_instances


def build_networks(cfg: CCFPSEConfig, info: DatasetInfo) -> nn.ModuleDict:
    """G, D (and E with the VAE), uninitialised; works under ``torch.device('meta')``."""
    s = semantic_channels(cfg, info)
    nets = nn.ModuleDict({
        "G": CondConvGenerator(s, tuple(info.image_size), ngf=cfg.ngf, z_dim=cfg.z_dim,
                               use_vae=cfg.use_vae, num_upsampling_layers=cfg.num_upsampling_layers,
                               hidden=cfg.hidden, conditional_conv=cfg.conditional_conv,
                               checkpoint_activations=cfg.checkpoint_activations,
                               batched_heads=cfg.batched_heads),
        "D": FPSEDiscriminator(s, cfg.ndf),
    })
    if cfg.use_vae:
        nets["E"] = ConvEncoder(ndf=cfg.ngf, z_dim=cfg.z_dim, input_size=cfg.encoder_input_size)
    return nets


@torch.no_grad()
def initialise(nets: nn.ModuleDict, cfg: CCFPSEConfig) -> None:
    for net in nets.values():
        init_weights(net, cfg.init_type, cfg.init_gain)
        if cfg.batchnorm_init == "constant":
            for m in net.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
                    m.weight.fill_(1.0)
                    m.bias.zero_()


@contextlib.contextmanager
def eval_mode(modules: nn.ModuleDict) -> Iterator[None]:
    """Evaluation mode (BN running statistics, no spectral-norm update), restored afterwards."""
    saved = [(m, m.training) for m in modules.modules()]
    modules.eval()
    try:
        yield
    finally:
        for m, flag in saved:
            m.training = flag


def _halves(tensors: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    return [t[: t.shape[0] // 2] for t in tensors], [t[t.shape[0] // 2:] for t in tensors]


@register_method("ccfpse")
class CCFPSE(Method):
    """CC-FPSE: conditional convolutions predicted from the layout + FPSE discriminator."""

    Config = CCFPSEConfig

    def __init__(self, cfg: CCFPSEConfig, info: DatasetInfo, runtime: Runtime | None = None) -> None:
        super().__init__(cfg, info, runtime)
        check_image_size(tuple(info.image_size), cfg.num_upsampling_layers)
        self.use_edges = uses_edges(cfg, info)
        self.nets = build_networks(cfg, info)
        initialise(self.nets, cfg)
        self.gan_loss = GANLoss(cfg.gan_mode, scales="mean")
        g_params = [p for name in ("G", "E") if name in self.nets
                    for p in self.nets[name].parameters() if p.requires_grad]
        d_params = [p for p in self.nets["D"].parameters() if p.requires_grad]
        betas = (cfg.beta1, cfg.beta2)
        self._optimizers = {"G": torch.optim.Adam(g_params, lr=cfg.lr_g, betas=betas),
                            "D": torch.optim.Adam(d_params, lr=cfg.lr_d, betas=betas)}

    # training ---------------------------------------------------------------------------------
    def phases(self) -> list[Phase]:
        g_nets = ("G", "E") if self.cfg.use_vae else ("G",)
        return [Phase("generator", "G", g_nets, self.generator_loss),
                Phase("discriminator", "D", ("D",), self.discriminator_loss)]

    def semantics(self, label: torch.Tensor, edge: torch.Tensor | None = None,
                  instance: torch.Tensor | None = None) -> torch.Tensor:
        return semantic_input(label, self.info.num_label_channels, edge, instance, self.use_edges)

    def _fake(self, nets: Nets, seg: torch.Tensor, real: torch.Tensor, *,
              with_kld: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        z = kld = None
        if self.cfg.use_vae:
            mu, logvar = nets.E(real)
            z = reparameterize(mu, logvar)
            if with_kld:
                kld = kl_divergence(mu, logvar) * self.cfg.lambda_kld
        return nets.G(seg, z), kld

    @staticmethod
    def _discriminate(nets: Nets, seg: torch.Tensor, fake: torch.Tensor, real: torch.Tensor):
        """D on [fake; real] in one batch, as the official code; returns fake and real halves."""
        feats, preds = nets.D(torch.cat([fake, real.to(fake.dtype)]), torch.cat([seg, seg]))
        fake_feats, real_feats = _halves(feats)
        fake_preds, real_preds = _halves(preds)
        return fake_feats, fake_preds, real_feats, real_preds

    def generator_loss(self, batch: Batch, nets: Nets, step: int) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        seg = self.semantics(batch.label, batch.edge, batch.instance)
        fake, kld = self._fake(nets, seg, batch.image, with_kld=True)
        fake_feats, fake_preds, real_feats, _ = self._discriminate(nets, seg, fake, batch.image)
        terms: dict[str, torch.Tensor] = {}
        if kld is not None:
            terms["KLD"] = kld
        terms["G_GAN"] = self.gan_loss(fake_preds, True, for_discriminator=False)
        if cfg.gan_feat_loss:
            terms["G_feat"] = feature_matching([fake_feats], [real_feats],
                                               cfg.lambda_feat / len(fake_feats), skip_last=False)
        if cfg.vgg_loss and cfg.lambda_vgg > 0:
            terms["G_VGG"] = self.perceptual_loss(fake.device)(fake, batch.image) * cfg.lambda_vgg
        return terms

    def perceptual_loss(self, device: torch.device) -> nn.Module:
        """The VGG19 loss, loaded at the first training step: generating from a trained or an
        imported model must not need the VGG19 weights."""
        from methods.blocks.vgg_loss import lazy_vgg_loss
        return lazy_vgg_loss(self.aux, self.cfg.vgg_weights, device)

    def discriminator_loss(self, batch: Batch, nets: Nets, step: int) -> dict[str, torch.Tensor]:
        seg = self.semantics(batch.label, batch.edge, batch.instance)
        with torch.no_grad():
            fake, _ = self._fake(nets, seg, batch.image, with_kld=False)
        _, fake_preds, _, real_preds = self._discriminate(nets, seg, fake.detach(), batch.image)
        return {"D_fake": self.gan_loss(fake_preds, False, for_discriminator=True),
                "D_real": self.gan_loss(real_preds, True, for_discriminator=True)}

    # generation -------------------------------------------------------------------------------
    @classmethod
    def required_weights(cls, cfg: CCFPSEConfig) -> list:
        if cfg.vgg_loss and cfg.lambda_vgg > 0:
            from methods.blocks.vgg_loss import vgg_weight_need
            return [vgg_weight_need(cfg.vgg_weights, "method.vgg_loss and method.lambda_vgg > 0")]
        return []

    @classmethod
    def multimodal_for(cls, cfg: CCFPSEConfig) -> bool:
        return bool(cfg.use_vae)

    @classmethod
    def style_encoding_for(cls, cfg: CCFPSEConfig) -> bool:
        return bool(cfg.use_vae)  # the encoder exists only in the VAE configuration

    @property
    def multimodal(self) -> bool:
        return self.cfg.use_vae

    @property
    def supports_style_encoding(self) -> bool:
        return self.cfg.use_vae

    @torch.no_grad()
    def encode_style(self, image: torch.Tensor, label: torch.Tensor, *,
                     generator: torch.Generator | Sequence[torch.Generator] | None = None
                     ) -> torch.Tensor:
        """z = mu + eps * sigma of the encoded image (the official test-time behaviour)."""
        if not self.cfg.use_vae:
            raise NotSupported("CC-FPSE without the VAE (use_vae: false) has no style encoder")
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"style image must be [N,3,H,W] in [-1,1], got {tuple(image.shape)}")
        with eval_mode(self.nets):
            mu, logvar = self.nets["E"](image.to(self.device, torch.float32))
        return reparameterize(mu, logvar, generator)

    @torch.no_grad()
    def generate(self, label: torch.Tensor, instance: torch.Tensor | None = None, *,
                 edge: torch.Tensor | None = None, z: torch.Tensor | None = None,
                 generator: torch.Generator | Sequence[torch.Generator] | None = None,
                 style_image: torch.Tensor | None = None) -> torch.Tensor:
        device = self.device
        n = label.shape[0]
        seg = self.semantics(label.to(device), None if edge is None else edge.to(device),
                             None if instance is None else instance.to(device))
        if not self.cfg.use_vae:
            if style_image is not None:
                raise NotSupported("CC-FPSE without the VAE (use_vae: false) cannot take a style image")
            if z is not None:
                raise ValueError("CC-FPSE without the VAE (use_vae: false) is deterministic: "
                                 "it takes no z")
        elif z is None:
            if style_image is not None:
                if style_image.shape[0] != n:
                    raise ValueError(f"{style_image.shape[0]} style images for {n} label maps")
                z = self.encode_style(style_image, label, generator=generator)
            else:
                z = randn_per_sample((self.cfg.z_dim,), n, generator, device)
        elif tuple(z.shape) != (n, self.cfg.z_dim):
            raise ValueError(f"z must have shape {(n, self.cfg.z_dim)}, got {tuple(z.shape)}")
        with eval_mode(self.nets):
            image = self.nets["G"](seg, None if z is None else z.to(device, torch.float32))
        return to_uint8(image)

    # official checkpoints ---------------------------------------------------------------------
    def import_official(self, paths: Mapping[str, str | Path]) -> ImportReport:
        """Load ``{'G': latest_net_G.pth, 'D': ..._D.pth, 'E': ..._E.pth}`` saved by the official
        code (see :mod:`methods.ccfpse.official`)."""
        official.check_paths(paths, self.cfg.use_vae)
        # Check every file before touching any network: a bad D file leaves G as it was.
        prepared = {name: official.prepare_official(name, self.nets[name], paths[name])
                    for name in official.NETWORKS if name in paths}
        loaded: dict[str, int] = {}
        notes: list[str] = []
        for name, (state, count, more) in prepared.items():
            self.nets[name].load_state_dict(state, strict=True)
            loaded[name] = count
            notes.extend(more)
        if self.cfg.use_vae and "E" not in paths:
            notes.append("no encoder checkpoint: generation can use random z only (no style_image)")
        if "D" not in paths:
            notes.append("no discriminator checkpoint: fine for evaluation, not for resuming training")
        return ImportReport(loaded=loaded, dropped={}, notes=notes)
