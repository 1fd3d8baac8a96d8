"""Distances between two feature sets: Fréchet distance, CMMD, precision / recall, density /
coverage. Inputs are [N, D] float tensors, generated first; nothing here runs a network.

- Fréchet distance: torch-fidelity's statistics and distance (the FID code on any D).
- CMMD (Jayasumana et al., CVPR 2024; google-research/cmmd): embeddings L2-normalised, Gaussian
  RBF kernel exp(-||x - y||^2 / (2 sigma^2)) with sigma = 10, MMD^2 by the *biased* estimator
  (means over all pairs, diagonals included, as cmmd's distance.py), times scale = 1000.
- precision / recall: torch-fidelity's ``prc_features_to_metric`` (Kynkäänniemi et al., k-NN
  radii with k = neighborhood, a point inside a ball when distance <= radius).
- density / coverage: Naeem et al. 2020 as the prdc package defines them (strict <, k-NN radii
  of the real set); computed here in float64 torch, tested against ``prdc.compute_prdc``.
"""
from __future__ import annotations

import torch


def _check(gen: torch.Tensor, real: torch.Tensor, what: str) -> None:
    if gen.dim() != 2 or real.dim() != 2 or gen.shape[1] != real.shape[1]:
        raise ValueError(f"{what} needs two [N, D] feature sets of equal D, got "
                         f"{tuple(gen.shape)} and {tuple(real.shape)}")


def frechet_distance(gen: torch.Tensor, real: torch.Tensor) -> float:
    """The Fréchet distance of two Gaussians fitted to the features (torch-fidelity's FID)."""
    from evaluators.fid import fid_value
    return fid_value(gen, real)


def cmmd(gen: torch.Tensor, real: torch.Tensor, *, sigma: float = 10.0,
         scale: float = 1000.0) -> float:
    """CMMD: scale x biased MMD^2 with a Gaussian kernel on L2-normalised embeddings."""
    _check(gen, real, "CMMD")
    x = torch.nn.functional.normalize(real.double(), dim=1)
    y = torch.nn.functional.normalize(gen.double(), dim=1)
    gamma = 1.0 / (2.0 * sigma ** 2)

    def k_mean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.exp(-gamma * torch.cdist(a, b).pow(2)).mean()

    return float(scale * (k_mean(x, x) + k_mean(y, y) - 2.0 * k_mean(x, y)))


def precision_recall(gen: torch.Tensor, real: torch.Tensor, neighborhood: int = 3) -> dict:
    """torch-fidelity's precision / recall (input1 = generated, input2 = real)."""
    from torch_fidelity.metric_prc import (KEY_METRIC_PRECISION, KEY_METRIC_RECALL,
                                           prc_features_to_metric)
    _check(gen, real, "precision/recall")
    out = prc_features_to_metric(gen.float().cpu(), real.float().cpu(),
                                 prc_neighborhood=neighborhood, prc_batch_size=10000,
                                 save_cpu_ram=False, verbose=False)
    return {"precision": float(out[KEY_METRIC_PRECISION]),
            "recall": float(out[KEY_METRIC_RECALL])}


def _knn_radius(x: torch.Tensor, k: int) -> torch.Tensor:
    # The k-th nearest other point: index k in the sorted row (index 0 is the point itself).
    return torch.cdist(x, x).kthvalue(k + 1, dim=1).values


def density_coverage(gen: torch.Tensor, real: torch.Tensor, nearest_k: int = 5) -> dict:
    """Density and coverage (Naeem et al. 2020), as prdc.compute_prdc defines them."""
    _check(gen, real, "density/coverage")
    r, g = real.double().cpu(), gen.double().cpu()
    radius = _knn_radius(r, nearest_k)                  # [N_real]
    d = torch.cdist(r, g)                               # [N_real, N_gen]
    inside = d < radius[:, None]
    density = inside.sum(dim=0).double().mean() / nearest_k
    coverage = (d.min(dim=1).values < radius).double().mean()
    return {"density": float(density), "coverage": float(coverage)}
