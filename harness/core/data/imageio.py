"""Reading and writing the files of a dataset, with one clear error per bad file.

Every reader turns PIL's many exception types (truncated stream, unknown format, decompression
bomb, ...) into a :class:`DatasetError` that names the file and what was expected. Label and
instance maps are read as their stored integer values: palette ('P') maps keep their indices,
16-bit maps ('I;16', Cityscapes instanceIds) keep their full range.

Photos (dataset images, generated images, the FID reference set) all go through
:func:`open_rgb`, the one photo reader. 8-bit modes convert to RGB as PIL does. 16-bit
photos -- grayscale ('I;16') and 48/64-bit RGB(A) PNGs -- are scaled to 8 bits as
``round(v * 255 / 65535)`` per channel (= round(v / 257); never a tie, so exact in integers),
alpha dropped. PIL itself maps 'I;16' to white (it clips at 255) and keeps only the high byte of
16-bit RGB, so neither is left to PIL. Any other mode (32-bit 'I', float 'F', 16-bit
grayscale+alpha, 16-bit TIFF RGB, ...) is one :class:`DatasetError` naming the file and mode.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from harness.core.data.errors import DatasetError
from harness.core.io import atomic_write

# Single-channel modes whose pixel values are the stored ids.
_ID_MODES = {"L", "P", "I", "I;16", "I;16B", "I;16L", "1"}
_READ_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


def _open(path: Path, what: str) -> Image.Image:
    """Open and fully decode ``path`` (decoding here, not lazily, surfaces truncated files)."""
    return _decode(path, what)[0]


def _decode(path: Path, what: str, *, raw_mode: str | None = None) -> tuple[Image.Image, str]:
    """The decoded image and its file raw mode (e.g. 'RGB;16B'). ``raw_mode``: decode the
    file's tiles with this PIL raw mode instead of their own."""
    try:
        with warnings.catch_warnings():
            # PIL warns (then errors) on huge images; turn the warning into our own error too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            raw = _raw_mode(img)  # the tiles are gone after load()
            if raw_mode is not None:
                img.tile = [tuple(t[:3]) + (raw_mode,) for t in img.tile]
            img.load()
        return img, raw
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


def _raw_mode(img: Image.Image) -> str:
    """The raw (file) mode of an opened, not yet loaded image, e.g. 'RGB;16B'; '' if unknown."""
    tiles = getattr(img, "tile", None) or []
    if not tiles:
        return ""
    args = tiles[0][3]
    if isinstance(args, tuple):
        args = args[0] if args else ""
    return args if isinstance(args, str) else ""


# Photo modes PIL converts to RGB exactly (8 bits per channel).
PHOTO_MODES_8BIT = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr")
# 16-bit grayscale: PIL holds the full value.
PHOTO_MODES_GRAY16 = ("I;16", "I;16L", "I;16B", "I;16N")
# 16-bit-per-channel PNGs: PIL keeps the high byte; decoding the same stream again with the
# little-endian raw mode yields the low bytes (PIL's own inflate, filters and interlacing).
_PNG16_LOW_BYTES = {"RGB;16B": "RGB;16L", "RGBA;16B": "RGBA;16L"}
SUPPORTED_PHOTOS = ("8-bit " + "/".join(PHOTO_MODES_8BIT) + ", 16-bit grayscale ('I;16'), "
                    "16-bit-per-channel RGB / RGBA PNG")


def scale_16_to_8(values: np.ndarray) -> np.ndarray:
    """uint16 -> uint8 as round(v * 255 / 65535), exactly (integer arithmetic, no ties)."""
    v = np.asarray(values).astype(np.uint32)
    return ((v * 255 + 32767) // 65535).astype(np.uint8)


def _unsupported(path: Path, img: Image.Image, raw: str) -> DatasetError:
    depth = f" (stored as {raw!r})" if raw and raw != img.mode else ""
    return DatasetError(f"image {path} has mode {img.mode!r}{depth}, which is not supported for "
                        f"photos; supported: {SUPPORTED_PHOTOS}. Convert it, e.g. to an 8-bit "
                        "RGB PNG")


def open_rgb(path: Path) -> Image.Image:
    """A decoded 8-bit RGB PIL image: the one reader of every photo (see the module docstring)."""
    path = Path(path)
    img, raw = _decode(path, "image")
    if img.mode in PHOTO_MODES_GRAY16:
        gray = scale_16_to_8(np.asarray(img))
        return Image.fromarray(np.repeat(gray[:, :, None], 3, axis=2), mode="RGB")
    if ";16" in raw:  # 16 bits per channel behind an 8-bit PIL mode
        low_mode = _PNG16_LOW_BYTES.get(raw)
        if img.format != "PNG" or low_mode is None:
            raise _unsupported(path, img, raw)
        high = np.asarray(img, dtype=np.uint16)
        low = np.asarray(_decode(path, "image", raw_mode=low_mode)[0], dtype=np.uint16)
        rgb = scale_16_to_8((high << 8) | low)[:, :, :3]
        return Image.fromarray(np.ascontiguousarray(rgb), mode="RGB")
    if img.mode not in PHOTO_MODES_8BIT:
        raise _unsupported(path, img, raw)
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
