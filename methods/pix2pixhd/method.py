"""pix2pixHD (Wang et al., CVPR 2018) behind the harness Method contract.

``recipe: original`` follows NVIDIA/pix2pixHD @ 14b3b3c (methods.md §1, B.1): global generator or
local enhancer, multi-scale PatchGAN without spectral norm, LSGAN summed over scales, feature
matching (1/num_D)(4/(n_layers_D+1)) lambda_feat, VGG x lambda_feat, D loss x 0.5, Adam 2e-4
(0.5, 0.999), and the instance-wise feature encoder with K-means clusters for multi-modal
inference. One generator forward per step: the discriminator update reuses the fake of the
generator phase (computed before the G update, as in the official single forward).

``recipe: spade`` is the pix2pixHD baseline of the SPADE repository (methods.md §2.7): the global
generator with spectral norm + InstanceNorm on every conv but the head (biases removed), trained
with SPADE's discriminator (SN + IN), hinge loss, FM lambda_feat/num_D, VGG 10, TTUR (1e-4 /
4e-4, betas (0, 0.9)), fake regenerated for the D update, D loss not halved.

Recipe-dependent fields left at ``null`` take the recipe's official value (resolved when the
configuration is built, so the recorded configuration is explicit).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Mapping

import numpy as np
import torch
from torch import nn

from harness.core.config import runtime
from harness.core.data.base import Batch, DatasetInfo
from methods import register_method
from methods.base import ImportReport, Method, Nets, Phase, Runtime, semantic_input, to_uint8
from methods.blocks.init import init_weights
from methods.blocks.losses import GANLoss, feature_matching
from methods.blocks.multiscale_discriminator import MultiscaleDiscriminator
from methods.blocks.vgg_loss import lazy_vgg_loss, vgg_weight_need
from methods.pix2pixhd.clustering import (clusters_filename, cluster_features, load_clusters,
                                          sample_cluster_features, save_clusters)
from methods.pix2pixhd.encoder import FeatureEncoder
from methods.pix2pixhd.generator import GlobalGenerator, LocalEnhancer
from methods.spade.common import discriminate, eval_mode, generator_list
from methods.spade.official import OfficialCheckpointError, load_official, save_official

RECIPE_DEFAULTS = {
    "original": dict(num_D=3, gan_mode="ls", lr_G=2e-4, lr_D=2e-4, beta1=0.5, beta2=0.999,
                     init_type="normal"),
    "spade": dict(num_D=2, gan_mode="hinge", lr_G=1e-4, lr_D=4e-4, beta1=0.0, beta2=0.9,
                  init_type="xavier"),
}


@register_method("pix2pixhd")
class Pix2PixHD(Method):
    """pix2pixHD: coarse-to-fine residual generator, multi-scale PatchGAN, instance features."""

    @dataclass
    class Config:
        recipe: Literal["original", "spade"] = "original"
        # generator
        netG: Literal["global", "local"] = "global"
        ngf: int = 64                          # 32 for 'local' (the global part gets 2 ngf)
        n_downsample_global: int = 4
        n_blocks_global: int = 9
        n_local_enhancers: int = 1
        n_blocks_local: int = 3
        niter_fix_global: int = 0              # epochs training only the local enhancer
        use_instance_edges: bool = True        # add the edge map when the dataset has instances
        # instance-wise features (multi-modal inference through K-means clusters)
        instance_feat: bool = False
        feat_num: int = 3
        nef: int = 16
        n_downsample_E: int = 4
        n_clusters: int = 10
        # discriminator
        ndf: int = 64
        num_D: int | None = None               # original: 3 (paper, 1024p scripts); spade: 2
        n_layers_D: int = 3                    # pix2pixHD convention (SPADE's n_layers_D 4)
        # losses
        gan_mode: Literal["ls", "hinge", "original", "w"] | None = None  # original: ls; spade: hinge
        lambda_feat: float = 10.0              # 0 disables feature matching
        lambda_vgg: float | None = None        # original: = lambda_feat; spade: 10; 0 disables
        vgg_weights: str | None = runtime(None)
        # optimisation
        lr_G: float | None = None              # original: 2e-4; spade: 1e-4
        lr_D: float | None = None              # original: 2e-4; spade: 4e-4
        beta1: float | None = None             # original: 0.5; spade: 0.0
        beta2: float | None = None             # original: 0.999; spade: 0.9
        init_type: Literal["normal", "xavier"] | None = None  # original: normal; spade: xavier
        init_variance: float = 0.02

        def __post_init__(self) -> None:
            for name, value in RECIPE_DEFAULTS[self.recipe].items():
                if getattr(self, name) is None:
                    setattr(self, name, value)
            if self.lambda_vgg is None:
                self.lambda_vgg = self.lambda_feat if self.recipe == "original" else 10.0
            for name in ("ngf", "n_downsample_global", "n_local_enhancers", "feat_num", "nef",
                         "n_downsample_E", "n_clusters", "ndf", "num_D"):
                if getattr(self, name) < 1:
                    raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
            for name in ("n_blocks_global", "n_blocks_local", "niter_fix_global"):
                if getattr(self, name) < 0:
                    raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
            if self.n_layers_D < 1:
                raise ValueError(f"n_layers_D must be >= 1, got {self.n_layers_D}")
            for name in ("lambda_feat", "lambda_vgg", "lr_G", "lr_D"):
                if getattr(self, name) < 0:
                    raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
            if self.niter_fix_global and self.netG != "local":
                raise ValueError("niter_fix_global trains only the local enhancer: it needs "
                                 "netG: local")
            if self.recipe == "spade" and (self.netG != "global" or self.instance_feat):
                raise ValueError("recipe 'spade' is the SPADE repository's global generator: "
                                 "netG must be 'global' and instance_feat false")

    def __init__(self, cfg: "Pix2PixHD.Config", info: DatasetInfo, runtime: Runtime | None = None) -> None:
        super().__init__(cfg, info, runtime)
        self.use_edge = bool(cfg.use_instance_edges and info.has_instances)
        self.semantic_nc = info.num_label_channels + int(self.use_edge)
        self.nets = nn.ModuleDict(build_networks(cfg, self.semantic_nc))
        _check_size(info.image_size, self.nets)
        for net in self.nets.values():  # 'normal' keeps PyTorch's default biases, as pix2pixHD
            init_weights(net, cfg.init_type, cfg.init_variance)
        self.gan_loss = GANLoss(cfg.gan_mode, scales="sum" if cfg.recipe == "original" else "mean")
        self.clusters: dict[int, np.ndarray] = {}
        self._warned_no_clusters = False
        self._global_fixed = cfg.netG == "local" and cfg.niter_fix_global > 0
        self._fakes: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._freeze_global(self._global_fixed)
        self._optimizers = {"G": self._generator_optimizer(),
                            "D": torch.optim.Adam(self.nets["D"].parameters(), lr=cfg.lr_D,
                                                  betas=(cfg.beta1, cfg.beta2))}

    # optimisation ------------------------------------------------------------------------------
    def _freeze_global(self, fixed: bool) -> None:
        """While fixed, the global trunk gets no gradient (the official code computes it and
        drops it: the optimiser does not hold those parameters)."""
        G = self.nets["G"]
        local = set(G.local_parameter_names()) if fixed else set()
        for name, p in G.named_parameters():
            p.requires_grad_(not fixed or name in local)

    def _generator_optimizer(self, like: dict | None = None) -> torch.optim.Optimizer:
        """Adam over G (+E); while the global generator is fixed, over the local enhancer (+E).
        ``like``: a param group of the optimiser being replaced, whose lr (set by the runner's
        schedule) and runner bookkeeping keys carry over."""
        G = self.nets["G"]
        if self._global_fixed:
            names = set(G.local_parameter_names())
            params = [p for name, p in G.named_parameters() if name in names]
        else:
            params = list(G.parameters())
        if "E" in self.nets:
            params += list(self.nets["E"].parameters())
        opt = torch.optim.Adam(params, lr=self.cfg.lr_G, betas=(self.cfg.beta1, self.cfg.beta2))
        if like is not None:
            group = opt.param_groups[0]
            for key, value in like.items():
                if key != "params" and (key == "lr" or key not in group):
                    group[key] = value
        return opt

    def begin_step(self, step: int) -> None:
        self._fakes.clear()
        epoch = step // max(1, self.runtime.steps_per_epoch)
        if self._global_fixed and epoch >= self.cfg.niter_fix_global:
            # official update_fixed_params(): Adam rebuilt over all of G (+E), fresh moments
            like = self._optimizers["G"].param_groups[0]
            self._global_fixed = False
            self._freeze_global(False)
            self._optimizers["G"] = self._generator_optimizer(like)

    @property
    def global_fixed(self) -> bool:
        """True while only the local enhancer is trained (first niter_fix_global epochs)."""
        return self._global_fixed

    def phases(self) -> list[Phase]:
        g_nets = ("G", "E") if "E" in self.nets else ("G",)
        return [Phase("generator", "G", g_nets, self.generator_loss),
                Phase("discriminator", "D", ("D",), self.discriminator_loss)]

    # inputs ------------------------------------------------------------------------------------
    def semantics(self, label, instance=None, edge=None) -> torch.Tensor:
        dev = self.device
        return semantic_input(label.to(dev), self.info.num_label_channels,
                              None if edge is None else edge.to(dev),
                              None if instance is None else instance.to(dev), self.use_edge)

    def feature_regions(self, label: torch.Tensor, instance: torch.Tensor | None) -> torch.Tensor:
        """Regions E pools over: the instance map, or the label map when the dataset has none
        (the official ``--label_feat`` behaviour)."""
        return instance if (instance is not None and self.info.has_instances) else label

    def _generator_input(self, semantics, features):
        return semantics if features is None else torch.cat([semantics, features.to(semantics.dtype)], 1)

    def _fake(self, nets: Nets, batch: Batch, semantics: torch.Tensor, real: torch.Tensor):
        features = None
        if "E" in self.nets:
            regions = self.feature_regions(batch.label, batch.instance).to(real.device)
            features = nets.E(real, regions)
        return nets.G(self._generator_input(semantics, features))

    # losses ------------------------------------------------------------------------------------
    def generator_loss(self, batch: Batch, nets: Nets, step: int) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        semantics = self.semantics(batch.label, batch.instance, batch.edge)
        real = batch.image.to(semantics.device)
        fake = self._fake(nets, batch, semantics, real)
        if cfg.recipe == "original":
            self._fakes[id(batch)] = (batch.label, fake.detach())
        pred_fake, pred_real = discriminate(nets.D, semantics, fake, real)
        terms = {"G_GAN": self.gan_loss(pred_fake, True, for_discriminator=False)}
        if cfg.lambda_feat > 0:
            weight = cfg.lambda_feat / cfg.num_D
            if cfg.recipe == "original":
                weight *= 4.0 / (cfg.n_layers_D + 1)
            terms["G_feat"] = feature_matching(pred_fake, pred_real, weight)
        if cfg.lambda_vgg > 0:
            terms["G_VGG"] = lazy_vgg_loss(self.aux, cfg.vgg_weights, fake.device)(
                fake.float(), real.float()) * cfg.lambda_vgg
        return terms

    def discriminator_loss(self, batch: Batch, nets: Nets, step: int) -> dict[str, torch.Tensor]:
        semantics = self.semantics(batch.label, batch.instance, batch.edge)
        real = batch.image.to(semantics.device)
        cached = self._fakes.pop(id(batch), None)
        if cached is not None and cached[0] is batch.label:
            fake = cached[1]
        else:  # spade recipe (regenerated after the G update, as SPADE does) or no G phase ran
            with torch.no_grad():
                fake = self._fake(nets, batch, semantics, real)
        pred_fake, pred_real = discriminate(nets.D, semantics, fake.detach(), real)
        d_fake = self.gan_loss(pred_fake, False, for_discriminator=True)
        d_real = self.gan_loss(pred_real, True, for_discriminator=True)
        if self.cfg.recipe == "original":  # loss_D = (D_fake + D_real) * 0.5
            d_fake, d_real = 0.5 * d_fake, 0.5 * d_real
        return {"D_fake": d_fake, "D_real": d_real}

    # generation --------------------------------------------------------------------------------
    @classmethod
    def required_weights(cls, cfg: "Pix2PixHD.Config") -> list:
        return [vgg_weight_need(cfg.vgg_weights, "method.lambda_vgg > 0")] if cfg.lambda_vgg > 0 else []

    @classmethod
    def multimodal_for(cls, cfg: "Pix2PixHD.Config") -> bool:
        return bool(cfg.instance_feat)  # several outputs through the K-means feature clusters

    @property
    def multimodal(self) -> bool:
        return "E" in self.nets and bool(self.clusters)

    @torch.no_grad()
    def generate(self, label, instance=None, *, edge=None, z=None, generator=None, style_image=None):
        """``z``: explicit instance features [N, feat_num, H, W]; ``style_image``: features encoded
        from that image (official --use_encoded_image); otherwise one cluster centre per instance
        drawn with the image's generator."""
        semantics = self.semantics(label, instance, edge)
        n, _, h, w = semantics.shape
        multiple = max(getattr(net, "size_multiple", 1) for net in self.nets.values())
        if h % multiple or w % multiple:
            raise ValueError(f"pix2pixHD needs label maps whose sides are multiples of {multiple}; "
                             f"got {h}x{w}")
        features = None
        if "E" in self.nets:
            regions = self.feature_regions(label, instance)
            if z is not None:
                if tuple(z.shape) != (n, self.cfg.feat_num, h, w):
                    raise ValueError(f"z (instance features) must be [{n}, {self.cfg.feat_num}, {h}, "
                                     f"{w}], got {tuple(z.shape)}")
                features = z.to(semantics.device)
            elif style_image is not None:
                with eval_mode(self.nets["E"]):
                    features = self.nets["E"](style_image.to(semantics.device),
                                              regions.to(semantics.device))
            else:
                if not self.clusters and not self._warned_no_clusters:
                    self._warned_no_clusters = True  # once per instance (sample grids repeat)
                    warnings.warn("pix2pixHD: no feature clusters yet (run after_training / "
                                  "cluster_features or import features_clustered_010.npy); "
                                  "generating with zero instance features", stacklevel=3)
                features = sample_cluster_features(self.clusters, label, regions, self.cfg.feat_num,
                                                   generator_list(generator, n)).to(semantics.device)
        elif z is not None or style_image is not None:
            raise ValueError("this pix2pixHD configuration has no instance features "
                             "(instance_feat: false): z and style_image are not used")
        G = self.nets["G"]
        with eval_mode(G):
            fake = G(self._generator_input(semantics, features))
        return to_uint8(fake)

    def after_training(self, train_dataset, *, batch_size: int = 1) -> dict:
        """Cluster the instance features of the training set (official encode_features.py)."""
        if "E" not in self.nets:
            return {}
        self.clusters = cluster_features(self, train_dataset, n_clusters=self.cfg.n_clusters,
                                         batch_size=batch_size)
        return {"feature_clusters": {str(k): int(len(v)) for k, v in sorted(self.clusters.items())}}

    # state -------------------------------------------------------------------------------------
    def extra_state(self) -> dict:
        return {"global_fixed": self._global_fixed,
                "clusters": {int(k): torch.as_tensor(v, dtype=torch.float64)
                             for k, v in self.clusters.items()}}

    def load_extra_state(self, state: dict) -> None:
        self.clusters = {int(k): np.asarray(torch.as_tensor(v), dtype=np.float64)
                         for k, v in state.get("clusters", {}).items()}
        fixed = bool(state.get("global_fixed", self._global_fixed))
        if fixed != self._global_fixed:  # rebuild before the optimiser state is loaded into it
            self._global_fixed = fixed
            self._freeze_global(fixed)
            self._optimizers["G"] = self._generator_optimizer()

    # official checkpoints ----------------------------------------------------------------------
    def official_files(self) -> dict[str, str]:
        files = {"G": "latest_net_G.pth", "D": "latest_net_D.pth"}
        if "E" in self.nets:
            files.update(E="latest_net_E.pth", features=clusters_filename(self.cfg.n_clusters))
        return files

    def import_official(self, paths: Mapping[str, str | Path]) -> ImportReport:
        """Load official checkpoints: {'G', 'D', 'E': latest_net_*.pth, 'features':
        features_clustered_010.npy}; NVIDIA/pix2pixHD layout for recipe 'original', NVlabs/SPADE
        (``--netG pix2pixhd``) for recipe 'spade'. Strict keys."""
        allowed = set(self.nets) | ({"features"} if "E" in self.nets else set())
        unknown = sorted(set(paths) - allowed)
        if unknown:
            raise OfficialCheckpointError(f"unknown entry(ies) {unknown} for pix2pixHD; this "
                                          f"configuration accepts {sorted(allowed)}")
        if "G" not in paths:
            raise OfficialCheckpointError("import_official needs at least the generator: "
                                          "{'G': 'latest_net_G.pth'}")
        repo = "NVIDIA/pix2pixHD" if self.cfg.recipe == "original" else "NVlabs/SPADE (--netG pix2pixhd)"
        hint = (f"the configuration must match the {repo} checkpoint (recipe {self.cfg.recipe!r}, "
                f"netG {self.cfg.netG!r}, ngf {self.cfg.ngf}, input channels "
                f"{self.semantic_nc + (self.cfg.feat_num if 'E' in self.nets else 0)}, num_D "
                f"{self.cfg.num_D}, instance_feat {self.cfg.instance_feat})")
        report = ImportReport(loaded={})
        for name, path in paths.items():
            if name == "features":
                try:
                    self.clusters = load_clusters(path, self.cfg.feat_num)
                except ValueError as exc:  # a file of the wrong kind or shape: the user's to fix
                    raise OfficialCheckpointError(f"official pix2pixHD features: {exc}") from exc
                report.loaded[str(path)] = len(self.clusters)
                continue
            count, tolerated = load_official(self.nets[name], path, f"pix2pixHD {name}", hint)
            report.loaded[str(path)] = count
            if tolerated:
                report.notes.append(f"{path}: {len(tolerated)} BatchNorm step counters absent")
        return report

    def export_official(self, directory: str | Path) -> dict[str, Path]:
        """Write the networks (and clusters) under their official file names."""
        directory = Path(directory)
        files = self.official_files()
        out = {name: save_official(net, directory / files[name]) for name, net in self.nets.items()}
        if "E" in self.nets and self.clusters:
            out["features"] = save_clusters(directory / files["features"], self.clusters)
        return out


