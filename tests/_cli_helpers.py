"""Helpers for the CLI, orchestration and contract tests: a toy method and CLI invocation.

The toy method is a real (tiny) conditional GAN implementing the Method contract; the broken
variants each violate exactly one rule so the contract suite can be shown to catch it.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from harness.core.data.base import DatasetInfo
from methods.base import Method, Phase, randn_per_sample, semantic_input, to_uint8

REPO = Path(__file__).resolve().parent.parent

TOY_INFO = DatasetInfo("toy", label_nc=4, contain_dontcare=False, has_instances=True,
                       class_names=("a", "b", "c", "d"), image_size=(16, 16))


@dataclass
class ToyConfig:
    width: int = 8
    z_dim: int = 0          # > 0: multimodal (noise channels from per-image generators)
    lr: float = 1e-3


class ToyMethod(Method):
    """Toy conditional GAN: 2 convs for G (plus optional noise channels), a 1-conv PatchGAN D."""

    Config = ToyConfig
    name = "toy"

    def __init__(self, cfg: ToyConfig, info: DatasetInfo, runtime=None) -> None:
        super().__init__(cfg, info, runtime)
        c = info.num_label_channels + 1 + cfg.z_dim
        self.nets = nn.ModuleDict({
            "G": nn.Sequential(nn.Conv2d(c, cfg.width, 3, padding=1), nn.ReLU(),
                               nn.Conv2d(cfg.width, 3, 3, padding=1), nn.Tanh()),
            "D": nn.Conv2d(info.num_label_channels + 1 + 3, 1, 3, padding=1),
        })
        self._optimizers = {
            "G": torch.optim.Adam(self.nets["G"].parameters(), lr=cfg.lr),
            "D": torch.optim.Adam(self.nets["D"].parameters(), lr=cfg.lr),
        }

    @property
    def multimodal(self) -> bool:
        return self.cfg.z_dim > 0

    def sem(self, label, instance=None, edge=None):
        return semantic_input(label, self.info.num_label_channels, edge=edge, instance=instance,
                              use_edge=True)

    def noise(self, n, h, w, generator):
        z = randn_per_sample((self.cfg.z_dim, h, w), n, generator, self.device)
        return z

    def forward_g(self, sem, generator=None):
        if self.cfg.z_dim:
            n, _, h, w = sem.shape
            sem = torch.cat([sem, self.noise(n, h, w, generator)], 1)
        return self.nets["G"](sem)

    def phases(self):
        return [Phase("generator", "G", ("G",), self.g_loss),
                Phase("discriminator", "D", ("D",), self.d_loss)]

    def g_loss(self, batch, nets, step):
        sem = self.sem(batch.label, batch.instance, batch.edge)
        fake = self.forward_g(sem)
        pred = nets.D(torch.cat([sem, fake], 1))
        return {"G_GAN": F.mse_loss(pred, torch.ones_like(pred)),
                "G_L1": F.l1_loss(fake, batch.image)}

    def d_loss(self, batch, nets, step):
        sem = self.sem(batch.label, batch.instance, batch.edge)
        with torch.no_grad():
            fake = self.forward_g(sem)
        pf = nets.D(torch.cat([sem, fake], 1))
        pr = nets.D(torch.cat([sem, batch.image], 1))
        return {"D_fake": F.mse_loss(pf, torch.zeros_like(pf)),
                "D_real": F.mse_loss(pr, torch.ones_like(pr))}

    @torch.no_grad()
    def generate(self, label, instance=None, *, edge=None, z=None, generator=None,
                 style_image=None):
        sem = self.sem(label, instance, edge)
        return to_uint8(self.forward_g(sem, generator))


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m harness ARGS`` in a subprocess (real entry point, real exit status)."""
    full_env = dict(os.environ)
    full_env.setdefault("OMP_NUM_THREADS", "1")
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True,
                          text=True, cwd=cwd or REPO, env=full_env, timeout=timeout)


def call_main(*args: str) -> tuple[int, str, str]:
    """harness.cli.main in this process: (exit status, stdout, stderr)."""
    from harness.cli import main

    import logging

    root = logging.getLogger()
    level = root.level
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse errors
                code = exc.code if isinstance(exc.code, int) else 1
    finally:  # the CLI configures the root logger; leave it as it was for the other tests
        for h in [h for h in root.handlers if getattr(h, "_harness_cli", False)]:
            root.removeHandler(h)
        root.setLevel(level)
    return code, out.getvalue(), err.getvalue()


def stdout_json(text: str):
    return json.loads(text)


def tiny_protocol(folder: Path, *, name: str = "tiny", size: int = 16, seeds=(0,),
                  num_images=None, segmenter: str | None = None,
                  label_space: str | None = None) -> Path:
    """A protocol YAML for the synthetic dataset at ``size`` px (no segmenter by default)."""
    import yaml

    data = {
        "name": name, "dataset": "synthetic", "split": "val", "resolution": [size, size],
        "num_images": num_images, "seeds": list(seeds),
        "fid": {"bootstrap_resamples": 0, "kid_subsets": 2, "kid_subset_size": 2},
        "segmentation": {"segmenter": segmenter, "label_space": label_space},
        "diversity": {"samples_per_map": 3, "maps": 2},
    }
    path = Path(folder) / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
