"""Helpers of the segmenter tests: the original key lists and the key-driven deterministic fill.

The fill rule and the deterministic input are those of /work/shared/reference/segmenters.md §5:
the original modules were filled by this rule (keys in sorted order) and run on this input, which
gives the headline sums the tests compare against.
"""
from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

# Copied verbatim from the reference fact sheet (segmenter-keys/): the original modules' keys.
KEYS_DIR = Path(__file__).resolve().parent / "data_segmenters"
KEY_FILES = {
    "drn": "keys_drn_d_105_cityscapes.txt",
    "upernet-encoder": "keys_upernet101_ade20k_encoder.txt",
    "upernet-decoder": "keys_upernet101_ade20k_decoder.txt",
    "deeplab": "keys_deeplabv2_resnet101_msc_cocostuff164k.txt",
}


@dataclass(frozen=True)
class KeySpec:
    key: str
    shape: tuple[int, ...]
    dtype: str
    kind: str  # 'param' | 'buffer'


def key_list(name: str) -> list[KeySpec]:
    """The original state_dict keys (sorted) of one checkpoint file, as listed in the reference."""
    path = KEYS_DIR / KEY_FILES[name]
    out = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, shape, dtype, kind = line.split("\t")
        dims = shape.strip("[]").replace(" ", "")
        out.append(KeySpec(key, tuple(int(d) for d in dims.split(",")) if dims else (), dtype, kind))
    return out


def keys_available() -> bool:
    return all((KEYS_DIR / f).is_file() for f in KEY_FILES.values())


def frac(x: np.ndarray) -> np.ndarray:
    return x - np.floor(x)


def u(i: int, n: int) -> np.ndarray:
    """u(i, j) for j = 0..n-1 (float64)."""
    j = np.arange(n, dtype=np.float64)
    return frac(np.sin(12.9898 * j + 78.233 * (i + 1)) * 43758.5453)


def fill_value(i: int, spec: KeySpec) -> torch.Tensor:
    """The deterministic value of the i-th (sorted) key; float64 (int64 for num_batches_tracked)."""
    leaf = spec.key.rsplit(".", 1)[-1]
    n = math.prod(spec.shape)
    if leaf == "num_batches_tracked":
        return torch.zeros(spec.shape, dtype=torch.int64)
    if leaf == "_running_iter":
        return torch.ones(spec.shape, dtype=torch.float64)
    uu = u(i, n)
    s = (uu - 0.5) * math.sqrt(12.0)
    if leaf in ("running_var", "_tmp_running_var"):
        v = 1 + 0.25 * uu
    elif leaf in ("running_mean", "_tmp_running_mean"):
        v = 0.1 * s
    elif len(spec.shape) == 1 and leaf == "weight":
        v = 1 + 0.1 * s
    elif len(spec.shape) == 1:
        v = 0.05 * s
    elif len(spec.shape) == 4:
        _, cin, kh, kw = spec.shape
        v = s * math.sqrt(1.0 / (cin * kh * kw))
    else:
        raise ValueError(f"no fill rule for {spec.key} {spec.shape}")
    return torch.from_numpy(v.reshape(spec.shape))


def filled_state_dict(name: str, *, skip: tuple[str, ...] = ("up.weight",)) -> dict[str, torch.Tensor]:
    """Every key of the original list filled by the rule (``skip`` keys left out).

    Values are computed in float64 and then cast to the key's dtype (float32 / int64), as they
    were when the original float32 modules were filled; the reference sums come from those
    modules converted to float64 afterwards.
    """
    specs = key_list(name)
    return {spec.key: fill_value(i, spec).to(getattr(torch, spec.dtype))
            for i, spec in enumerate(specs) if spec.key not in skip}


def deterministic_input(shape: tuple[int, ...]) -> torch.Tensor:
    """x[0,c,h,w] = 0.8 sin(0.002 q) + 0.4 (u(1000, q) - 0.5), q the flat index; float64."""
    n = math.prod(shape)
    q = np.arange(n, dtype=np.float64)
    x = 0.8 * np.sin(0.002 * q) + 0.4 * (u(1000, n) - 0.5)
    return torch.from_numpy(x.reshape(shape))


def pil_bilinear_float(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[C,H,W] float maps resized channel by channel with PIL BILINEAR on float32 ('F') images."""
    h, w = size
    out = [np.asarray(Image.fromarray(m.float().numpy(), mode="F").resize((w, h), Image.BILINEAR))
           for m in maps.cpu()]
    return torch.from_numpy(np.stack(out)).to(maps.dtype)


def top_classes(pred: torch.Tensor, k: int = 5) -> list[tuple[int, int]]:
    counts = torch.bincount(pred.flatten())
    order = torch.argsort(counts, descending=True, stable=True)[:k]
    return [(int(c), int(counts[c])) for c in order]


def save_state_dict(path: Path, state: dict, *, keep_metadata: bool = True) -> Path:
    """torch.save a state_dict; without metadata it looks like a pre-0.4 PyTorch file."""
    if not keep_metadata:
        state = dict(state)  # a plain dict carries no _metadata (no BN version 2)
    torch.save(state, path)
    return path


@pytest.fixture
def weights_dir(isolated_weights):
    """conftest's isolated weights folder, emptied after the test (segmenter files are big)."""
    yield isolated_weights
    shutil.rmtree(isolated_weights, ignore_errors=True)
