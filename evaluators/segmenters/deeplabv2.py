"""DeepLab-v2 ResNet-101 with multi-scale inputs (MSC) for COCO-Stuff 164k, as in kazuto1011/deeplab-pytorch.

Loads ``deeplabv2_resnet101_msc-cocostuff164k-100000.pth`` (a bare state_dict of the MSC wrapper,
keys ``base.*``) with strict keys. The network: a Caffe-style ResNet-101 (stride on the 1x1
``reduce`` conv, ceil-mode max-pool, projection shortcut in the first block of every stage), kept
at output stride 8 with dilation 2 / 4 in the last two stages, and ASPP as the *sum* of four
biased 3x3 convolutions with rates 6, 12, 18, 24. MSC runs the network on the image and on copies
scaled by 0.5 and 0.75, resizes those logits to the full-scale logit size and takes the pixel-wise
maximum.

Evaluation as ``main.py test``: BGR, 0..255 floats minus the BGR mean (no std), the image at its
own size, logits bilinearly resized to the label size, softmax, argmax. 182 COCO-Stuff ids.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from evaluators.segmenters import Segmenter, SegmenterEntry, register_segmenter
from evaluators.segmenters._common import (bilinear, check_images, load_strict, module_device,
                                           module_dtype, read_checkpoint)
from harness.core.weights import WeightSpec, resolve

MEAN_BGR = (104.008, 116.669, 122.675)      # configs/cocostuff164k.yaml (B, G, R)
MSC_SCALES = (0.5, 0.75)
ATROUS_RATES = (6, 12, 18, 24)

DEEPLABV2_COCOSTUFF164K = WeightSpec(
    key="deeplabv2-resnet101-msc-cocostuff164k",
    filename="deeplabv2_resnet101_msc-cocostuff164k-100000.pth",
    url="https://github.com/kazuto1011/deeplab-pytorch/releases/download/v1.0/"
        "deeplabv2_resnet101_msc-cocostuff164k-100000.pth",
    sha256=None, source="kazuto1011/deeplab-pytorch release v1.0 (README: COCO-Stuff 164k model)")


class ConvBN(nn.Sequential):
    """conv (no bias) -> BN(momentum 0.001) [-> ReLU]; keys .conv / .bn as the original."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, padding: int,
                 dilation: int, relu: bool = True) -> None:
        super().__init__()
        self.add_module("conv", nn.Conv2d(cin, cout, kernel, stride, padding, dilation, bias=False))
        self.add_module("bn", nn.BatchNorm2d(cout, eps=1e-5, momentum=0.001))
        if relu:
            self.add_module("relu", nn.ReLU())


