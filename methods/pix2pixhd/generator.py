"""pix2pixHD generators (Wang et al., CVPR 2018).

Global generator G1 (``model``, an nn.Sequential indexed exactly like the official one)::

    ReflectionPad(3) conv7x7 (in -> ngf) IN ReLU
    n_downsampling x [conv3x3 s2 (c -> 2c) IN ReLU]            64 -> 1024 at 1/16
    n_blocks x ResnetBlock(reflect pad, conv3x3, IN, ReLU, reflect pad, conv3x3, IN) + identity
    n_downsampling x [convT3x3 s2 (c -> c/2) IN ReLU]
    ReflectionPad(3) conv7x7 (ngf -> 3) tanh

IN is affine-free and every conv keeps its bias (``norm='instance'``). ``norm='spectralinstance'``
gives the pix2pixHD generator of the SPADE repository: spectral norm + IN on every conv except the
head, the biases before IN removed, each conv and its IN wrapped in one nn.Sequential.

Local enhancer G2 (``LocalEnhancer``): the global generator at width 2 ngf minus its last 3 layers
(``model``) runs on the input average-pooled once; the local front-end ``model1_1`` (7x7 conv,
stride-2 conv) runs on the full-resolution input; their sum goes through ``model1_2``
(3 ResnetBlocks, convT up, 7x7 head, tanh).
"""
from __future__ import annotations

import torch
from torch import nn

from methods.blocks.multiscale_discriminator import downsample
from methods.blocks.spectral import drop_bias, spectral

NORMS = ("instance", "spectralinstance")


def conv_norm(conv: nn.Module, channels: int, norm: str) -> list[nn.Module]:
    """A conv followed by affine-free InstanceNorm, in the module layout of the chosen code base."""
    if norm == "instance":  # pix2pixHD repository: conv (with bias), IN as siblings
        return [conv, nn.InstanceNorm2d(channels, affine=False)]
    if norm == "spectralinstance":  # SPADE repository: Sequential(SN conv without bias, IN)
        return [nn.Sequential(drop_bias(spectral(conv)), nn.InstanceNorm2d(channels, affine=False))]
    raise ValueError(f"unknown generator norm {norm!r} ({' | '.join(NORMS)})")


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, norm: str = "instance") -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), *conv_norm(nn.Conv2d(dim, dim, 3), dim, norm), nn.ReLU(),
            nn.ReflectionPad2d(1), *conv_norm(nn.Conv2d(dim, dim, 3), dim, norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


def global_layers(input_nc: int, output_nc: int = 3, *, ngf: int = 64, n_downsampling: int = 4,
                  n_blocks: int = 9, norm: str = "instance") -> list[nn.Module]:
    layers: list[nn.Module] = [nn.ReflectionPad2d(3),
                               *conv_norm(nn.Conv2d(input_nc, ngf, 7), ngf, norm), nn.ReLU()]
    for i in range(n_downsampling):
        c = ngf * 2 ** i
        layers += [*conv_norm(nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), 2 * c, norm), nn.ReLU()]
    c = ngf * 2 ** n_downsampling
    layers += [ResnetBlock(c, norm) for _ in range(n_blocks)]
    for i in range(n_downsampling):
        c = ngf * 2 ** (n_downsampling - i)
        up = nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1)
        layers += [*conv_norm(up, c // 2, norm), nn.ReLU()]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
    return layers


class GlobalGenerator(nn.Module):
    def __init__(self, input_nc: int, output_nc: int = 3, *, ngf: int = 64, n_downsampling: int = 4,
                 n_blocks: int = 9, norm: str = "instance") -> None:
        super().__init__()
        self.size_multiple = 2 ** n_downsampling
        self.model = nn.Sequential(*global_layers(input_nc, output_nc, ngf=ngf,
                                                  n_downsampling=n_downsampling, n_blocks=n_blocks,
                                                  norm=norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class LocalEnhancer(nn.Module):
    """One or more local enhancers around a global generator of width ngf * 2^n_local_enhancers."""

    def __init__(self, input_nc: int, output_nc: int = 3, *, ngf: int = 32, n_downsample_global: int = 4,
                 n_blocks_global: int = 9, n_local_enhancers: int = 1, n_blocks_local: int = 3) -> None:
        super().__init__()
        self.n_local_enhancers = n_local_enhancers
        self.size_multiple = 2 ** (n_downsample_global + n_local_enhancers)
        trunk = global_layers(input_nc, output_nc, ngf=ngf * 2 ** n_local_enhancers,
                              n_downsampling=n_downsample_global, n_blocks=n_blocks_global)
        self.model = nn.Sequential(*trunk[:-3])  # without the 7x7 head and tanh
        for n in range(1, n_local_enhancers + 1):
            c = ngf * 2 ** (n_local_enhancers - n)
            front = [nn.ReflectionPad2d(3), *conv_norm(nn.Conv2d(input_nc, c, 7), c, "instance"),
                     nn.ReLU(), *conv_norm(nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), 2 * c, "instance"),
                     nn.ReLU()]
            back: list[nn.Module] = [ResnetBlock(2 * c) for _ in range(n_blocks_local)]
            back += [*conv_norm(nn.ConvTranspose2d(2 * c, c, 3, stride=2, padding=1, output_padding=1),
                                c, "instance"), nn.ReLU()]
            if n == n_local_enhancers:
                back += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
            self.add_module(f"model{n}_1", nn.Sequential(*front))
            self.add_module(f"model{n}_2", nn.Sequential(*back))

    def local_parameter_names(self) -> list[str]:
        """Parameters of the outermost enhancer: what the official code trains during the first
        ``niter_fix_global`` epochs (names starting with 'model{n_local_enhancers}')."""
        prefix = f"model{self.n_local_enhancers}"
        return [name for name, _ in self.named_parameters() if name.startswith(prefix)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pyramid = [x]
        for _ in range(self.n_local_enhancers):
            pyramid.append(downsample(pyramid[-1]))
        out = self.model(pyramid[-1])
        for n in range(1, self.n_local_enhancers + 1):
            front, back = getattr(self, f"model{n}_1"), getattr(self, f"model{n}_2")
            out = back(front(pyramid[self.n_local_enhancers - n]) + out)
        return out
