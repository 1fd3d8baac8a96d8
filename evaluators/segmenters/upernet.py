"""UPerNet-101 for ADE20K (150 classes), as released by CSAILVision/semantic-segmentation-pytorch.

Two files, each a bare state_dict: ``encoder_epoch_50.pth`` (ResNet-101 with the 3-conv "deep
stem", not dilated) and ``decoder_epoch_50.pth`` (UPerNet: pyramid pooling on C5 + FPN, fused at
stride 4). Two releases exist with the same file names and different preprocessing:

* ``ade20k`` = folder ``ade20k-resnet101-upernet`` (2019 onwards): RGB, /255, ImageNet mean/std,
  PIL bilinear resize.
* ``baseline`` = folder ``baseline-resnet101-upernet`` (2018, the one SPADE's issue #39 names):
  BGR, 0..255 minus (102.9801, 115.9465, 122.7717), OpenCV bilinear resize.

Test-time policy as ``eval.py``: for every short side S in ``img_sizes`` the image is resized to
scale = min(S / short side, img_max_size / long side), each side rounded *up* to a multiple of
``padding_constant`` (a stretch, no padding); class probabilities (softmax of the logits
bilinearly resized to the output size) are averaged over the sizes, then argmax-ed.

All BatchNorms of the original are ``SynchronizedBatchNorm2d``, whose state_dict carries three
extra buffers per layer; :class:`CSAILBatchNorm2d` registers them so the files load strictly, and
also accepts files saved without them (they play no part in evaluation).
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evaluators.segmenters import Segmenter, SegmenterEntry, register_segmenter
from evaluators.segmenters._common import (check_images, load_strict, module_device, module_dtype,
                                           pil_resize_uint8, read_checkpoint)
from harness.core.weights import WeightSpec, resolve

Generation = Literal["ade20k", "baseline"]

GENERATIONS = {
    # folder on sceneparsing.csail.mit.edu -> preprocessing of the code of that era
    "ade20k": {"folder": "ade20k-resnet101-upernet", "color": "RGB", "scale": 1 / 255,
               "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "resize": "PIL bilinear"},
    "baseline": {"folder": "baseline-resnet101-upernet", "color": "BGR", "scale": 1.0,
                 "mean": (102.9801, 115.9465, 122.7717), "std": (1.0, 1.0, 1.0),
                 "resize": "OpenCV bilinear"},
}
DEFAULT_IMG_SIZES = (300, 375, 450, 525, 600)   # config/ade20k-resnet101-upernet.yaml
DEFAULT_IMG_MAX_SIZE = 1000
DEFAULT_PADDING_CONSTANT = 32


def weight_specs(generation: Generation) -> tuple[WeightSpec, WeightSpec]:
    """Encoder and decoder files; the folder is part of the file name (the two releases clash)."""
    folder = GENERATIONS[generation]["folder"]
    base = f"http://sceneparsing.csail.mit.edu/model/pytorch/{folder}"
    source = f"CSAILVision/semantic-segmentation-pytorch, {base}/"
    return tuple(WeightSpec(key=f"upernet-101-{generation}-{part}",
                            filename=f"{folder}/{part}_epoch_50.pth",
                            url=f"{base}/{part}_epoch_50.pth", sha256=None, source=source)
                 for part in ("encoder", "decoder"))


class CSAILBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm with the state_dict of CSAIL's SynchronizedBatchNorm2d (eval: plain BN).

    The three extra buffers only serve the original's synchronized training; a file without them
    (all three missing) still loads.
    """
    _EXTRA = ("_tmp_running_mean", "_tmp_running_var", "_running_iter")

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features, eps=1e-5, momentum=0.001)
        self.register_buffer("_tmp_running_mean", torch.zeros(num_features))
        self.register_buffer("_tmp_running_var", torch.ones(num_features))
        self.register_buffer("_running_iter", torch.ones(1))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        extras = [prefix + name for name in self._EXTRA]
        if all(k in missing_keys for k in extras):
            for k in extras:
                missing_keys.remove(k)


