"""pix2pixHD instance-wise feature encoder E.

An encoder-decoder (``model``, indexed like the official one)::

    ReflectionPad(3) conv7x7 (3 -> nef) IN ReLU
    n_downsampling x [conv3x3 s2, IN, ReLU]        16 -> 256
    n_downsampling x [convT3x3 s2, IN, ReLU]       256 -> 16
    ReflectionPad(3) conv7x7 (nef -> feat_num) tanh

followed by instance-wise average pooling: every pixel gets the mean feature of its instance, so
the output is piecewise constant (one ``feat_num``-vector per instance), concatenated to the
generator input. Trained jointly with G (in G's optimiser), with no loss of its own.
"""
from __future__ import annotations

import torch
from torch import nn


def instance_average(features: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Replace each pixel's feature by the mean over its region (per image, per channel).

    features [N,C,H,W]; regions [N,H,W] integer ids (instance ids, or labels). Differentiable:
    the gradient of a region mean reaches every pixel of the region, as in the official loops.
    """
    n, c, h, w = features.shape
    if regions.shape != (n, h, w):
        raise ValueError(f"regions must be [N,H,W] = {[n, h, w]}, got {list(regions.shape)}")
    regions = regions.to(features.device).long()
    offset = regions - regions.min()
    span = int(offset.max()) + 1
    keys = offset + span * torch.arange(n, device=features.device).view(n, 1, 1)
    _, inverse = torch.unique(keys.flatten(), return_inverse=True)
    # Sums in at least fp32 (fp16/bf16 under autocast would lose precision), never below the
    # input's precision: a float64 run keeps float64 means.
    acc = torch.promote_types(features.dtype, torch.float32)
    flat = features.permute(0, 2, 3, 1).reshape(-1, c).to(acc)
    sums = torch.zeros(int(inverse.max()) + 1, c, dtype=flat.dtype, device=flat.device)
    sums = sums.index_add(0, inverse, flat)
    counts = torch.bincount(inverse).to(flat.dtype).unsqueeze(1)
    means = sums / counts
    return means[inverse].view(n, h, w, c).permute(0, 3, 1, 2).to(features.dtype).contiguous()


class FeatureEncoder(nn.Module):
    def __init__(self, input_nc: int = 3, output_nc: int = 3, *, nef: int = 16,
                 n_downsampling: int = 4) -> None:
        super().__init__()
        self.output_nc = output_nc
        self.size_multiple = 2 ** n_downsampling
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, nef, 7),
                                   nn.InstanceNorm2d(nef), nn.ReLU()]
        for i in range(n_downsampling):
            c = nef * 2 ** i
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * c), nn.ReLU()]
        for i in range(n_downsampling):
            c = nef * 2 ** (n_downsampling - i)
            layers += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1),
                       nn.InstanceNorm2d(c // 2), nn.ReLU()]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(nef, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
        return instance_average(self.model(image), regions)
