"""Multi-scale PatchGAN discriminator of pix2pixHD and SPADE (reusable by any label+image method).

One scale (kernel 4, padding 2, LeakyReLU 0.2)::

    conv s2 (in -> ndf)                              no norm
    conv s2 (-> 2 ndf) ... conv s2 (-> 4 ndf)        norm           (n_layers - 2 of them)
    conv s1 (-> min(8 ndf, 512))                     norm
    conv s1 (-> 1)                                   prediction map, no norm

``n_layers`` counts the convs before the prediction (SPADE's ``n_layers_D`` = 4; pix2pixHD's
``n_layers_D`` = 3 means the same network, pass 4). Scale k sees the input average-pooled k times
with AvgPool(3, 2, 1, count_include_pad=False). ``forward`` returns, per scale (full resolution
first), the list of every block's output; the last one is the prediction (feature matching uses
the others).

Two normalisations and two state_dict layouts, so the official checkpoints load by name:

* ``layout='spade'`` (SPADE ``norm_D='spectralinstance'``): the middle convs are spectrally
  normalised, lose their bias and are followed by InstanceNorm; first and last conv are plain.
  Keys ``discriminator_{k}.model{j}...`` with k = 0 at full resolution.
* ``layout='pix2pixhd'``: no spectral norm, every conv keeps its bias, InstanceNorm on the
  middle convs. Keys ``scale{s}_layer{j}...`` where, as in the official code, the full-resolution
  scale is the LAST index (s = num_D - 1).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from methods.blocks.spectral import drop_bias, spectral

LAYOUTS = ("spade", "pix2pixhd")
KERNEL, PADDING = 4, 2  # padding = ceil((4 - 1) / 2), as in both official code bases


def downsample(x: torch.Tensor) -> torch.Tensor:
    """The pooling between scales (also pix2pixHD's local-enhancer input pyramid)."""
    return F.avg_pool2d(x, kernel_size=3, stride=2, padding=1, count_include_pad=False)


def _channels(ndf: int, n_layers: int) -> list[int]:
    chans = [ndf]
    for _ in range(1, n_layers):
        chans.append(min(chans[-1] * 2, 512))
    return chans


def patch_blocks(input_nc: int, *, ndf: int = 64, n_layers: int = 4, layout: str = "spade",
                 spectral_norm: bool = True) -> list[nn.Module]:
    """The n_layers + 1 blocks of one scale, named and nested like the official modules."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown discriminator layout {layout!r} ({' | '.join(LAYOUTS)})")
    if n_layers < 2:
        raise ValueError(f"n_layers must be >= 2 (first conv + the stride-1 conv), got {n_layers}")
    chans = _channels(ndf, n_layers)
    blocks: list[nn.Module] = [nn.Sequential(
        nn.Conv2d(input_nc, ndf, KERNEL, stride=2, padding=PADDING), nn.LeakyReLU(0.2))]
    for n in range(1, n_layers):
        stride = 1 if n == n_layers - 1 else 2
        conv = nn.Conv2d(chans[n - 1], chans[n], KERNEL, stride=stride, padding=PADDING)
        norm = nn.InstanceNorm2d(chans[n], affine=False)
        if layout == "spade":
            # the bias is meaningless before a normalisation: the official code deletes it
            conv = drop_bias(spectral(conv, spectral_norm))
            blocks.append(nn.Sequential(nn.Sequential(conv, norm), nn.LeakyReLU(0.2)))
        else:
            blocks.append(nn.Sequential(conv, norm, nn.LeakyReLU(0.2)))
    blocks.append(nn.Sequential(nn.Conv2d(chans[-1], 1, KERNEL, stride=1, padding=PADDING)))
    return blocks


class _Scale(nn.Module):
    """One SPADE-layout scale: children model0 ... model{n_layers}."""

    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        for j, block in enumerate(blocks):
            self.add_module(f"model{j}", block)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for block in self.children():
            x = block(x)
            outputs.append(x)
        return outputs


class MultiscaleDiscriminator(nn.Module):
    def __init__(self, input_nc: int, *, num_D: int = 2, n_layers: int = 4, ndf: int = 64,
                 layout: str = "spade", spectral_norm: bool = True) -> None:
        super().__init__()
        if num_D < 1:
            raise ValueError(f"num_D must be >= 1, got {num_D}")
        if layout == "pix2pixhd" and spectral_norm:
            raise ValueError("the pix2pixHD layout has no spectral norm (spectral_norm=False)")
        self.num_D, self.n_layers, self.layout = num_D, n_layers, layout
        self._scale_names: list[list[str]] = []  # processing order: full resolution first
        for k in range(num_D):
            blocks = patch_blocks(input_nc, ndf=ndf, n_layers=n_layers, layout=layout,
                                  spectral_norm=spectral_norm)
            if layout == "spade":
                self.add_module(f"discriminator_{k}", _Scale(blocks))
                self._scale_names.append([f"discriminator_{k}"])
            else:
                s = num_D - 1 - k
                names = [f"scale{s}_layer{j}" for j in range(len(blocks))]
                for name, block in zip(names, blocks):
                    self.add_module(name, block)
                self._scale_names.append(names)

    def _run_scale(self, k: int, x: torch.Tensor) -> list[torch.Tensor]:
        names = self._scale_names[k]
        if self.layout == "spade":
            return getattr(self, names[0])(x)
        outputs = []
        for name in names:
            x = getattr(self, name)(x)
            outputs.append(x)
        return outputs

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        results = []
        for k in range(self.num_D):
            if k:
                x = downsample(x)
            results.append(self._run_scale(k, x))
        return results


Outputs = list[list[torch.Tensor]]


def split_fake_real(outputs: Outputs) -> tuple[Outputs, Outputs]:
    """Split outputs of D on cat([fake, real], dim=0) into (fake, real) halves per tensor."""
    fake = [[t[: t.shape[0] // 2] for t in scale] for scale in outputs]
    real = [[t[t.shape[0] // 2:] for t in scale] for scale in outputs]
    return fake, real
