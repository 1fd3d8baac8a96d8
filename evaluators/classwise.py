"""mCSD / mOCD (GroupDNet, CVPR 2020): how well one class's latent code controls its own region
and leaves the rest alone. The paper's code was never released (SMIS issue #15); this is the
harness's exact, documented reading of its definition (docs/metrics-classwise.md):

For each of the first ``maps`` evaluation label maps and each class c present in it with at
least ``min_pixels`` pixels, the method generates ``samples_per_class`` (K) images that differ
only in class c's code (the other classes' codes fixed at one seeded draw). For every one of the
K(K-1)/2 pairs, a spatial LPIPS map (lpips ``spatial=True``, at the image size) is averaged
inside c's region (CSD) and outside it (OCD). Per class: the mean over its pairs; per map: the
mean over its classes; the metric: the mean over maps. mCSD higher = the code controls its class;
mOCD lower = it leaves the other classes alone.
"""
from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from evaluators.diversity import ClassPair, masked_lpips

# (key, class id) -> the K sample files that differ only in that class's code.
ClasswiseSamples = Mapping[str, Mapping[int, Sequence[str | Path]]]


def classwise_plan(label: torch.Tensor, min_pixels: int) -> list[int]:
    """The classes of one label map ([H,W] ids) that get their own samples, ascending."""
    ids, counts = torch.unique(label, return_counts=True)
    return [int(c) for c, n in zip(ids.tolist(), counts.tolist()) if n >= min_pixels]


def class_pairs(class_id: int, images: torch.Tensor, mask: torch.Tensor) -> list[ClassPair]:
    """Every pair of K uint8 images [K,3,H,W] of one class (mask [H,W] bool)."""
    return [ClassPair(class_id, images[i], images[j], mask)
            for i, j in combinations(range(images.shape[0]), 2)]


@torch.no_grad()
def map_scores(spatial_model: torch.nn.Module, label: torch.Tensor,
               per_class: Mapping[int, torch.Tensor], *, batch_size: int = 8) -> dict[int, dict]:
    """{class: {"csd", "ocd", "pairs"}} of one label map. ``per_class``: class -> its K images."""
    out: dict[int, dict] = {}
    for cid, images in sorted(per_class.items()):
        mask = label == cid
        pairs = class_pairs(cid, images, mask)
        csd, ocd = [], []
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start:start + batch_size]
            a = torch.stack([p.image_a for p in chunk])
            b = torch.stack([p.image_b for p in chunk])
            m = torch.stack([p.mask for p in chunk])
            csd += masked_lpips(spatial_model, a, b, m).tolist()
            ocd += masked_lpips(spatial_model, a, b, ~m).tolist()
        out[cid] = {"csd": _nanmean(csd), "ocd": _nanmean(ocd), "pairs": len(pairs)}
    return out


def _nanmean(values: Sequence[float]) -> float | None:
    arr = np.asarray([v for v in values if not np.isnan(v)], dtype=np.float64)
    return float(arr.mean()) if arr.size else None


def aggregate(per_map: Mapping[str, Mapping[int, dict]]) -> dict[str, Any]:
    """Mean over classes within each map, then over maps (a map whose classes all lack a value
    for one of the two does not count for it). OCD of a class covering the whole map is None."""
    csd_maps, ocd_maps = [], []
    for scores in per_map.values():
        csd = [s["csd"] for s in scores.values() if s["csd"] is not None]
        ocd = [s["ocd"] for s in scores.values() if s["ocd"] is not None]
        if csd:
            csd_maps.append(float(np.mean(csd)))
        if ocd:
            ocd_maps.append(float(np.mean(ocd)))
    return {"mcsd": float(np.mean(csd_maps)) if csd_maps else None,
            "mocd": float(np.mean(ocd_maps)) if ocd_maps else None,
            "maps": len(per_map), "maps_mcsd": len(csd_maps), "maps_mocd": len(ocd_maps),
            "classes": sum(len(s) for s in per_map.values())}


def classwise_diversity(spatial_model: torch.nn.Module, labels: Mapping[str, torch.Tensor],
                        samples: ClasswiseSamples, read: Callable[[Path], torch.Tensor], *,
                        batch_size: int = 8, progress: Callable[[Any], Any] = iter) -> dict:
    """mCSD / mOCD over ``samples`` (key -> class -> K files) with their label maps (key ->
    [H,W] ids at the image size)."""
    per_map = {}
    for key in progress(sorted(samples)):
        per_class = {int(c): torch.stack([read(Path(f)) for f in files])
                     for c, files in samples[key].items()}
        per_map[key] = map_scores(spatial_model, labels[key], per_class, batch_size=batch_size)
    result = aggregate(per_map)
    result["per_map"] = {k: {str(c): v for c, v in s.items()} for k, s in per_map.items()}
    return result
