"""FID and KID through torch-fidelity, with a bootstrap confidence interval for FID.

Features come from torch-fidelity's own ``inception-v3-compat`` extractor (TF1-exact resize to
299, pool3 '2048'), fed uint8 tensors from a torch Dataset; the weights file is the one
:mod:`harness.core.weights` resolved, passed as ``feature_extractor_weights_path``. Statistics and
distances are torch-fidelity's (``fid_features_to_statistics``, ``fid_statistics_to_metric``,
``kid_features_to_metric``), so the value equals ``torch_fidelity.calculate_metrics`` on the same
images.

Bootstrap: the generated features are resampled with replacement (the real set is shared by every
method under a protocol, so it is held fixed); no image passes through the network again. Every
replicate's statistics come from ``fid_features_to_statistics``; with fewer samples than feature
dimensions the trace term tr sqrt(S_g S_r) is evaluated exactly through the n x n matrix
A S_r A^T (S_g = A^T A, same non-zero eigenvalues) instead of a 2048 x 2048 eigen-decomposition,
which is much cheaper (bench/evaluation). Resampling with replacement leaves only ~63 % distinct
samples, which biases every replicate's FID upwards; the interval is therefore the replicates'
percentile interval shifted by that bootstrap bias (mean of replicates minus the point
estimate), i.e. the sampling spread of FID at this N, centred on the point estimate.
"""
from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

FEATURE_EXTRACTOR = "inception-v3-compat"
FEATURE_LAYER = "2048"


class ImageFilesDataset(Dataset):
    """Image files -> uint8 [3,H,W] RGB tensors (what torch-fidelity's extractor takes)."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = [Path(p) for p in paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        return read_uint8(self.paths[index])


class RealImagesDataset(Dataset):
    """The real set: each record's image resized (PIL ``filter``) to the generation size."""

    def __init__(self, dataset, records: Sequence, size_hw: tuple[int, int],
                 filter: str = "bicubic") -> None:
        self.dataset = dataset
        self.records = list(records)
        self.size_hw = tuple(size_hw)
        self.filter = filter

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.dataset.image_resized(self.records[index], self.size_hw, filter=self.filter)


