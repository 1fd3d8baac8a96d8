"""mIoU and pixel accuracy from ONE confusion matrix accumulated over the whole split.

Rows are ground-truth classes, columns predictions, plus one last row counting what was predicted
on pixels whose ground truth is the ignore index (void): they never enter the IoU, and enter the
pixel accuracy only under ``accuracy_ignored_pixels: count-as-wrong`` (the segmenter never
predicts void, so they are errors; this is how SPADE / CC-FPSE's ~82 % Cityscapes accuracy arises,
against ~93.5 % when void pixels are excluded). Per-class IoU = TP / (TP + FP + FN). How classes without pixels count in the
mean is the protocol's ``absent_classes``:

- ``exclude-absent``: mean over classes with union > 0 (fyu/drn and mmseg: nanmean);
- ``present-in-gt``: mean over classes that occur in the ground truth (kazuto1011): predictions
  of a class that never occurs are not penalised through that class's IoU;
- ``zero``: mean over all classes; a class with union 0 counts as 0 (CSAIL's I / (U + 1e-10)).

Pixel accuracy = correct pixels / non-ignored ground-truth pixels (or / all pixels with
``count-as-wrong``). Values are in percent.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

POLICIES = ("exclude-absent", "present-in-gt", "zero")
IGNORED_PIXELS = ("exclude", "count-as-wrong")


def confusion_matrix(pred: torch.Tensor, gt: torch.Tensor, num_classes: int,
                     ignore_index: int) -> torch.Tensor:
    """int64 [C + 1, C] counts of one batch: row = ground truth (row C: ignored pixels),
    column = prediction."""
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} "
                         "differ in shape")
    c = num_classes
    pred = pred.reshape(-1).long().cpu()
    gt = gt.reshape(-1).long().cpu()
    if pred.numel() and (pred.min() < 0 or pred.max() >= c):
        bad = sorted(set(pred[(pred < 0) | (pred >= c)].unique().tolist()))[:10]
        raise ValueError(f"predicted ids {bad} are outside 0..{c - 1}")
    ignored = gt == ignore_index
    bad_gt = ~ignored & ((gt < 0) | (gt >= c))
    if bool(bad_gt.any()):
        bad = sorted(set(gt[bad_gt].unique().tolist()))[:10]
        raise ValueError(f"ground-truth ids {bad} are outside 0..{c - 1} and are not the ignore "
                         f"index {ignore_index}; is the label mapping right?")
    row = torch.where(ignored, torch.full_like(gt, c), gt)
    counts = torch.bincount(row * c + pred, minlength=(c + 1) * c)
    return counts.reshape(c + 1, c)


def _scored(confusion: torch.Tensor) -> np.ndarray:
    """The C x C part (without the ignored-pixel row) as float64."""
    cm = confusion.double().numpy()
    if cm.shape[0] != cm.shape[1] + 1:
        raise ValueError(f"expected a [C + 1, C] confusion matrix, got {tuple(cm.shape)}")
    return cm[:-1]


def per_class_iou(confusion: torch.Tensor) -> np.ndarray:
    """IoU per class as a fraction; NaN where the union is empty."""
    cm = _scored(confusion)
    tp = np.diag(cm)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def mean_iou(confusion: torch.Tensor, policy: str) -> float:
    """Mean IoU (fraction) under an absent-class policy; NaN when no class counts."""
    if policy not in POLICIES:
        raise ValueError(f"unknown absent-class policy {policy!r}; use one of {POLICIES}")
    iou = per_class_iou(confusion)
    cm = _scored(confusion)
    if policy == "exclude-absent":
        counted = ~np.isnan(iou)
    elif policy == "present-in-gt":
        counted = cm.sum(axis=1) > 0
    else:
        counted = np.ones_like(iou, dtype=bool)
    if not counted.any():
        return float("nan")
    return float(np.nan_to_num(iou[counted], nan=0.0).mean())


def pixel_accuracy(confusion: torch.Tensor, ignored_pixels: str = "exclude") -> float:
    """Correct / non-ignored pixels, or / all pixels with ``count-as-wrong``."""
    if ignored_pixels not in IGNORED_PIXELS:
        raise ValueError(f"unknown ignored-pixel rule {ignored_pixels!r}; use one of "
                         f"{IGNORED_PIXELS}")
    cm = _scored(confusion)
    total = cm.sum()
    if ignored_pixels == "count-as-wrong":
        total += float(confusion[-1].sum())
    return float(np.trace(cm) / total) if total > 0 else float("nan")


def scores(confusion: torch.Tensor, policy: str, class_names: Sequence[str],
           ignored_pixels: str = "exclude") -> dict:
    """``{"miou", "accuracy", "accuracy_excluding_ignored", "accuracy_including_ignored",
    "ignored_fraction", "per_class", "pixel_share"}`` in percent; per-class IoU None for empty
    unions."""
    iou = per_class_iou(confusion)
    if len(class_names) != len(iou):
        raise ValueError(f"{len(class_names)} class names for a {len(iou)}-class confusion matrix")
    per_class = {name: (None if np.isnan(v) else float(100.0 * v))
                 for name, v in zip(class_names, iou)}
    ignored = float(confusion[-1].sum())
    everything = float(confusion.sum())
    # Ground-truth pixels of each class (confusion row sums) as a share of the scored pixels,
    # so per-class tables show which classes are rare.
    gt = _scored(confusion).sum(axis=1)
    pixel_share = {name: (float(100.0 * v / gt.sum()) if gt.sum() > 0 else None)
                   for name, v in zip(class_names, gt)}
    return {"pixel_share": pixel_share, "miou": 100.0 * mean_iou(confusion, policy),
            "accuracy": 100.0 * pixel_accuracy(confusion, ignored_pixels),
            "accuracy_excluding_ignored": 100.0 * pixel_accuracy(confusion, "exclude"),
            "accuracy_including_ignored": 100.0 * pixel_accuracy(confusion, "count-as-wrong"),
            "ignored_fraction": 100.0 * ignored / everything if everything else float("nan"),
            "per_class": per_class}