def build_networks(cfg: Pix2PixHD.Config, semantic_nc: int) -> dict[str, nn.Module]:
    """G, D (and E with instance features) at the configuration, without initialisation."""
    g_in = semantic_nc + (cfg.feat_num if cfg.instance_feat else 0)
    if cfg.netG == "global":
        G: nn.Module = GlobalGenerator(g_in, 3, ngf=cfg.ngf, n_downsampling=cfg.n_downsample_global,
                                       n_blocks=cfg.n_blocks_global,
                                       norm="instance" if cfg.recipe == "original" else "spectralinstance")
    else:
        G = LocalEnhancer(g_in, 3, ngf=cfg.ngf, n_downsample_global=cfg.n_downsample_global,
                          n_blocks_global=cfg.n_blocks_global, n_local_enhancers=cfg.n_local_enhancers,
                          n_blocks_local=cfg.n_blocks_local)
    original = cfg.recipe == "original"
    nets: dict[str, nn.Module] = {
        "G": G,
        "D": MultiscaleDiscriminator(semantic_nc + 3, num_D=cfg.num_D, n_layers=cfg.n_layers_D + 1,
                                     ndf=cfg.ndf, layout="pix2pixhd" if original else "spade",
                                     spectral_norm=not original),
    }
    if cfg.instance_feat:
        nets["E"] = FeatureEncoder(3, cfg.feat_num, nef=cfg.nef, n_downsampling=cfg.n_downsample_E)
    return nets


def _check_size(image_size: tuple[int, int], nets: Mapping[str, nn.Module]) -> None:
    multiple = max(getattr(net, "size_multiple", 1) for net in nets.values())
    h, w = image_size
    if h % multiple or w % multiple:
        raise ValueError(f"pix2pixHD with this configuration needs image sides that are multiples "
                         f"of {multiple} (2^downsamplings); the dataset gives {h}x{w}")