class CaffeBottleneck(nn.Module):
    """reduce 1x1 (stride here) -> conv3x3 (dilated) -> increase 1x1, + shortcut, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int, dilation: int, projection: bool) -> None:
        super().__init__()
        mid = cout // 4
        self.reduce = ConvBN(cin, mid, 1, stride, 0, 1)
        self.conv3x3 = ConvBN(mid, mid, 3, 1, dilation, dilation)
        self.increase = ConvBN(mid, cout, 1, 1, 0, 1, relu=False)
        self.shortcut = ConvBN(cin, cout, 1, stride, 0, 1, relu=False) if projection else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.increase(self.conv3x3(self.reduce(x)))
        return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class ResStage(nn.Sequential):
    """``block1 .. blockN``; block1 always has a projection shortcut."""

    def __init__(self, blocks: int, cin: int, cout: int, stride: int, dilation: int) -> None:
        super().__init__()
        for i in range(blocks):
            self.add_module(f"block{i + 1}", CaffeBottleneck(
                cin if i == 0 else cout, cout, stride if i == 0 else 1, dilation, projection=i == 0))


class Stem(nn.Sequential):
    def __init__(self) -> None:
        super().__init__()
        self.add_module("conv1", ConvBN(3, 64, 7, 2, 3, 1))
        self.add_module("pool", nn.MaxPool2d(3, 2, 1, ceil_mode=True))


class ASPPSum(nn.Module):
    """DeepLab-v2 ASPP: parallel dilated 3x3 classifiers ``c0..c3`` whose logits are summed."""

    def __init__(self, cin: int, num_classes: int, rates: Sequence[int]) -> None:
        super().__init__()
        for i, rate in enumerate(rates):
            self.add_module(f"c{i}", nn.Conv2d(cin, num_classes, 3, 1, padding=rate,
                                               dilation=rate, bias=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(branch(x) for branch in self.children())


class DeepLabV2(nn.Sequential):
    """DeepLab-v2 ResNet-101: stem, stages with 3/4/23/3 blocks (dilation 1/1/2/4), ASPP."""

    def __init__(self, num_classes: int = 182, blocks: Sequence[int] = (3, 4, 23, 3),
                 rates: Sequence[int] = ATROUS_RATES) -> None:
        super().__init__()
        self.add_module("layer1", Stem())
        self.add_module("layer2", ResStage(blocks[0], 64, 256, 1, 1))
        self.add_module("layer3", ResStage(blocks[1], 256, 512, 2, 1))
        self.add_module("layer4", ResStage(blocks[2], 512, 1024, 1, 2))
        self.add_module("layer5", ResStage(blocks[3], 1024, 2048, 1, 4))
        self.add_module("aspp", ASPPSum(2048, num_classes, rates))


class MSC(nn.Module):
    """Multi-scale inputs, evaluation form: pixel-wise max of the logits over input scales."""

    def __init__(self, base: nn.Module, scales: Sequence[float] = MSC_SCALES) -> None:
        super().__init__()
        self.base = base
        self.scales = tuple(scales)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.base(x)
        size = logits.shape[-2:]
        # scale_factor (not an explicit size), as the original: for non-integer H*p the sampling
        # grid differs between the two.
        candidates = [logits] + [
            F.interpolate(self.base(F.interpolate(x, scale_factor=p, mode="bilinear",
                                                  align_corners=False)),
                          size=size, mode="bilinear", align_corners=False)
            for p in self.scales]
        return torch.stack(candidates).max(dim=0).values


class DeepLabV2CocoStuffSegmenter(Segmenter):
    """DeepLab-v2 R101 MSC (kazuto1011) on COCO-Stuff 164k, 182 ids (11 never used)."""
    name = "deeplabv2-resnet101-cocostuff164k"
    label_space = "cocostuff-182"
    num_classes = 182

    def __init__(self) -> None:
        super().__init__()
        self.net = MSC(DeepLabV2(self.num_classes))
        self.config = {"msc_scales": list(MSC_SCALES)}
        self.eval()

    def network_input(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 RGB -> BGR float minus the BGR mean (no scaling), in the network's dtype."""
        x = images.to(module_device(self)).flip(1).to(torch.float64)
        mean = torch.tensor(MEAN_BGR, dtype=torch.float64, device=x.device).view(1, 3, 1, 1)
        # numpy's float32 -= float64 rounds the float64 difference once; so do we.
        return (x - mean).to(module_dtype(self))

    def logits(self, images: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        return bilinear(self.net(self.network_input(images)), out_size)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, out_size: Sequence[int]) -> torch.Tensor:
        size = check_images(images, out_size)
        return F.softmax(self.logits(images, size), dim=1).argmax(dim=1)


def build_deeplabv2_resnet101_cocostuff164k(weights=None, device="cpu", *,
                                           dtype: torch.dtype = torch.float32
                                           ) -> DeepLabV2CocoStuffSegmenter:
    """Build MSC(DeepLab-v2 R101) and load ``deeplabv2_resnet101_msc-cocostuff164k-100000.pth``."""
    resolved = resolve(DEEPLABV2_COCOSTUFF164K, weights)
    model = DeepLabV2CocoStuffSegmenter()
    load_strict(model.net, read_checkpoint(resolved), resolved.path)
    model.resolved_weights = [resolved]
    return model.to(device=device, dtype=dtype).eval()


ENTRY = register_segmenter(SegmenterEntry(
    name=DeepLabV2CocoStuffSegmenter.name, label_space=DeepLabV2CocoStuffSegmenter.label_space,
    description="DeepLab-v2 ResNet-101 MSC (kazuto1011) on COCO-Stuff 164k, 182 ids; BGR minus "
                "mean, image at its own size, logits bilinear to out_size",
    build=build_deeplabv2_resnet101_cocostuff164k,
    weights=(DEEPLABV2_COCOSTUFF164K,),
    identity={"architecture": "MSC(DeepLabV2(182, [3,4,23,3], [6,12,18,24]), [0.5,0.75])",
              "weights": [DEEPLABV2_COCOSTUFF164K.identity()],
              "preprocessing": {"color": "BGR", "scale": 1.0, "mean": MEAN_BGR, "std": None,
                                "input_resize": "none"},
              "output_resize": "bilinear (align_corners=False) on logits, softmax, argmax"},
    options={}))
