"""LPIPS diversity (the ``lpips`` package), and GroupDNet's class-specific diversity.

Diversity of a multimodal method: for each label map, K samples; the mean LPIPS over all
K(K-1)/2 pairs of samples (never against the real image); then the mean over maps. Higher is
more diverse.

Offline construction: ``lpips.LPIPS(pnet_rand=True)`` builds the trunk without downloading (the
learned 'lin' layers still load from the lpips wheel); the ImageNet trunk is then copied from a
torchvision state_dict resolved by :mod:`harness.core.weights` into the lpips slices, which keep
torchvision's ``features`` indices (alex: slices [0:2] [2:5] [5:8] [8:10] [10:12]; vgg16:
[0:4] [4:9] [9:16] [16:23] [23:30]).

The masked (spatial) LPIPS of a pair of images, :func:`masked_lpips`, is the building block of
GroupDNet's mCSD / mOCD (see :mod:`evaluators.classwise`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from harness.core.weights import (ALEXNET_IMAGENET, VGG16_IMAGENET, ResolvedWeights, WeightSpec,
                                  load_state_dict_file, resolve)

# torchvision `features` index ranges that make up lpips' slice1..slice5.
_SLICES = {"alex": ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12)),
           "vgg": ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30))}


def backbone_spec(net: str) -> WeightSpec:
    specs = {"alex": ALEXNET_IMAGENET, "vgg": VGG16_IMAGENET}
    if net not in specs:
        raise ValueError(f"LPIPS net {net!r} is not supported; use one of {sorted(specs)}")
    return specs[net]


def trunk_state_to_lpips(net: str, state: dict) -> dict:
    """torchvision ``features.<i>.<param>`` keys -> lpips ``net.slice<k>.<i>.<param>`` keys."""
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if len(parts) != 3 or parts[0] != "features":
            continue  # the classifier is not part of the LPIPS trunk
        index = int(parts[1])
        for k, (lo, hi) in enumerate(_SLICES[net], start=1):
            if lo <= index < hi:
                out[f"net.slice{k}.{index}.{parts[2]}"] = value
                break
    return out


def build_lpips(net: str = "alex", version: str = "0.1", *, spatial: bool = False,
                weights_path: str | Path | None = None, device: str | torch.device = "cpu"
                ) -> tuple[torch.nn.Module, ResolvedWeights]:
    """An eval-mode ``lpips.LPIPS`` whose trunk comes from the resolved ImageNet file."""
    import lpips

    resolved = resolve(backbone_spec(net), weights_path)
    state = load_state_dict_file(resolved)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's 'pretrained' deprecation inside lpips
        model = lpips.LPIPS(net=net, version=version, spatial=spatial, pnet_rand=True,
                            verbose=False)
    mapped = trunk_state_to_lpips(net, state)
    expected = {k for k in model.state_dict() if k.startswith("net.")}
    if set(mapped) != expected:
        missing = sorted(expected - set(mapped))[:5]
        raise ValueError(f"weights file {resolved.path} ({resolved.spec.key}) does not hold the "
                         f"torchvision {net} trunk LPIPS needs (missing e.g. {missing}); expected "
                         f"the file {resolved.spec.filename} from {resolved.spec.url}")
    model.load_state_dict(mapped, strict=False)
    model.requires_grad_(False)
    return model.eval().to(device), resolved


def to_lpips_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N,3,H,W] -> float in [-1, 1] (what lpips expects without normalize=True)."""
    if images.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {images.dtype}")
    return images.float() / 127.5 - 1.0


@torch.no_grad()
def pairwise_mean(model: torch.nn.Module, images: torch.Tensor, *, batch_size: int = 16) -> float:
    """Mean LPIPS over all K(K-1)/2 pairs of K samples (uint8 [K,3,H,W]) of one label map."""
    k = images.shape[0]
    if k < 2:
        raise ValueError(f"diversity needs at least 2 samples per map, got {k}")
    device = next(model.parameters()).device
    x = to_lpips_input(images).to(device)
    pairs = list(combinations(range(k), 2))
    total = 0.0
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        a = torch.tensor([i for i, _ in chunk], device=device)
        b = torch.tensor([j for _, j in chunk], device=device)
        total += model(x[a], x[b]).double().sum().item()
    return total / len(pairs)


def per_map_diversity(model: torch.nn.Module, samples: Iterable[torch.Tensor], *,
                      batch_size: int = 16) -> list[float]:
    return [pairwise_mean(model, imgs, batch_size=batch_size) for imgs in samples]


def lpips_diversity(per_map: Sequence[float]) -> float:
    """The diversity score: the mean over maps of the per-map pairwise means."""
    if not per_map:
        raise ValueError("no label maps to average over")
    return float(np.mean(np.asarray(per_map, dtype=np.float64)))


# --- GroupDNet's class-specific diversity -----------------------------------------------------
@dataclass(frozen=True)
class ClassPair:
    """Two samples of one label map that differ only in class ``class_id``'s latent code."""
    class_id: int
    image_a: torch.Tensor     # uint8 [3,H,W]
    image_b: torch.Tensor     # uint8 [3,H,W]
    mask: torch.Tensor        # bool [H,W]: the region of class_id in the label map


@torch.no_grad()
def masked_lpips(spatial_model: torch.nn.Module, image_a: torch.Tensor, image_b: torch.Tensor,
                 mask: torch.Tensor) -> torch.Tensor:
    """Spatial LPIPS maps averaged over ``mask`` (uint8 [N,3,H,W] x2, bool [N,H,W]) -> [N].

    ``spatial_model`` must be built with ``spatial=True``. An empty mask gives NaN.
    """
    if not getattr(spatial_model, "spatial", False):
        raise ValueError("masked_lpips needs an LPIPS model built with spatial=True")
    device = next(spatial_model.parameters()).device
    dist = spatial_model(to_lpips_input(image_a).to(device), to_lpips_input(image_b).to(device))
    m = mask.to(device=device, dtype=dist.dtype)[:, None]
    area = m.sum(dim=(1, 2, 3))
    return ((dist * m).sum(dim=(1, 2, 3)) / area).cpu().double()
