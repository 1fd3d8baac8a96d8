"""Shared plumbing of the segmenters: input checks, checkpoint reading, strict loading, resizing.

Resizing helpers reproduce the libraries the original evaluation scripts used: PIL for uint8
images (exact, on CPU), and ``F.interpolate(..., antialias=True)`` for float score maps, which
is the PIL triangle / bicubic filter in torch (the tests check it against PIL).
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from harness.core.weights import ResolvedWeights

_PIL_FILTERS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}


class SegmenterInputError(ValueError):
    """Images given to ``predict`` are not uint8 [N,3,H,W]."""


class CheckpointMismatch(ValueError):
    """A checkpoint's keys or shapes do not match the architecture it is loaded into."""


def check_images(images: torch.Tensor, out_size) -> tuple[int, int]:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4 \
            or images.shape[1] != 3:
        desc = (f"{tuple(images.shape)} {images.dtype}" if isinstance(images, torch.Tensor)
                else type(images).__name__)
        raise SegmenterInputError(f"segmenter input must be a uint8 RGB tensor [N,3,H,W], got {desc}")
    try:
        h, w = (int(v) for v in out_size)
    except (TypeError, ValueError):
        raise SegmenterInputError(f"out_size must be (H, W), got {out_size!r}") from None
    if h < 1 or w < 1:
        raise SegmenterInputError(f"out_size must be positive, got {out_size!r}")
    return h, w


def module_device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def module_dtype(module: nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


# --- checkpoints ---------------------------------------------------------------------------------
def torch_load_trusted(path: Path, what: str) -> object:
    """``torch.load`` on CPU, weights-only first.

    Pickles written by old PyTorch versions or by training frameworks (runner checkpoints with
    arbitrary objects in their metadata) can be refused by the weights-only loader. The file was
    named by the user or found in their weights folder, so it is then read as a full pickle.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass
    except Exception as exc:
        raise CheckpointMismatch(f"{what} {path} could not be read: {type(exc).__name__}: "
                                 f"{exc}") from exc
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointMismatch(f"{what} {path} could not be read: {type(exc).__name__}: "
                                 f"{exc}") from exc


def read_checkpoint(resolved: ResolvedWeights) -> Mapping[str, torch.Tensor]:
    """A bare state_dict from a resolved weight file."""
    state = torch_load_trusted(resolved.path, f"weights file ({resolved.spec.key})")
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise CheckpointMismatch(f"weights file {resolved.path} ({resolved.spec.key}) is not a "
                                 f"state_dict (a mapping of parameter names to tensors), got "
                                 f"{type(state).__name__}")
    return state


def _preview(keys: list[str], n: int = 8) -> str:
    shown = ", ".join(keys[:n])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], where: str | Path) -> None:
    """``load_state_dict(strict=True)`` with one readable error naming the file and the keys."""
    own = module.state_dict()
    bad_shapes = [f"{k} {tuple(v.shape)} (expected {tuple(own[k].shape)})"
                  for k, v in state.items()
                  if k in own and isinstance(v, torch.Tensor) and v.shape != own[k].shape]
    if bad_shapes:
        raise CheckpointMismatch(f"checkpoint {where} does not fit {type(module).__name__}: "
                                 f"wrong shapes for {_preview(bad_shapes, 4)}")
    result = module.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        parts = []
        if result.missing_keys:
            parts.append(f"missing keys {_preview(list(result.missing_keys))}")
        if result.unexpected_keys:
            parts.append(f"unexpected keys {_preview(list(result.unexpected_keys))}")
        raise CheckpointMismatch(f"checkpoint {where} does not fit {type(module).__name__}: "
                                 + "; ".join(parts) + ". Is it the right file for this segmenter?")


# --- resizing ------------------------------------------------------------------------------------
def pil_resize_uint8(images: torch.Tensor, size: tuple[int, int], resample: str) -> torch.Tensor:
    """Resize uint8 [N,3,H,W] with PIL (as the original data loaders did); returns uint8 on CPU."""
    h, w = size
    if tuple(images.shape[-2:]) == (h, w):
        return images.cpu()
    out = []
    for img in images.cpu().permute(0, 2, 3, 1).numpy():
        pil = Image.fromarray(np.ascontiguousarray(img), mode="RGB")
        out.append(np.asarray(pil.resize((w, h), _PIL_FILTERS[resample])))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def pil_like_resize_scores(scores: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """PIL BILINEAR resize of float maps [N,C,H,W] per channel (antialiased when shrinking)."""
    if tuple(scores.shape[-2:]) == tuple(size):
        return scores
    return F.interpolate(scores, size=size, mode="bilinear", align_corners=False, antialias=True)


def bilinear(scores: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Plain ``F.interpolate`` bilinear, align_corners=False (what the PyTorch originals call)."""
    if tuple(scores.shape[-2:]) == tuple(size):
        return scores
    return F.interpolate(scores, size=size, mode="bilinear", align_corners=False)