def read_uint8(path: Path) -> torch.Tensor:
    """An image file as uint8 [3,H,W] RGB."""
    from harness.core.data.imageio import open_rgb
    array = np.asarray(open_rgb(Path(path)), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def build_extractor(weights_path: str | Path, device: str | torch.device = "cpu",
                    flavour: str = "torch-fidelity"):
    """torch-fidelity's Inception extractor for the '2048' layer, on ``device`` (or pytorch-fid's
    InceptionV3 for ``flavour='pytorch-fid'``: evaluators/pytorch_fid_flavour.py)."""
    if flavour != "torch-fidelity":
        from evaluators.pytorch_fid_flavour import PytorchFidExtractor, inception_spec
        inception_spec(flavour)  # an unknown flavour is one clear error
        return PytorchFidExtractor(weights_path, device)
    from torch_fidelity.utils import create_feature_extractor
    extractor = create_feature_extractor(FEATURE_EXTRACTOR, [FEATURE_LAYER], cuda=False,
                                         feature_extractor_weights_path=str(weights_path),
                                         verbose=False)
    return extractor.to(torch.device(device))


def extract_features(images: Dataset, extractor, *, batch_size: int = 32,
                     device: str | torch.device = "cpu", progress: bool = False) -> torch.Tensor:
    """[N, 2048] float32 CPU features of a uint8 image Dataset (torch-fidelity's loop)."""
    from torch_fidelity.utils import get_featuresdict_from_dataset
    if len(images) == 0:
        return torch.empty(0, int(FEATURE_LAYER))
    if getattr(extractor, "own_loop", False):   # the pytorch-fid flavour feeds its own model
        return extractor.to(device).features(images, batch_size=batch_size, progress=progress)
    device = torch.device(device)
    cuda = device.type == "cuda"
    # torch-fidelity moves batches with .cuda(), i.e. to the current device.
    ctx = torch.cuda.device(device) if cuda else nullcontext()
    with ctx:
        # already decoded images (evaluators/image_pass.py) need no DataLoader worker processes
        in_memory = bool(getattr(images, "in_memory", False))
        out = get_featuresdict_from_dataset(images, extractor, batch_size, cuda,
                                            save_cpu_ram=not cuda or in_memory, verbose=progress)
    return out[FEATURE_LAYER].cpu()


def fid_value(gen: torch.Tensor, real: torch.Tensor, flavour: str = "torch-fidelity") -> float:
    """FID between two feature sets, computed by torch-fidelity (or pytorch-fid's
    ``calculate_frechet_distance`` for ``flavour='pytorch-fid'``)."""
    if flavour != "torch-fidelity":
        from evaluators import pytorch_fid_flavour
        pytorch_fid_flavour.inception_spec(flavour)
        _check_features(gen, real, minimum=2, what="FID")
        return pytorch_fid_flavour.fid_value(gen.cpu(), real.cpu())
    from torch_fidelity.metric_fid import (KEY_METRIC_FID, fid_features_to_statistics,
                                           fid_statistics_to_metric)
    _check_features(gen, real, minimum=2, what="FID")
    stats_gen = fid_features_to_statistics(gen.cpu())
    stats_real = fid_features_to_statistics(real.cpu())
    return float(fid_statistics_to_metric(stats_gen, stats_real, False)[KEY_METRIC_FID])


def _fid_against(gen: torch.Tensor, stats_real: dict) -> float:
    """FID of ``gen`` against fixed real statistics; exact low-rank trace when n < d."""
    from torch_fidelity.metric_fid import (KEY_METRIC_FID, fid_features_to_statistics,
                                           fid_statistics_to_metric)
    stats_gen = fid_features_to_statistics(gen)
    n, d = gen.shape
    if n >= d:
        return float(fid_statistics_to_metric(stats_gen, stats_real, False)[KEY_METRIC_FID])
    mu_g, sigma_g = stats_gen["mu"], stats_gen["sigma"]
    mu_r, sigma_r = stats_real["mu"], stats_real["sigma"]
    x = gen.numpy().astype(np.float64)
    a = (x - x.mean(axis=0)) / np.sqrt(n - 1)           # sigma_g == a.T @ a
    small = a @ sigma_r @ a.T                            # n x n, symmetric PSD
    eig = np.linalg.eigvalsh((small + small.T) / 2)
    tr_covmean = np.sqrt(np.clip(eig, 0.0, None)).sum()
    diff = mu_g - mu_r
    return float(diff.dot(diff) + np.trace(sigma_g) + np.trace(sigma_r) - 2 * tr_covmean)


def bootstrap_fid(gen: torch.Tensor, real: torch.Tensor, *, resamples: int,
                  confidence: float = 0.95, seed: int = 0, point: float | None = None) -> dict:
    """Bootstrap interval of FID over resampled generated features (see module docstring).

    Returns ``{"ci": [lo, hi], "bias": mean(replicates) - point, "resamples": B}``.
    """
    from torch_fidelity.metric_fid import fid_features_to_statistics
    _check_features(gen, real, minimum=2, what="FID")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    gen, real = gen.cpu(), real.cpu()
    if point is None:
        point = fid_value(gen, real)
    stats_real = fid_features_to_statistics(real)
    rng = np.random.default_rng(seed)
    n = gen.shape[0]
    reps = np.empty(resamples, dtype=np.float64)
    for b in range(resamples):
        idx = torch.from_numpy(rng.integers(0, n, size=n))
        reps[b] = _fid_against(gen[idx], stats_real)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(reps, [alpha, 1.0 - alpha])
    bias = float(reps.mean() - point)
    return {"ci": [float(lo - bias), float(hi - bias)], "bias": bias, "resamples": resamples}


def kid_value(gen: torch.Tensor, real: torch.Tensor, *, subsets: int, subset_size: int) -> dict:
    """KID (torch-fidelity) with the subset size reduced to the number of samples if needed.

    Returns ``{"value", "std", "subset_size", "note"}`` (``note`` is None when not adapted).
    """
    from torch_fidelity.defaults import DEFAULTS
    from torch_fidelity.metric_kid import (KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD,
                                           kid_features_to_metric)
    _check_features(gen, real, minimum=2, what="KID")
    n = min(gen.shape[0], real.shape[0])
    size, note = subset_size, None
    if subset_size > n:
        size = n
        note = (f"kid_subset_size reduced from {subset_size} to {n}: only {gen.shape[0]} "
                f"generated and {real.shape[0]} real images")
        if n == gen.shape[0] == real.shape[0]:
            note += " (every subset holds all images, so the subset std is 0)"
    out = kid_features_to_metric(gen.cpu(), real.cpu(), kid_subsets=subsets,
                                 kid_subset_size=size, verbose=False,
                                 rng_seed=DEFAULTS["rng_seed"])
    return {"value": float(out[KEY_METRIC_KID_MEAN]), "std": float(out[KEY_METRIC_KID_STD]),
            "subset_size": size, "note": note}


def _check_features(gen: torch.Tensor, real: torch.Tensor, *, minimum: int, what: str) -> None:
    if gen.dim() != 2 or real.dim() != 2 or gen.shape[1] != real.shape[1]:
        raise ValueError(f"{what} needs two [N, D] feature sets of equal D, got "
                         f"{tuple(gen.shape)} and {tuple(real.shape)}")
    if gen.shape[0] < minimum or real.shape[0] < minimum:
        raise ValueError(f"{what} needs at least {minimum} generated and {minimum} real images, "
                         f"got {gen.shape[0]} and {real.shape[0]}")
