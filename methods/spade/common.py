"""Small pieces shared by the SPADE and pix2pixHD methods."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from methods.blocks.multiscale_discriminator import split_fake_real


def discriminate(D: nn.Module, semantics: torch.Tensor, fake: torch.Tensor, real: torch.Tensor):
    """D on [label ⊕ fake ; label ⊕ real] in ONE call (one forward per phase for DDP; the official
    SPADE code batches them too) -> (fake outputs, real outputs), lists over scales."""
    fake_in = torch.cat([semantics, fake.to(semantics.dtype)], dim=1)
    real_in = torch.cat([semantics, real.to(semantics.dtype)], dim=1)
    return split_fake_real(D(torch.cat([fake_in, real_in], dim=0)))


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
