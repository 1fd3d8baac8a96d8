"""Shared fixtures of the CC-FPSE tests: dataset descriptions, tiny configurations, batches, and
the official state_dict keys.

The official keys (tests/data/ccfpse_official_keys.json) list every key and shape of the
networks the official CC-FPSE code builds at the released Cityscapes configuration (label_nc 35 +
instance edge, 'more' schedule, --use_vae), recorded once by instantiating the official classes
(xh-liu/CC-FPSE @ 5619e63). It is data, not code: the import tests check that every official key has a home of the
same shape here.
"""
from __future__ import annotations

from dataclasses import replace
import json
from pathlib import Path

import torch
import yaml

from harness.core.config import from_dict
from harness.core.data.base import Batch, DatasetInfo
from harness.core.data.edges import instance_edges
from methods.ccfpse.method import CCFPSEConfig

REPO = Path(__file__).resolve().parent.parent


def official_info(dataset: str) -> DatasetInfo:
    """The generator-input semantics of the three official datasets."""
    label_nc, dontcare, instances, size = {
        "cityscapes": (35, False, True, (256, 512)),
        "ade20k": (150, True, False, (256, 256)),
        "coco-stuff": (182, True, True, (256, 256)),
    }[dataset]
    names = tuple(f"c{i}" for i in range(label_nc))
    return DatasetInfo(dataset, label_nc, dontcare, instances, names, size)


def official_config(dataset: str, use_vae: bool = True) -> CCFPSEConfig:
    return CCFPSEConfig(use_vae=use_vae, vgg_loss=False,
                        num_upsampling_layers="more" if dataset == "cityscapes" else "normal")


def tiny_info(size=(64, 64), label_nc: int = 4, instances: bool = True) -> DatasetInfo:
    return DatasetInfo("tiny", label_nc, False, instances, tuple(f"c{i}" for i in range(label_nc)), size)


def tiny_config(**overrides) -> CCFPSEConfig:
    """A few-thousand-parameter CC-FPSE for unit tests (VGG off: no weights offline)."""
    base = CCFPSEConfig(ngf=4, ndf=4, z_dim=8, hidden=8, encoder_input_size=16, vgg_loss=False)
    return replace(base, **overrides)


def preset_config(name: str) -> CCFPSEConfig:
    """The method section of configs/experiments/<name>.yaml, validated strictly."""
    data = yaml.safe_load((REPO / "configs" / "experiments" / f"{name}.yaml").read_text())
    method = dict(data["method"])
    method.pop("name", None)
    return from_dict(CCFPSEConfig, method, prefix="method.")


# Class colours of the fake scenes (RGB in [-1, 1]).
COLOURS = torch.tensor([[0.9, -0.8, -0.8], [-0.8, 0.9, -0.8], [-0.8, -0.8, 0.9], [0.9, 0.9, -0.8],
                        [-0.8, 0.9, 0.9], [0.9, -0.8, 0.9], [0.0, 0.0, 0.0], [0.9, 0.9, 0.9]])


def scene_batch(n: int, size=(64, 64), label_nc: int = 4, *, seed: int = 0, edges: bool = True) -> Batch:
    """Label maps of random rectangles on a background; images paint each class in its colour."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    label = torch.zeros(n, h, w, dtype=torch.long)
    instance = torch.zeros(n, h, w, dtype=torch.long)
    for i in range(n):
        for r in range(3):
            cls = int(torch.randint(1, label_nc, (1,), generator=g))
            y0, x0 = (int(v) for v in torch.randint(0, h // 2, (2,), generator=g))
            dy, dx = (int(v) for v in torch.randint(h // 4, h // 2 + 1, (2,), generator=g))
            label[i, y0:y0 + dy, x0:x0 + dx] = cls
            instance[i, y0:y0 + dy, x0:x0 + dx] = r + 1
    image = COLOURS[label].permute(0, 3, 1, 2).contiguous()
    image = (image + 0.05 * torch.randn(image.shape, generator=g)).clamp(-1, 1)
    return Batch(label=label, image=image, key=[f"s{seed}_{i}" for i in range(n)],
                 instance=instance if edges else None, edge=instance_edges(instance) if edges else None)


def parse_keys(text: str) -> dict[str, tuple[int, ...]]:
    out = {}
    for line in text.strip().splitlines():
        key, shape = line.split(" ")
        out[key] = () if shape == "-" else tuple(int(s) for s in shape.split("x"))
    return out


_KEYS = json.loads((REPO / "tests" / "data" / "ccfpse_official_keys.json").read_text())


def _as_text(keys: dict[str, str]) -> str:
    return "\n".join(f"{k} {v}" for k, v in keys.items())


# Every key (with its shape) of the official networks at the released Cityscapes configuration.
OFFICIAL_KEYS_CITYSCAPES = {net: _as_text(keys) for net, keys in _KEYS["cityscapes_vae"].items()}
# The released ADE20K model differs from the Cityscapes one by the 'normal' schedule (no 7th pyramid
# level) and S = 151; the deterministic variant (no VAE) has a 3x3 conv as fc.
OFFICIAL_G_ADE20K_NOVAE_REMOVED = "\n".join(_KEYS["ade20k_novae_G_removed_vs_cityscapes"])
OFFICIAL_G_ADE20K_NOVAE_RESHAPED = _as_text(_KEYS["ade20k_novae_G_reshaped_vs_cityscapes"])
