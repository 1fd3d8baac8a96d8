"""DRN-D-105 (Yu et al., "Dilated Residual Networks") for Cityscapes, as released in fyu/drn.

Loads ``drn-d-105_ms_cityscapes.pth`` (a bare state_dict of the original ``DRNSeg``) with strict
keys. The network: a ResNet-101-like trunk kept at output stride 8 by dilation (layer5 dilation 2,
layer6 dilation 4, then two plain dilated conv layers), a 1x1 classifier to 19 Cityscapes
trainIds, a fixed bilinear transposed convolution x8 and a log-softmax.

Evaluation as ``segment.py test``: RGB /255, Cityscapes mean/std, the image at its own size, argmax
of the log-probabilities. When the requested output size differs from the network output, the
log-probability maps are resized per channel with PIL's bilinear filter and then argmax-ed, as
``segment.py test --ms`` and GAN-Compression's Cityscapes metric do.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from evaluators.segmenters import Segmenter, SegmenterEntry, register_segmenter
from evaluators.segmenters._common import (check_images, load_strict, module_device, module_dtype,
                                           pil_like_resize_scores, pil_resize_uint8, read_checkpoint)
from harness.core.weights import WeightSpec, resolve

CITYSCAPES_TRAINID_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle")

# fyu/drn datasets/cityscapes/info.json (RGB, images scaled to [0, 1])
CITYSCAPES_MEAN = (0.29010095242892997, 0.32808144844279574, 0.28696394422942517)
CITYSCAPES_STD = (0.1829540508368939, 0.18656561047509476, 0.18447508988480435)

# segment.py --ms: the original image plus these rescaled copies (PIL bicubic).
MS_SCALES = (0.5, 0.75, 1.25, 1.5, 1.75)

DRN_D_105_CITYSCAPES = WeightSpec(
    key="drn-d-105-cityscapes", filename="drn-d-105_ms_cityscapes.pth", url=None, sha256=None,
    source="fyu/drn README, 'pretrained DRN models on Cityscapes': http://go.yf.io/drn-cityscapes-models "
           "(Google Drive folder)")


def _conv_bn_relu(cin: int, cout: int, *, stride: int = 1, dilation: int = 1,
                  kernel: int = 3) -> nn.Sequential:
    """DRN's plain 'conv layer': conv (no bias) -> BN -> ReLU, keys .0 / .1."""
    pad = dilation * (kernel // 2)
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DRNBottleneck(nn.Module):
    """1x1 -> 3x3 (carries stride and dilation) -> 1x1 x4, plus a projection on the first block."""
    expansion = 4

    def __init__(self, cin: int, planes: int, *, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation,
                               dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + shortcut)


def _bottleneck_stage(cin: int, planes: int, blocks: int, *, stride: int,
                      dilation: int) -> nn.Sequential:
    # Every block of a dilated stage (the first one included) uses the stage dilation.
    layers = [DRNBottleneck(cin, planes, stride=stride, dilation=dilation)]
    layers += [DRNBottleneck(planes * 4, planes, dilation=dilation) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def bilinear_upsampling_kernel(channels: int, kernel: int) -> torch.Tensor:
    """The fixed bilinear kernel of DRNSeg's transposed convolution, [channels, 1, k, k]."""
    f = (kernel + 1) // 2
    center = (2 * f - 1 - f % 2) / (2.0 * f)
    ramp = 1 - (torch.arange(kernel, dtype=torch.float64) / f - center).abs()
    return torch.outer(ramp, ramp).to(torch.float32).expand(channels, 1, kernel, kernel).clone()


class DRND105Seg(nn.Module):
    """DRNSeg(drn_d_105): trunk ``base.0..8``, classifier ``seg``, fixed x8 deconvolution ``up``.

    ``forward`` returns (log-probabilities at 8x the feature size, stride-8 logits), as the
    original does.
    """

    def __init__(self, num_classes: int = 19) -> None:
        super().__init__()
        self.base = nn.Sequential(
            _conv_bn_relu(3, 16, kernel=7),                         # layer0, stride 1
            _conv_bn_relu(16, 16),                                  # layer1
            _conv_bn_relu(16, 32, stride=2),                        # layer2, stride 2
            _bottleneck_stage(32, 64, 3, stride=2, dilation=1),     # layer3, stride 4
            _bottleneck_stage(256, 128, 4, stride=2, dilation=1),   # layer4, stride 8
            _bottleneck_stage(512, 256, 23, stride=1, dilation=2),  # layer5
            _bottleneck_stage(1024, 512, 3, stride=1, dilation=4),  # layer6
            _conv_bn_relu(2048, 512, dilation=2),                   # layer7 (no residual)
            _conv_bn_relu(512, 512),                                # layer8 (no residual)
        )
        self.seg = nn.Conv2d(512, num_classes, 1, bias=True)
        # Fixed bilinear x8 upsampling; a transposed conv, not F.interpolate: the two differ on
        # the 4-pixel border, and the weight is stored in the checkpoint.
        self.up = nn.ConvTranspose2d(num_classes, num_classes, 16, stride=8, padding=4,
                                     output_padding=0, groups=num_classes, bias=False)
        self.up.weight.data.copy_(bilinear_upsampling_kernel(num_classes, 16))
        self.up.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.seg(self.base(x))
        return F.log_softmax(self.up(logits), dim=1), logits


class DRNCityscapesSegmenter(Segmenter):
    """DRN-D-105 on Cityscapes (fyu/drn), 19 trainIds; single-scale or segment.py --ms."""
    name = "drn-d-105-cityscapes"
    label_space = "cityscapes-trainid"
    num_classes = 19

    def __init__(self, multi_scale: bool = False) -> None:
        super().__init__()
        self.net = DRND105Seg(self.num_classes)
        self.multi_scale = bool(multi_scale)
        self.config = {"multi_scale": self.multi_scale,
                       "scales": [1.0, *MS_SCALES] if self.multi_scale else [1.0]}
        self.eval()

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 RGB -> (x/255 - mean) / std in the network's dtype and device."""
        x = images.to(module_device(self), module_dtype(self)) / 255.0
        mean = torch.tensor(CITYSCAPES_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(CITYSCAPES_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def log_probs(self, images: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        """Summed log-probabilities [N,19,H,W] at out_size (one term per test scale)."""
        total = pil_like_resize_scores(self.net(self.normalize(images))[0], out_size)
        if self.multi_scale:
            h, w = images.shape[-2:]
            for s in MS_SCALES:
                scaled = pil_resize_uint8(images, (int(h * s), int(w * s)), "bicubic")
                total = total + pil_like_resize_scores(self.net(self.normalize(scaled))[0], out_size)
        return total

    @torch.no_grad()
    def predict(self, images: torch.Tensor, out_size: Sequence[int]) -> torch.Tensor:
        size = check_images(images, out_size)
        return self.log_probs(images, size).argmax(dim=1)


def build_drn_d_105_cityscapes(weights=None, device="cpu", *, multi_scale: bool = False,
                               dtype: torch.dtype = torch.float32) -> DRNCityscapesSegmenter:
    """Build DRN-D-105 and load ``drn-d-105_ms_cityscapes.pth`` (explicit path or resolved)."""
    resolved = resolve(DRN_D_105_CITYSCAPES, weights)
    model = DRNCityscapesSegmenter(multi_scale=multi_scale)
    load_strict(model.net, read_checkpoint(resolved), resolved.path)
    model.resolved_weights = [resolved]
    return model.to(device=device, dtype=dtype).eval()


ENTRY = register_segmenter(SegmenterEntry(
    name=DRNCityscapesSegmenter.name, label_space=DRNCityscapesSegmenter.label_space,
    description="DRN-D-105 (fyu/drn) on Cityscapes, 19 trainIds; RGB /255 Cityscapes mean/std, "
                "image at its own size, log-probs PIL-bilinear to out_size",
    build=build_drn_d_105_cityscapes,
    weights=(DRN_D_105_CITYSCAPES,),
    identity={"architecture": "DRNSeg(drn_d_105, 19)", "weights": [DRN_D_105_CITYSCAPES.identity()],
              "preprocessing": {"color": "RGB", "scale": 1 / 255, "mean": CITYSCAPES_MEAN,
                                "std": CITYSCAPES_STD, "input_resize": "none"},
              "output_resize": "PIL bilinear on log-probabilities"},
    options={"multi_scale": False}))
