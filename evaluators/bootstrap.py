"""Bootstrap intervals over the evaluation images for every metric (docs/statistics.md).

What varies: the sample of evaluation images (label maps) a score is computed on. Each replicate
draws N image indices with replacement (numpy ``default_rng(seed)``, one [B, N] draw, so two runs
evaluated on the same N images and resampled with the same seed see the *same* indices: that is
what makes :mod:`harness.compare`'s differences paired). Nothing passes through a network again:

- mIoU / pixel accuracy: the per-image confusion matrices of the drawn images are re-summed
  (stored sparse: image, cell, count) and scored by the same functions as the point estimate;
- LPIPS diversity: the mean of the drawn label maps' per-map pairwise means;
- FID / KID: the drawn rows of the generated images' Inception features against the fixed real
  set (shared by every method under a protocol).

Intervals are percentile intervals of the replicates. FID and KID estimators are biased upwards
when a resample repeats images (only ~63 % are distinct), so their percentile interval is shifted
by the bootstrap bias (mean of replicates minus the point estimate), as ``evaluators.fid`` does.
The settings (B, level, seed) come from the protocol (:func:`settings`); with one image every
replicate equals the point estimate and the interval is flagged ``ci_degenerate``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from evaluators.segmentation_scores import mean_iou, pixel_accuracy


# ci_method values: what was resampled.
METHOD_IMAGES = "bootstrap over evaluation images (per-image confusion matrices re-summed)"
METHOD_MAPS = "bootstrap over evaluated label maps (per-map LPIPS means)"
METHOD_FEATURES = ("bootstrap over generated images (Inception feature rows; real set fixed; "
                   "bias-shifted percentile interval)")


@dataclass(frozen=True)
class BootstrapSettings:
    """Replicates, interval level and seed used by every metric's interval. They are the
    protocol's ``fid.bootstrap_resamples`` / ``fid.confidence`` / ``fid.bootstrap_seed`` (kept
    there so that no protocol hash changes; see docs/statistics.md)."""
    resamples: int = 200
    confidence: float = 0.95
    seed: int = 0


def settings(protocol) -> BootstrapSettings:
    """The protocol's bootstrap settings (one home for every metric)."""
    return protocol.statistics


def resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """[B, n] int64 image indices drawn with replacement (the same for the same n, B, seed)."""
    if n < 1:
        raise ValueError(f"cannot resample {n} items")
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(resamples, n))


def percentile_interval(replicates: np.ndarray, point: float, confidence: float, *,
                        shift_bias: bool = False) -> tuple[float, float] | None:
    """Percentile interval of the finite replicates (None when none is finite); with
    ``shift_bias`` moved by (mean of replicates - point)."""
    reps = np.asarray(replicates, dtype=np.float64)
    reps = reps[np.isfinite(reps)]
    if reps.size == 0:
        return None
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(reps, [alpha, 1.0 - alpha])
    if shift_bias:
        bias = float(reps.mean() - point)
        lo, hi = lo - bias, hi - bias
    return float(lo), float(hi)


def interval_fields(replicates: np.ndarray, point: float, s: BootstrapSettings, *, n: int,
                    method: str, shift_bias: bool = False, scale: float = 1.0) -> dict:
    """The metric-entry fields of an interval: ``ci`` [lo, hi] (None when undefined),
    ``ci_level``, ``ci_method``, ``ci_resamples``, ``ci_degenerate`` (+ a note)."""
    reps = np.asarray(replicates, dtype=np.float64) * scale
    ci = percentile_interval(reps, point, s.confidence, shift_bias=shift_bias)
    dropped = int((~np.isfinite(reps)).sum())
    out = {"ci": list(ci) if ci is not None else None, "ci_level": s.confidence,
           "ci_method": method, "ci_resamples": int(reps.size), "ci_degenerate": n < 2}
    if n < 2:
        out["ci_note"] = ("one evaluation image: resampling cannot show any spread; the interval "
                          "is the point itself and says nothing about uncertainty")
    if dropped:
        out["ci_dropped"] = dropped   # replicates where the score is undefined (e.g. no class)
    return out


# --- mIoU / pixel accuracy ---------------------------------------------------------------------
@dataclass(frozen=True)
class SparseConfusions:
    """Per-image [C + 1, C] confusion matrices, stored as non-zero (image, cell, count)."""
    image: np.ndarray     # int64 [nnz]
    cell: np.ndarray      # int64 [nnz], row * C + column
    count: np.ndarray     # int64 [nnz]
    n_images: int
    num_classes: int

    @classmethod
    def from_dense(cls, matrices: Sequence[torch.Tensor] | np.ndarray) -> "SparseConfusions":
        mats = [np.asarray(m.cpu().numpy() if isinstance(m, torch.Tensor) else m,
                           dtype=np.int64) for m in matrices]
        if not mats:
            raise ValueError("no per-image confusion matrices")
        c = mats[0].shape[1]
        image, cell, count = [], [], []
        for i, m in enumerate(mats):
            if m.shape != (c + 1, c):
                raise ValueError(f"image {i}: confusion matrix {m.shape}, expected {(c + 1, c)}")
            flat = m.reshape(-1)
            nz = np.flatnonzero(flat)
            image.append(np.full(nz.size, i, dtype=np.int64))
            cell.append(nz.astype(np.int64))
            count.append(flat[nz])
        return cls(np.concatenate(image), np.concatenate(cell), np.concatenate(count),
                   len(mats), c)

    def total(self, weights: np.ndarray | None = None) -> torch.Tensor:
        """Sum of the images' matrices, image i counted ``weights[i]`` times (default once)."""
        c = self.num_classes
        w = self.count if weights is None else self.count * np.asarray(weights)[self.image]
        flat = np.bincount(self.cell, weights=w, minlength=(c + 1) * c)
        return torch.from_numpy(np.rint(flat).astype(np.int64).reshape(c + 1, c))

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}_image": self.image, f"{prefix}_cell": self.cell,
                f"{prefix}_count": self.count,
                f"{prefix}_shape": np.array([self.n_images, self.num_classes], dtype=np.int64)}

    @classmethod
    def from_arrays(cls, data, prefix: str) -> "SparseConfusions":
        n, c = (int(v) for v in data[f"{prefix}_shape"])
        return cls(np.asarray(data[f"{prefix}_image"]), np.asarray(data[f"{prefix}_cell"]),
                   np.asarray(data[f"{prefix}_count"]), n, c)