def _conv3x3_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                         CSAILBatchNorm2d(cout), nn.ReLU(inplace=True))


class ResNetBottleneck(nn.Module):
    """torchvision-v1.5-style bottleneck (stride on the 3x3), CSAIL BatchNorm."""
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = CSAILBatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = CSAILBatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = CSAILBatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                            CSAILBatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + shortcut)


def _stage(cin: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    return nn.Sequential(ResNetBottleneck(cin, planes, stride),
                         *[ResNetBottleneck(planes * 4, planes) for _ in range(blocks - 1)])


class DeepStemResNet101(nn.Module):
    """CSAIL ``Resnet(resnet101())``: 3-conv stem (64, 64, 128), max-pool, four stages.

    Returns the stage outputs [C2, C3, C4, C5] at strides 4, 8, 16, 32.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1 = CSAILBatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, padding=1, bias=False)
        self.bn2 = CSAILBatchNorm2d(64)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1, bias=False)
        self.bn3 = CSAILBatchNorm2d(128)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = _stage(128, 64, 3, 1)
        self.layer2 = _stage(256, 128, 4, 2)
        self.layer3 = _stage(512, 256, 23, 2)
        self.layer4 = _stage(1024, 512, 3, 2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.relu(self.bn3(self.conv3(x)))
        x = self.maxpool(x)
        feats = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            feats.append(x)
        return feats


def _conv1x1_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), CSAILBatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class UPerNetDecoder(nn.Module):
    """CSAIL ``UPerNet(fpn_dim=512, pool_scales=(1,2,3,6))`` on [C2, C3, C4, C5].

    ``forward(feats, seg_size=None)``: log-softmax at stride 4 (training form), or with
    ``seg_size`` the softmax of the logits bilinearly resized to seg_size (evaluation form).
    """

    def __init__(self, num_classes: int = 150, fc_dim: int = 2048, fpn_dim: int = 512,
                 pool_scales: Sequence[int] = (1, 2, 3, 6),
                 fpn_inplanes: Sequence[int] = (256, 512, 1024, 2048)) -> None:
        super().__init__()
        self.pool_scales = tuple(pool_scales)
        # Pyramid pooling on C5: pool -> upsample to C5's size -> 1x1 conv/BN/ReLU.
        self.ppm_conv = nn.ModuleList(_conv1x1_bn_relu(fc_dim, 512) for _ in self.pool_scales)
        self.ppm_last_conv = _conv3x3_bn_relu(fc_dim + len(self.pool_scales) * 512, fpn_dim)
        # FPN laterals for C2..C4 and their 3x3 output convs.
        self.fpn_in = nn.ModuleList(_conv1x1_bn_relu(c, fpn_dim) for c in fpn_inplanes[:-1])
        self.fpn_out = nn.ModuleList(nn.Sequential(_conv3x3_bn_relu(fpn_dim, fpn_dim))
                                     for _ in fpn_inplanes[:-1])
        self.conv_last = nn.Sequential(
            _conv3x3_bn_relu(len(fpn_inplanes) * fpn_dim, fpn_dim),
            nn.Conv2d(fpn_dim, num_classes, 1, bias=True))

    def pyramid_pooling(self, c5: torch.Tensor) -> torch.Tensor:
        size = c5.shape[-2:]
        branches = [c5]
        for scale, conv in zip(self.pool_scales, self.ppm_conv):
            pooled = F.adaptive_avg_pool2d(c5, scale)
            branches.append(conv(F.interpolate(pooled, size=size, mode="bilinear",
                                               align_corners=False)))
        return self.ppm_last_conv(torch.cat(branches, dim=1))

    def logits(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """Class logits at stride 4 (the P2 resolution)."""
        top = self.pyramid_pooling(feats[-1])                       # P5
        pyramid = [top]
        # Top-down: the running sum (before fpn_out) is what is carried to the next level.
        for i in reversed(range(len(feats) - 1)):
            lateral = self.fpn_in[i](feats[i])
            top = lateral + F.interpolate(top, size=lateral.shape[-2:], mode="bilinear",
                                          align_corners=False)
            pyramid.append(self.fpn_out[i](top))
        pyramid.reverse()                                            # [P2, P3, P4, P5]
        size = pyramid[0].shape[-2:]
        fused = torch.cat([pyramid[0]] + [F.interpolate(p, size=size, mode="bilinear",
                                                        align_corners=False)
                                          for p in pyramid[1:]], dim=1)
        return self.conv_last(fused)

    def forward(self, feats: Sequence[torch.Tensor], seg_size: tuple[int, int] | None = None):
        logits = self.logits(feats)
        if seg_size is None:
            return F.log_softmax(logits, dim=1)
        return F.softmax(F.interpolate(logits, size=seg_size, mode="bilinear",
                                       align_corners=False), dim=1)


def eval_input_size(height: int, width: int, short_side: int, max_size: int, multiple: int) -> tuple[int, int]:
    """The network input size eval.py uses for one entry of imgSizes."""
    scale = min(short_side / float(min(height, width)), max_size / float(max(height, width)))
    th, tw = int(height * scale), int(width * scale)
    return (((th - 1) // multiple + 1) * multiple, ((tw - 1) // multiple + 1) * multiple)


def opencv_resize_uint8(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """cv2.resize(INTER_LINEAR) of uint8 [N,3,H,W] (the 2018 loader); needs OpenCV."""
    h, w = size
    if tuple(images.shape[-2:]) == (h, w):
        return images.cpu()
    try:
        import cv2
    except ImportError as exc:
        raise RuntimeError(
            "the 'baseline' UPerNet generation resizes images with OpenCV, as its 2018 evaluation "
            "code did; install opencv-python-headless (it comes with `pip install -e .[mmseg]`), "
            "or feed images at a size that needs no resize") from exc
    out = [cv2.resize(np.ascontiguousarray(img), (w, h), interpolation=cv2.INTER_LINEAR)
           for img in images.cpu().permute(0, 2, 3, 1).numpy()]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


class UPerNetADE20KSegmenter(Segmenter):
    """UPerNet-101 (CSAIL) on ADE20K, 150 classes (class k = annotation value k+1)."""
    name = "upernet-101-ade20k"
    label_space = "ade20k-150"
    num_classes = 150

    def __init__(self, generation: Generation = "ade20k",
                 img_sizes: Sequence[int] = DEFAULT_IMG_SIZES,
                 img_max_size: int = DEFAULT_IMG_MAX_SIZE,
                 padding_constant: int = DEFAULT_PADDING_CONSTANT) -> None:
        super().__init__()
        if generation not in GENERATIONS:
            raise ValueError(f"unknown UPerNet generation {generation!r}; choose one of "
                             f"{sorted(GENERATIONS)}")
        img_sizes = tuple(int(s) for s in (img_sizes if isinstance(img_sizes, Sequence)
                                           else (img_sizes,)))
        if not img_sizes or min(img_sizes) < 1 or img_max_size < 1 or padding_constant < 1:
            raise ValueError(f"img_sizes {img_sizes}, img_max_size {img_max_size} and "
                             f"padding_constant {padding_constant} must be positive")
        self.encoder = DeepStemResNet101()
        self.decoder = UPerNetDecoder(self.num_classes)
        self.generation = generation
        self.img_sizes = img_sizes
        self.img_max_size = int(img_max_size)
        self.padding_constant = int(padding_constant)
        self.config = {"generation": generation, "img_sizes": list(img_sizes),
                       "img_max_size": self.img_max_size,
                       "padding_constant": self.padding_constant,
                       "preprocessing": {k: v for k, v in GENERATIONS[generation].items()
                                         if k != "folder"}}
        self.eval()

    def network_input(self, images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Resize uint8 RGB images to ``size`` and normalise them as the release's code did."""
        prep = GENERATIONS[self.generation]
        if prep["color"] == "BGR":
            resized = opencv_resize_uint8(images.flip(1), size)     # RGB -> BGR, then resize
        else:
            resized = pil_resize_uint8(images, size, "bilinear")
        x = resized.to(module_device(self), module_dtype(self))
        if prep["scale"] != 1.0:
            x = x / 255.0                                           # float32 / 255 as the original
        mean = torch.tensor(prep["mean"], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(prep["std"], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def probabilities(self, images: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        """Class probabilities [N,150,H,W] at out_size, averaged over img_sizes."""
        h, w = images.shape[-2:]
        scores = None
        for short_side in self.img_sizes:
            size = eval_input_size(h, w, short_side, self.img_max_size, self.padding_constant)
            probs = self.decoder(self.encoder(self.network_input(images, size)), seg_size=out_size)
            part = probs / len(self.img_sizes)
            scores = part if scores is None else scores + part
        return scores

    @torch.no_grad()
    def predict(self, images: torch.Tensor, out_size: Sequence[int]) -> torch.Tensor:
        size = check_images(images, out_size)
        return self.probabilities(images, size).argmax(dim=1)


def build_upernet_101_ade20k(weights=None, device="cpu", *, generation: Generation = "ade20k",
                             img_sizes: Sequence[int] = DEFAULT_IMG_SIZES,
                             img_max_size: int = DEFAULT_IMG_MAX_SIZE,
                             padding_constant: int = DEFAULT_PADDING_CONSTANT,
                             dtype: torch.dtype = torch.float32) -> UPerNetADE20KSegmenter:
    """Build UPerNet-101 and load encoder + decoder files.

    ``weights``: None (resolve both by file name), a folder holding ``encoder_epoch_50.pth`` and
    ``decoder_epoch_50.pth``, or a pair (encoder path, decoder path).
    """
    if generation not in GENERATIONS:
        raise ValueError(f"unknown UPerNet generation {generation!r}; choose one of "
                         f"{sorted(GENERATIONS)}")
    specs = weight_specs(generation)
    if weights is None:
        paths = (None, None)
    elif isinstance(weights, (list, tuple)):
        if len(weights) != 2:
            raise ValueError(f"UPerNet weights: give (encoder path, decoder path), got {weights!r}")
        paths = tuple(weights)
    else:
        folder = Path(weights).expanduser()
        paths = tuple(folder / f"{part}_epoch_50.pth" for part in ("encoder", "decoder"))
    resolved = [resolve(spec, path) for spec, path in zip(specs, paths)]
    model = UPerNetADE20KSegmenter(generation, img_sizes, img_max_size, padding_constant)
    load_strict(model.encoder, read_checkpoint(resolved[0]), resolved[0].path)
    load_strict(model.decoder, read_checkpoint(resolved[1]), resolved[1].path)
    model.resolved_weights = resolved
    return model.to(device=device, dtype=dtype).eval()


ENTRY = register_segmenter(SegmenterEntry(
    name=UPerNetADE20KSegmenter.name, label_space=UPerNetADE20KSegmenter.label_space,
    description="UPerNet-101 (CSAIL) on ADE20K, 150 classes; generation 'ade20k' (RGB ImageNet "
                "mean/std) or 'baseline' (2018, BGR); imgSizes multi-scale (default) or one size",
    build=build_upernet_101_ade20k,
    weights=weight_specs("ade20k"),  # the default generation
    identity={"architecture": "CSAIL resnet101 (deep stem) + upernet(fpn_dim 512), 150 classes",
              "weights": {g: [s.identity() for s in weight_specs(g)] for g in GENERATIONS},
              "preprocessing": {g: {k: v for k, v in p.items() if k != "folder"}
                                for g, p in GENERATIONS.items()},
              "output": "mean of softmax(bilinear logits at out_size) over img_sizes"},
    options={"generation": "ade20k", "img_sizes": list(DEFAULT_IMG_SIZES),
             "img_max_size": DEFAULT_IMG_MAX_SIZE, "padding_constant": DEFAULT_PADDING_CONSTANT}))
