"""Segment images under a protocol's resolution policy and accumulate one confusion matrix.

Policies (``protocol.segmentation.input_resolution``):

- ``generated`` (SPADE / CC-FPSE / OASIS practice): the segmenter sees the image at the
  generation size; ground truth = the raw label map NEAREST-resized to that size.
- ``original``: the image is upsampled to its label map's original size (PIL,
  ``upsample_filter``, as GAN-Compression does for COCO-Stuff) and scored against the label map
  at its original size.

Raw label ids become evaluation ids through the dataset's ``EvalLabelSpace`` LUT (e.g. Cityscapes
labelIds -> 19 trainIds, everything else the ignore index).
"""
from __future__ import annotations

from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from PIL import Image

from evaluators.segmentation_scores import confusion_matrix

_PIL = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "lanczos": Image.LANCZOS,
        "nearest": Image.NEAREST}


def to_eval_ids(raw: np.ndarray, label_space) -> torch.Tensor:
    """Raw label ids -> evaluation ids (values outside the LUT become the ignore index)."""
    raw = np.asarray(raw, dtype=np.int64)
    lut = np.asarray(label_space.lut, dtype=np.int64)
    out = np.full(raw.shape, label_space.ignore_index, dtype=np.int64)
    inside = (raw >= 0) & (raw < len(lut))
    out[inside] = lut[raw[inside]]
    return torch.from_numpy(out)


def ground_truth(dataset, record, protocol) -> torch.Tensor:
    """int64 [H, W] evaluation ids at the size the protocol scores at."""
    seg = protocol.segmentation
    if seg.input_resolution == "generated":
        raw = dataset.label_resized(record, protocol.resolution_hw)
    else:
        raw = dataset.read_label(record)
    return to_eval_ids(raw, dataset.label_space)


def segmenter_input(image: torch.Tensor, gt_hw: tuple[int, int], protocol) -> torch.Tensor:
    """The uint8 [3, H, W] image the segmenter sees for ground truth of size ``gt_hw``."""
    if protocol.segmentation.input_resolution == "generated":
        return image
    h, w = gt_hw
    if tuple(image.shape[-2:]) == (h, w):
        return image
    pil = Image.fromarray(image.permute(1, 2, 0).contiguous().numpy())
    pil = pil.resize((w, h), _PIL[protocol.segmentation.upsample_filter])
    return torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1).contiguous()


def _batches(items: Iterable[tuple[torch.Tensor, torch.Tensor]], batch_size: int
             ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Stack consecutive items of equal image and label size (COCO sizes vary per image)."""
    images, labels = [], []
    for image, gt in items:
        if images and (image.shape != images[0].shape or gt.shape != labels[0].shape
                       or len(images) == batch_size):
            yield torch.stack(images), torch.stack(labels)
            images, labels = [], []
        images.append(image)
        labels.append(gt)
    if images:
        yield torch.stack(images), torch.stack(labels)


@torch.no_grad()
def accumulate_confusion(segmenter, items: Iterable[tuple[torch.Tensor, torch.Tensor]], *,
                         num_classes: int, ignore_index: int, batch_size: int = 8,
                         progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """Sum of per-batch confusion matrices of ``segmenter.predict`` against the labels."""
    total = torch.zeros(num_classes + 1, num_classes, dtype=torch.int64)
    for images, labels in _batches(items, batch_size):
        pred = segmenter.predict(images, tuple(labels.shape[-2:])).cpu()
        total += confusion_matrix(pred, labels, num_classes, ignore_index)
        if progress is not None:
            progress(images.shape[0])
    return total


@torch.no_grad()
def per_image_confusions(segmenter, items: Iterable[tuple[torch.Tensor, torch.Tensor]], *,
                         num_classes: int, ignore_index: int, batch_size: int = 8,
                         progress: Callable[[int], None] | None = None
                         ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Like :func:`accumulate_confusion`, but one sparse matrix per image: a list of (flat cell
    indices, counts) of its non-zero [C + 1, C] cells (what the bootstrap re-sums)."""
    out = []
    for images, labels in _batches(items, batch_size):
        pred = segmenter.predict(images, tuple(labels.shape[-2:])).cpu()
        for p, g in zip(pred, labels):
            flat = confusion_matrix(p, g, num_classes, ignore_index).reshape(-1).numpy()
            nz = np.flatnonzero(flat)
            out.append((nz.astype(np.int64), flat[nz].astype(np.int64)))
        if progress is not None:
            progress(images.shape[0])
    return out
