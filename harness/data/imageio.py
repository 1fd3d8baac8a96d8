"""Reading and writing the files of a dataset, with one clear error per bad file.

Every reader turns PIL's many exception types (truncated stream, unknown format, decompression
bomb, ...) into a :class:`DatasetError` that names the file and what was expected. Label and
instance maps are read as their stored integer values: palette ('P') maps keep their indices,
16-bit maps ('I;16', Cityscapes instanceIds) keep their full range.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from harness.data.base import DatasetError
from harness.io import atomic_write

# Single-channel modes whose pixel values are the stored ids.
_ID_MODES = {"L", "P", "I", "I;16", "I;16B", "I;16L", "1"}
_READ_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


def _open(path: Path, what: str) -> Image.Image:
    """Open and fully decode ``path`` (decoding here, not lazily, surfaces truncated files)."""
    try:
        with warnings.catch_warnings():
            # PIL warns (then errors) on huge images; turn the warning into our own error too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            img.load()
        return img
    except FileNotFoundError:
        raise DatasetError(f"{what} {path} does not exist") from None
    except (Image.DecompressionBombWarning, *_READ_ERRORS) as exc:
        raise DatasetError(f"cannot read {what} {path}: {type(exc).__name__}: {exc} "
                           f"(truncated or corrupt file? expected a readable PNG or JPEG)") from None


def image_size_hw(path: Path, what: str = "image") -> tuple[int, int]:
    """(H, W) from the file header only (no decoding)."""
    try:
        with Image.open(path) as img:
            w, h = img.size
    except FileNotFoundError:
        raise DatasetError(f"{what} {path} does not exist") from None
    except _READ_ERRORS as exc:
        raise DatasetError(f"cannot read {what} {path}: {type(exc).__name__}: {exc} "
                           f"(truncated or corrupt file? expected a readable PNG or JPEG)") from None
    return h, w


def open_rgb(path: Path) -> Image.Image:
    """A decoded RGB PIL image (grayscale / CMYK / palette photos are converted)."""
    img = _open(path, "image")
    return img if img.mode == "RGB" else img.convert("RGB")


def open_ids(path: Path, what: str = "label map") -> Image.Image:
    """A decoded single-channel id map; multi-channel files are rejected."""
    img = _open(path, what)
    if img.mode not in _ID_MODES:
        raise DatasetError(f"{what} {path} has mode {img.mode!r} ({len(img.getbands())} "
                           "channels); expected a single-channel PNG whose pixel values are "
                           "class ids (8-bit 'L'/'P' or 16-bit 'I;16'), not a colour "
                           "visualisation")
    return img


def ids_to_array(img: Image.Image) -> np.ndarray:
    """Single-channel PIL image -> int64 [H, W] with the stored values."""
    return np.asarray(img).astype(np.int64, copy=True)


def array_to_ids(array: np.ndarray) -> Image.Image:
    """int [H, W] -> PIL image that PIL can resize with NEAREST ('L' if it fits, else 'I')."""
    if array.min(initial=0) >= 0 and array.max(initial=0) <= 255:
        return Image.fromarray(array.astype(np.uint8))
    return Image.fromarray(array.astype(np.int32))


def encode_png_ids(array: np.ndarray) -> bytes:
    """Lossless PNG of an id map: 8-bit when every value fits, else 16-bit ('I;16')."""
    array = np.asarray(array)
    if array.min(initial=0) < 0 or array.max(initial=0) > 65535:
        raise ValueError(f"id map values must lie in 0..65535 to be stored as PNG, got "
                         f"{array.min()}..{array.max()}")
    if array.max(initial=0) <= 255:
        img = Image.fromarray(array.astype(np.uint8))
    else:
        img = Image.fromarray(array.astype(np.uint16))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def encode_png_rgb(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def write_bytes(path: Path, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))
