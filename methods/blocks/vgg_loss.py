"""VGG19 perceptual loss of the SPADE family (also pix2pixHD's, there weighted by lambda_feat).

torchvision VGG19 ``features`` split after relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 (indices
2, 7, 12, 21, 30); L1 between fake and real.detach() features weighted 1/32, 1/16, 1/8, 1/4, 1.
Inputs are fed in [-1, 1] without ImageNet normalisation, as in the official code. ImageNet weights
come through the project's weight resolution (explicit path -> weights dir -> hub cache ->
download).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from harness.core.weights import VGG19_IMAGENET, WeightNeed, load_state_dict_file, resolve

SLICES = ((0, 2), (2, 7), (7, 12), (12, 21), (21, 30))
WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)


class VGG19Features(nn.Module):
    def __init__(self, weights_path: str | Path | None = None, *, pretrained: bool = True) -> None:
        super().__init__()
        vgg = torchvision.models.vgg19(weights=None)
        self.weights = None
        if pretrained:
            resolved = resolve(VGG19_IMAGENET, weights_path)
            vgg.load_state_dict(load_state_dict_file(resolved))
            self.weights = resolved
        features = vgg.features
        self.slices = nn.ModuleList(nn.Sequential(*[features[i] for i in range(a, b)]) for a, b in SLICES)
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for s in self.slices:
            x = s(x)
            out.append(x)
        return out


class VGGLoss(nn.Module):
    def __init__(self, weights_path: str | Path | None = None, *, pretrained: bool = True) -> None:
        super().__init__()
        self.vgg = VGG19Features(weights_path, pretrained=pretrained)

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        f, r = self.vgg(fake), self.vgg(real)
        return sum(w * F.l1_loss(a.float(), b.detach().float()) for w, a, b in zip(WEIGHTS, f, r))

    def train(self, mode: bool = True) -> "VGGLoss":
        return super().train(False)  # always frozen, never in training mode


def lazy_vgg_loss(aux: nn.ModuleDict, weights_path: str | Path | None, device: torch.device) -> VGGLoss:
    """The VGG19 loss kept in a method's ``aux`` modules, built at the first training step.

    Generating from a trained or imported model, or evaluating it, must not need the VGG19
    weights; only training with the perceptual loss does.
    """
    if "vgg" not in aux:
        aux["vgg"] = VGGLoss(weights_path).to(device)
    return aux["vgg"]


def vgg_weight_need(weights_path: str | Path | None, switch: str) -> WeightNeed:
    """What a method declares when its configuration trains with this loss (``switch``: the
    option that turns it on, for the message)."""
    return WeightNeed(VGG19_IMAGENET, f"VGG19 perceptual loss ({switch}; an explicit file: "
                      "--set method.vgg_weights=PATH)", path=weights_path)
