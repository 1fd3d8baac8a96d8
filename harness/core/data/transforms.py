"""The official SPADE / pix2pixHD geometric transforms, as a plan computed once per sample.

A :class:`Plan` (resize, crop box, flip) is computed from the source size, the options and,
at training, from a random generator seeded by ``(seed, epoch, index)`` only; the same plan is
then applied to the image (BICUBIC), the label map and the instance map (NEAREST), in the
official order resize -> crop -> flip. Because the plan never touches a global RNG, DDP ranks,
DataLoader workers and resumed runs see identical augmentation.

Modes (``DatasetOptions.preprocess``):

=====================  =================================================  =========================
mode                   training                                           evaluation
=====================  =================================================  =========================
fixed                  resize to crop_size x round(crop_size/aspect)      same
                       (W x H), no crop
resize_and_crop        resize to load_size^2, random crop_size^2 crop     resize to crop_size^2
scale_width            width -> load_size, height keeps the aspect        same
scale_width_and_crop   as scale_width, random crop_size^2 crop            width -> crop_size
none                   keep the size                                      same
=====================  =================================================  =========================

``scale_width*`` and ``none`` round the resized height and width to a multiple of
``size_multiple`` (pix2pixHD's ``__make_power_2``; 1 = no rounding, the official default for
``scale_width``). Horizontal flips (p = 0.5) happen at training only and only with ``flip``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from harness.core.data.errors import DatasetError

if TYPE_CHECKING:  # annotations only: base imports this module
    from harness.core.data.base import DatasetOptions

FILTERS = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST,
           "lanczos": Image.LANCZOS, "box": Image.BOX, "hamming": Image.HAMMING}


@dataclass(frozen=True)
class Plan:
    """What happens to one sample: resize to ``resize_hw`` (None = keep), crop the box
    ``(left, top, right, bottom)`` (None = no crop), then flip left-right."""
    resize_hw: tuple[int, int] | None
    crop_box: tuple[int, int, int, int] | None
    flip: bool

    @property
    def output_hw(self) -> tuple[int, int] | None:
        if self.crop_box is not None:
            left, top, right, bottom = self.crop_box
            return bottom - top, right - left
        return self.resize_hw


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one sample's augmentation: a pure function of (seed, epoch, index)."""
    mask = (1 << 64) - 1  # SeedSequence needs non-negative entropy; keep negative seeds distinct
    return np.random.default_rng([seed & mask, epoch & mask, index & mask])


def round_to_multiple(value: float, multiple: int) -> int:
    """pix2pixHD's rounding: nearest multiple (Python round), never below one multiple."""
    if multiple <= 1:
        return max(1, int(value))
    return max(multiple, int(round(value / multiple) * multiple))


def fixed_size_hw(options: DatasetOptions) -> tuple[int, int]:
    return int(round(options.crop_size / options.aspect_ratio)), options.crop_size


def _scaled_width_hw(src_hw: tuple[int, int], width: int, multiple: int) -> tuple[int, int]:
    h, w = src_hw
    if w == width:
        new_h, new_w = h, w
    else:
        new_h, new_w = int(width * h / w), width
    return round_to_multiple(new_h, multiple), round_to_multiple(new_w, multiple)


def resized_hw(options: DatasetOptions, src_hw: tuple[int, int], *, train: bool) -> tuple[int, int]:
    """The size after the resize step (before any crop)."""
    mode = options.preprocess
    if mode == "fixed":
        return fixed_size_hw(options)
    if mode == "resize_and_crop":
        size = options.load_size if train else options.crop_size
        return size, size
    if mode == "scale_width":
        return _scaled_width_hw(src_hw, options.load_size, options.size_multiple)
    if mode == "scale_width_and_crop":
        width = options.load_size if train else options.crop_size
        return _scaled_width_hw(src_hw, width, options.size_multiple)
    if mode == "none":
        return (round_to_multiple(src_hw[0], options.size_multiple),
                round_to_multiple(src_hw[1], options.size_multiple))
    raise ValueError(f"unknown preprocess mode {mode!r}")


def output_hw(options: DatasetOptions, src_hw: tuple[int, int], *, train: bool) -> tuple[int, int]:
    """The size a sample of source size ``src_hw`` has after the transform."""
    if train and options.preprocess in ("resize_and_crop", "scale_width_and_crop"):
        return options.crop_size, options.crop_size
    return resized_hw(options, src_hw, train=train)


def make_plan(options: DatasetOptions, src_hw: tuple[int, int], *, train: bool, seed: int = 0,
              epoch: int = 0, index: int = 0) -> Plan:
    """The transform of one sample; random parts only when ``train`` (a pure function)."""
    new_hw = resized_hw(options, src_hw, train=train)
    resize = None if tuple(new_hw) == tuple(src_hw) else new_hw
    if not train:
        return Plan(resize, None, False)
    rng = sample_rng(seed, epoch, index)
    crop = None
    if options.preprocess in ("resize_and_crop", "scale_width_and_crop"):
        size = options.crop_size
        h, w = new_hw
        if h < size or w < size:
            raise DatasetError(
                f"cannot crop {size}x{size} from an image resized to {w}x{h} (W x H) with "
                f"preprocess={options.preprocess!r}, load_size={options.load_size}: raise "
                "load_size or lower crop_size")
        # Drawn in a fixed order (x, y, flip) so each value depends only on (seed, epoch, index).
        x = int(rng.integers(0, w - size + 1))
        y = int(rng.integers(0, h - size + 1))
        crop = (x, y, x + size, y + size)
    flip = bool(rng.random() < 0.5) and options.flip
    return Plan(resize, crop, flip)


def apply(img: Image.Image, plan: Plan, resample: int) -> Image.Image:
    """Resize -> crop -> flip one PIL image (the official order)."""
    if plan.resize_hw is not None:
        h, w = plan.resize_hw
        img = img.resize((w, h), resample)
    if plan.crop_box is not None:
        img = img.crop(plan.crop_box)
    if plan.flip:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return img


def to_image_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL -> float32 [3, H, W] in [-1, 1] (ToTensor then Normalize(0.5, 0.5))."""
    array = np.asarray(img, dtype=np.uint8)
    t = torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)
    return t.sub_(0.5).div_(0.5)


def to_uint8_tensor(img: Image.Image) -> torch.Tensor:
    array = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()
