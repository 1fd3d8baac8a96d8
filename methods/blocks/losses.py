"""Adversarial, feature-matching and KL losses of the SPADE-family and pix2pixHD code bases.

Discriminator outputs are lists over scales; each scale's output is a list of features whose
last element is the prediction map (or a bare tensor). SPADE / CC-FPSE average the GAN loss over
scales; pix2pixHD sums it. D losses are returned per term (real, fake) so the caller decides
whether to halve their sum (pix2pixHD) or not (SPADE).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

Outputs = Sequence  # list over scales of (list of tensors | tensor)


def _predictions(outputs: Outputs) -> list[torch.Tensor]:
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    return [o[-1] if isinstance(o, (list, tuple)) else o for o in outputs]


class GANLoss:
    """mode: 'hinge' | 'ls' | 'original' (BCE with logits) | 'w'; scales: 'mean' | 'sum'."""

    def __init__(self, mode: str = "hinge", scales: str = "mean") -> None:
        if mode not in ("hinge", "ls", "original", "w"):
            raise ValueError(f"unknown GAN loss mode {mode!r}")
        if scales not in ("mean", "sum"):
            raise ValueError(f"scales must be 'mean' or 'sum', got {scales!r}")
        self.mode, self.scales = mode, scales

    def _one(self, pred: torch.Tensor, real: bool, for_discriminator: bool) -> torch.Tensor:
        pred = pred.float()
        if self.mode == "hinge":
            if not for_discriminator:
                if not real:
                    raise ValueError("the generator's hinge loss is defined for real targets only")
                return -pred.mean()
            return F.relu(1 - pred).mean() if real else F.relu(1 + pred).mean()
        if self.mode == "ls":
            target = torch.ones_like(pred) if real else torch.zeros_like(pred)
            return F.mse_loss(pred, target)
        if self.mode == "original":
            target = torch.ones_like(pred) if real else torch.zeros_like(pred)
            return F.binary_cross_entropy_with_logits(pred, target)
        return -pred.mean() if real else pred.mean()  # 'w'

    def __call__(self, outputs: Outputs, real: bool, for_discriminator: bool = True) -> torch.Tensor:
        preds = _predictions(outputs)
        total = sum(self._one(p, real, for_discriminator) for p in preds)
        return total / len(preds) if self.scales == "mean" else total


def feature_matching(fake: Sequence[Sequence[torch.Tensor]], real: Sequence[Sequence[torch.Tensor]],
                     weight: float, *, skip_last: bool = True) -> torch.Tensor:
    """sum over scales i and features j of weight * L1(fake[i][j], real[i][j].detach()).

    With ``skip_last`` the last tensor of each scale (the prediction) is excluded, as in SPADE and
    pix2pixHD; pass the per-term weight (e.g. lambda_feat / num_D).
    """
    loss = None
    for f_scale, r_scale in zip(fake, real):
        n = len(f_scale) - 1 if skip_last else len(f_scale)
        for j in range(n):
            term = F.l1_loss(f_scale[j].float(), r_scale[j].detach().float()) * weight
            loss = term if loss is None else loss + term
    if loss is None:
        raise ValueError("no features to match")
    return loss


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """-0.5 * SUM(1 + logvar - mu^2 - exp(logvar)): summed over batch and latent dims (official)."""
    mu, logvar = mu.float(), logvar.float()
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator=None) -> torch.Tensor:
    """z = mu + eps * exp(logvar / 2); eps from `generator` (one per sample for batch independence)."""
    from methods.base import randn_per_sample
    std = torch.exp(0.5 * logvar)
    eps = randn_per_sample(tuple(std.shape[1:]), std.shape[0], generator, std.device, std.dtype)
    return eps * std + mu
