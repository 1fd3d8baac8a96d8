"""Small pieces shared by the SPADE and pix2pixHD methods."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from methods.blocks.losses import GANLoss, feature_matching
from methods.blocks.multiscale_discriminator import split_fake_real


def discriminate(D: nn.Module, semantics: torch.Tensor, fake: torch.Tensor, real: torch.Tensor):
    """D on [label ⊕ fake ; label ⊕ real] in ONE call (one forward per phase for DDP; the official
    SPADE code batches them too) -> (fake outputs, real outputs), lists over scales."""
    fake_in = torch.cat([semantics, fake.to(semantics.dtype)], dim=1)
    real_in = torch.cat([semantics, real.to(semantics.dtype)], dim=1)
    return split_fake_real(D(torch.cat([fake_in, real_in], dim=0)))


def generator_adversarial_terms(gan_loss: GANLoss, D: nn.Module, semantics: torch.Tensor,
                                fake: torch.Tensor, real: torch.Tensor, *, lambda_feat: float,
                                num_D: int, vgg_loss=None, lambda_vgg: float = 0.0
                                ) -> dict[str, torch.Tensor]:
    """The SPADE-family generator terms after the image is made: hinge G_GAN, feature matching
    (lambda_feat / num_D per scale and layer) and the VGG perceptual loss (``vgg_loss``: a callable
    built lazily by the caller, only needed when lambda_vgg > 0). SPADE and GroupDNet share it."""
    pred_fake, pred_real = discriminate(D, semantics, fake, real)
    terms = {"G_GAN": gan_loss(pred_fake, True, for_discriminator=False)}
    if lambda_feat > 0:
        terms["G_feat"] = feature_matching(pred_fake, pred_real, lambda_feat / num_D)
    if lambda_vgg > 0:
        terms["G_VGG"] = vgg_loss()(fake.float(), real.float()) * lambda_vgg
    return terms


def discriminator_terms(gan_loss: GANLoss, D: nn.Module, semantics: torch.Tensor,
                        fake: torch.Tensor, real: torch.Tensor) -> dict[str, torch.Tensor]:
    """D_fake and D_real of the SPADE family (not halved, unlike pix2pixHD)."""
    pred_fake, pred_real = discriminate(D, semantics, fake.detach(), real)
    return {"D_fake": gan_loss(pred_fake, False, for_discriminator=True),
            "D_real": gan_loss(pred_real, True, for_discriminator=True)}


@contextlib.contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Evaluation mode for generation (BatchNorm running statistics, no spectral-norm power
    iteration); the previous mode of every submodule is restored afterwards."""
    saved = [(m, m.training) for module in modules for m in module.modules()]
    for module in modules:
        module.eval()
    try:
        yield
    finally:
        for m, mode in saved:
            m.training = mode


def generator_list(generator, n: int):
    """None | Generator | list of n Generators -> a list of n (possibly shared / None) generators."""
    if generator is None or isinstance(generator, torch.Generator):
        return [generator] * n
    gens = list(generator)
    if len(gens) != n:
        raise ValueError(f"got {len(gens)} generators for {n} images")
    return gens


def randn_images(shape, generator, n: int, device: torch.device) -> torch.Tensor:
    """n independent N(0, I) draws of ``shape``; with one generator per image each draw depends
    only on its generator. Generators may live on any device (the draw is made there)."""
    if generator is None:
        return torch.randn((n, *shape), device=device)
    if isinstance(generator, torch.Generator):
        return torch.randn((n, *shape), generator=generator, device=generator.device).to(device)
    gens = generator_list(generator, n)
    return torch.stack([torch.randn(tuple(shape), generator=g, device=g.device).to(device)
                        for g in gens])
