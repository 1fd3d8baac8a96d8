"""pix2pixHD instance-feature clustering and test-time sampling (official ``encode_features.py``
and ``Pix2PixHDModel.sample_features``).

After training, the encoder E runs over the training set (batch 1, no flip in the official
script). Every instance yields one ``feat_num``-vector (its pooled feature) and its area ratio
``pixels / (H*W // 32)``; instances with a ratio above 0.5 (area > H*W/64) are kept and, per
semantic class, K-means (scikit-learn, ``min(#instances, n_clusters)`` clusters, random_state 0)
gives the cluster centres: a dict class -> K x feat_num array (``features_clustered_010.npy``).

At inference, every instance whose class has centres gets one centre drawn at random and painted
into the feature channels, so one label map gives several outputs.

Differences from the official code, all documented: the class of an instance is the majority
label of its pixels (the official code decodes Cityscapes ids, ``id if id < 1000 else id // 1000``,
which gives the same class there); the instance feature is the region mean (the official code
reads one pixel of the already pooled map: the same value); K-means uses ``n_init=10``, the
scikit-learn default when the official script was written; instances whose class has no centres
get zeros (the official code leaves that memory uninitialised); centres are drawn per image from
that image's generator (batch-independent) instead of once per instance id over the batch.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from harness.core.io import atomic_write

AREA_BLOCKS = 32          # official block_num: area ratio = pixels / (H * W // 32)
MIN_AREA_RATIO = 0.5      # keep instances with area ratio > 0.5


def regions_with_labels(regions: torch.Tensor, label: torch.Tensor):
    """One image: regions [H,W], label [H,W] -> (inverse [H*W], labels [R], counts [R])."""
    ids, inverse, counts = torch.unique(regions.flatten(), return_inverse=True, return_counts=True)
    n_labels = int(label.max()) + 1
    votes = torch.bincount(inverse * n_labels + label.flatten().long(),
                           minlength=len(ids) * n_labels).view(len(ids), n_labels)
    return inverse, votes.argmax(1), counts


def _batches(dataset: Any, batch_size: int) -> Iterable:
    if isinstance(dataset, torch.utils.data.Dataset):
        from harness.core.data.base import collate
        return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False,
                                           collate_fn=collate, num_workers=0, drop_last=False)
    return dataset  # already an iterable of Batch


@torch.no_grad()
def instance_features(method, batch) -> list[tuple[int, np.ndarray, float]]:
    """(class, feature vector, area ratio) of every instance of every image in ``batch``."""
    E = method.nets["E"]
    device = method.device
    image = batch.image.to(device)
    label = batch.label.to(device)
    regions = method.feature_regions(batch.label, batch.instance).to(device)
    was_training = E.training
    E.eval()
    try:
        raw = E.model(image).float()
    finally:
        E.train(was_training)
    h, w = label.shape[1:]
    denominator = h * w // AREA_BLOCKS
    out = []
    for b in range(label.shape[0]):
        inverse, labels, counts = regions_with_labels(regions[b], label[b])
        flat = raw[b].flatten(1).t()  # [H*W, C]
        sums = torch.zeros(len(counts), flat.shape[1], device=device).index_add(0, inverse, flat)
        means = (sums / counts.unsqueeze(1)).double().cpu().numpy()
        for r in range(len(counts)):
            out.append((int(labels[r]), means[r], float(counts[r]) / denominator))
    return out


def cluster_features(method, dataset: Any, *, n_clusters: int = 10,
                     batch_size: int = 1) -> dict[int, np.ndarray]:
    """Run E over ``dataset`` and K-means the instance features per class (official recipe).

    ``dataset`` is a torch Dataset of the harness (yielding sample dicts) or an iterable of
    :class:`harness.core.data.base.Batch`. Returns class id -> [K, feat_num] float64 centres.
    """
    from sklearn.cluster import KMeans
    from tqdm import tqdm

    if n_clusters < 1:
        raise ValueError(f"n_clusters must be >= 1, got {n_clusters}")
    per_class: dict[int, list[np.ndarray]] = {}
    label_nc = method.info.label_nc
    quiet = not logging.getLogger("harness").isEnabledFor(logging.INFO)  # --quiet
    for batch in tqdm(_batches(dataset, batch_size), desc="pix2pixHD features", unit="batch",
                      leave=False, file=sys.stderr, disable=quiet):
        for cls, feature, ratio in instance_features(method, batch):
            if cls < label_nc and ratio > MIN_AREA_RATIO:
                per_class.setdefault(cls, []).append(feature)
    centres: dict[int, np.ndarray] = {}
    for cls in sorted(per_class):
        feats = np.stack(per_class[cls])
        k = min(len(feats), n_clusters)
        kmeans = KMeans(n_clusters=k, random_state=0, n_init=10).fit(feats)
        centres[cls] = kmeans.cluster_centers_.astype(np.float64)
    return centres


def sample_cluster_features(clusters: dict[int, np.ndarray], label: torch.Tensor,
                            regions: torch.Tensor, feat_num: int,
                            generators: Sequence[torch.Generator | None]) -> torch.Tensor:
    """[N, feat_num, H, W]: one randomly drawn centre of its class per region (zeros without).

    Regions are visited in increasing id order, drawing one index per region whose class has
    centres, from the image's own generator.
    """
    n, h, w = label.shape
    out = torch.zeros(n, feat_num, h, w)
    tables = {int(k): torch.as_tensor(np.asarray(v), dtype=torch.float32) for k, v in clusters.items()}
    for b in range(n):
        inverse, labels, _ = regions_with_labels(regions[b].cpu(), label[b].cpu())
        values = torch.zeros(len(labels), feat_num)
        for r, cls in enumerate(labels.tolist()):
            table = tables.get(cls)
            if table is None or len(table) == 0:
                continue
            g = generators[b]
            k = int(torch.randint(0, len(table), (1,), generator=g,
                                  device=g.device if g is not None else "cpu"))
            values[r] = table[k]
        out[b] = values[inverse].t().reshape(feat_num, h, w)
    return out


def clusters_filename(n_clusters: int) -> str:
    return f"features_clustered_{n_clusters:03d}.npy"


def save_clusters(path: str | Path, clusters: dict[int, np.ndarray]) -> Path:
    """Official format: np.save of a dict class -> K x feat_num array (needs allow_pickle)."""
    data = {int(k): np.asarray(v, dtype=np.float64) for k, v in clusters.items()}
    return atomic_write(path, lambda f: np.save(f, data, allow_pickle=True))


def load_clusters(path: str | Path, feat_num: int = 3) -> dict[int, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pix2pixHD feature clusters {path} do not exist")
    try:
        raw = np.load(path, allow_pickle=True, encoding="latin1")
        data = raw.item() if isinstance(raw, np.ndarray) and raw.dtype == object else raw
    except Exception as exc:
        raise ValueError(f"{path} is not a pix2pixHD feature-cluster file (np.save of a dict "
                         f"label -> K x {feat_num} array): {type(exc).__name__}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a dict label -> K x {feat_num} array, got "
                         f"{type(data).__name__}")
    out = {}
    for k, v in data.items():
        arr = np.asarray(v, dtype=np.float64)
        if not isinstance(k, (int, np.integer)) or arr.ndim != 2 or arr.shape[1] != feat_num:
            raise ValueError(f"{path}: entry {k!r} must map an integer label to a K x {feat_num} "
                             f"array, got shape {arr.shape}")
        out[int(k)] = arr
    return out
