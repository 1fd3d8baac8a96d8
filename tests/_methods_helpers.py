"""Shared helpers of the SPADE / pix2pixHD tests (names prefixed ``sp_``)."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from harness.core.data.base import Batch, DatasetInfo

SP_OFFICIAL_KEYS = Path(__file__).parent / "data" / "spade_pix2pixhd_official_keys.json"


def sp_info(label_nc: int = 5, *, dontcare: bool = False, instances: bool = True,
            size: tuple[int, int] = (32, 32), name: str = "toy") -> DatasetInfo:
    return DatasetInfo(name, label_nc, dontcare, instances,
                       tuple(f"class{i}" for i in range(label_nc)), size)


def sp_official_info(dataset: str) -> DatasetInfo:
    """The label semantics of the official recipes (S = semantic channels incl. the edge)."""
    if dataset == "cityscapes":   # 35 labels + edge = 36
        return sp_info(35, dontcare=False, instances=True, size=(256, 512), name=dataset)
    if dataset == "ade20k":       # 150 + 'other' = 151, no instances
        return sp_info(150, dontcare=True, instances=False, size=(256, 256), name=dataset)
    if dataset == "coco-stuff":   # 182 + don't care + edge = 184
        return sp_info(182, dontcare=True, instances=True, size=(256, 256), name=dataset)
    raise ValueError(dataset)


def sp_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def sp_official_keys(network: str) -> dict[str, tuple[int, ...]]:
    data = json.loads(SP_OFFICIAL_KEYS.read_text())["networks"]
    return {k: tuple(v) for k, v in data[network].items()}


def sp_keys(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def sp_blocky_batch(info: DatasetInfo, n: int = 2, seed: int = 0, cell: int = 8) -> Batch:
    """Label maps of ``cell``-pixel squares, one instance per square, images = a colour per class
    plus noise (so a model can learn the mapping and the instance features vary)."""
    from harness.core.data.edges import instance_edges

    g = torch.Generator().manual_seed(seed)
    h, w = info.image_size
    coarse = torch.randint(0, info.num_label_channels, (n, h // cell, w // cell), generator=g)
    label = coarse.repeat_interleave(cell, 1).repeat_interleave(cell, 2)
    ids = torch.arange((h // cell) * (w // cell)).view(1, h // cell, w // cell).expand(n, -1, -1)
    instance = (label * 1000 + ids.repeat_interleave(cell, 1).repeat_interleave(cell, 2))
    palette = torch.rand(info.num_label_channels, 3, generator=torch.Generator().manual_seed(99)) * 2 - 1
    image = palette[label].permute(0, 3, 1, 2) + 0.1 * torch.randn(n, 3, h, w, generator=g)
    image = image.clamp(-1, 1)
    return Batch(label=label, image=image, key=[f"k{i}" for i in range(n)],
                 instance=instance if info.has_instances else None,
                 edge=instance_edges(instance) if info.has_instances else None,
                 index=torch.arange(n))


def sp_generators(seeds) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(int(s)) for s in seeds]