def counts_of(idx: np.ndarray, n: int) -> np.ndarray:
    """[B, n] resampled indices -> [B, n] how often each image was drawn."""
    return np.stack([np.bincount(row, minlength=n) for row in idx])


def confusion_replicates(conf: SparseConfusions, idx: np.ndarray, policy: str,
                         ignored_pixels: str) -> dict[str, np.ndarray]:
    """mIoU and accuracy (percent) of every replicate (NaN where undefined)."""
    miou, acc = [], []
    for weights in counts_of(idx, conf.n_images):
        cm = conf.total(weights)
        miou.append(100.0 * mean_iou(cm, policy))
        acc.append(100.0 * pixel_accuracy(cm, ignored_pixels))
    return {"miou": np.asarray(miou), "accuracy": np.asarray(acc)}


# --- means of per-item values (LPIPS diversity) -------------------------------------------------
def mean_replicates(values: Sequence[float], idx: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    return v[idx].mean(axis=1)


# --- FID / KID ---------------------------------------------------------------------------------
def fid_replicates(gen: torch.Tensor, real: torch.Tensor, idx: np.ndarray) -> np.ndarray:
    """FID of the resampled generated rows against the fixed real set (evaluators.fid)."""
    from torch_fidelity.metric_fid import fid_features_to_statistics

    from evaluators.fid import _fid_against
    gen, real = gen.cpu(), real.cpu()
    stats_real = fid_features_to_statistics(real)
    return np.asarray([_fid_against(gen[torch.from_numpy(row)], stats_real) for row in idx])


class KidKernel:
    """torch-fidelity's polynomial kernel (degree, gamma = 1/d, coef0 from its DEFAULTS) between
    the generated rows and the real set, computed once (float64 torch matmuls); a replicate is
    an unbiased MMD^2 computed from how often each generated row was drawn."""

    def __init__(self, gen: torch.Tensor, real: torch.Tensor) -> None:
        from torch_fidelity.defaults import DEFAULTS
        degree = DEFAULTS["kid_kernel_poly_degree"]
        gamma = DEFAULTS["kid_kernel_poly_gamma"]
        coef0 = DEFAULTS["kid_kernel_poly_coef0"]
        x = gen.detach().cpu().double()
        y = real.detach().cpu().double()
        gamma = 1.0 / x.shape[1] if gamma is None else gamma

        def kernel(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
            return ((a @ b.T) * gamma + coef0).pow(degree).numpy()
        self.kxx = kernel(x, x)
        self.kxy_rows = kernel(x, y).mean(axis=1)      # mean over the real set, per gen row
        kyy = kernel(y, y)
        m = y.shape[0]
        self.yy_term = float((kyy.sum() - np.trace(kyy)) / (m * (m - 1)))
        self.diag = np.diag(self.kxx).copy()

    def mmd2_counts(self, counts: np.ndarray) -> np.ndarray:
        """Unbiased MMD^2 of [B, n] draw counts: the off-diagonal positions of the drawn sample
        sum to w K w - sum_i w_i K_ii (a repeated image pairs with its copy, hence the
        bootstrap bias shift)."""
        w = np.atleast_2d(np.asarray(counts, dtype=np.float64))
        n = w.sum(axis=1)
        xx = (np.einsum("bi,ij,bj->b", w, self.kxx, w) - w @ self.diag) / (n * (n - 1))
        xy = (w @ self.kxy_rows) / n
        return xx + self.yy_term - 2.0 * xy

    def mmd2(self, rows: np.ndarray) -> float:
        return float(self.mmd2_counts(np.bincount(rows, minlength=len(self.diag)))[0])


def kid_replicates(gen: torch.Tensor, real: torch.Tensor, idx: np.ndarray,
                   kernel: KidKernel | None = None) -> np.ndarray:
    kernel = kernel or KidKernel(gen, real)
    return kernel.mmd2_counts(counts_of(idx, gen.shape[0]))


def sparse_from_cells(per_image: Sequence[tuple[np.ndarray, np.ndarray]],
                      num_classes: int) -> SparseConfusions:
    """(flat cells, counts) per image (evaluators.segmentation.per_image_confusions) ->
    :class:`SparseConfusions`."""
    image = [np.full(len(c), i, dtype=np.int64) for i, (c, _) in enumerate(per_image)]
    empty = np.zeros(0, dtype=np.int64)
    return SparseConfusions(np.concatenate(image) if image else empty,
                            np.concatenate([c for c, _ in per_image]) if per_image else empty,
                            np.concatenate([k for _, k in per_image]) if per_image else empty,
                            len(per_image), num_classes)
