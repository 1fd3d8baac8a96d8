"""Shared fixtures of the GroupDNet tests: the official dataset semantics and configurations,
tiny configurations, and the official state_dict keys.

tests/data/groupdnet_official_keys.json lists every key and shape of the networks at the two
official configurations. It was written from this implementation's state_dicts and checked, key
for key and shape for shape, against the modules the official code (Seanseattle/SMIS @ b86a6c0)
builds at the same options. It is data, not code.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from harness.core.data.base import DatasetInfo
from methods.groupdnet.method import GroupDNetConfig, build_networks

REPO = Path(__file__).resolve().parent.parent
OFFICIAL_KEYS = json.loads((REPO / "tests" / "data" / "groupdnet_official_keys.json").read_text())


def official_info(dataset: str) -> DatasetInfo:
    if dataset == "cityscapes":   # 35 labels + instance edge (interleaved per class)
        return DatasetInfo(dataset, 35, False, True, tuple(f"c{i}" for i in range(35)), (256, 512))
    if dataset == "ade20k":       # 150 + 'other' = 151 channels, no instances
        return DatasetInfo(dataset, 150, True, False, tuple(f"c{i}" for i in range(150)), (256, 256))
    raise KeyError(dataset)


def official_config(dataset: str) -> GroupDNetConfig:
    if dataset == "cityscapes":
        return GroupDNetConfig(layout="cityscapes", ngf=280, nef_per_class=10, lambda_vgg=0.0)
    return GroupDNetConfig(layout="ade20k", ngf=64, nef_per_class=4, lambda_vgg=0.0)


def official_networks(dataset: str):
    """The networks at the official configuration on the meta device (no memory, no init)."""
    with torch.device("meta"):
        return build_networks(official_config(dataset), official_info(dataset))


def official_keys(dataset: str, net: str) -> dict[str, tuple[int, ...]]:
    return {k: () if v == "-" else tuple(int(s) for s in v.split("x"))
            for k, v in OFFICIAL_KEYS[dataset][net].items()}


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def tiny_info(label_nc: int = 4, instances: bool = True, size=(64, 64)) -> DatasetInfo:
    return DatasetInfo("toy", label_nc, False, instances, tuple(f"c{i}" for i in range(label_nc)),
                       tuple(size))


def tiny_config(**kw) -> GroupDNetConfig:
    base = dict(ngf=4, nef_per_class=1, ndf=8, num_upsampling_layers="normal", lambda_vgg=0.0)
    base.update(kw)
    return GroupDNetConfig(**base)
