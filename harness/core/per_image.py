"""The per-image data behind an evaluation's intervals, stored beside metrics.json.

``<dir>/per_image/<protocol id>__<inference>.npz`` (numpy, compressed) holds what every bootstrap
interval and every paired comparison (``python -m harness compare``) is computed from, so both can
be redone later without the images or the networks:

- ``keys``: the evaluated images' keys, in order (the pairing of two runs checks them);
- ``gen_features`` / ``real_features``: Inception pool3 rows (FID / KID);
- ``gen_confusion_*`` / ``real_confusion_*``: per-image confusion matrices, sparse
  (image, flat cell, count, shape) (mIoU / accuracy, and the real-image upper bound);
- ``lpips_per_map`` / ``lpips_keys``: LPIPS diversity per label map.

The record's ``per_image`` entry names the file (relative to metrics.json) and its sha256.
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from harness.core.errors import UserError
from harness.core.io import atomic_write_bytes

PER_IMAGE_DIR = "per_image"


class PerImageError(UserError):
    """The per-image file of a record is missing, changed or unreadable."""


def _file_name(key: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-._" else "_" for ch in key.replace("/", "__"))


def save_per_image(folder: Path, key: str, arrays: Mapping[str, Any]) -> dict:
    """Write the arrays of evaluation ``key``; returns the record's ``per_image`` entry."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    data = buf.getvalue()
    rel = f"{PER_IMAGE_DIR}/{_file_name(key)}.npz"
    atomic_write_bytes(Path(folder) / rel, data)
    return {"file": rel, "sha256": hashlib.sha256(data).hexdigest(),
            "arrays": sorted(arrays)}


def load_per_image(metrics_file: Path, record: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The arrays a record's ``per_image`` entry names (checked against its sha256)."""
    entry = record.get("per_image")
    where = f"{metrics_file}: evaluation {record.get('protocol', {}).get('id')}/" \
            f"{record.get('inference') or 'none'}"
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
        raise PerImageError(f"{where} has no per-image data (evaluated before intervals were "
                            "recorded); re-evaluate it with `python -m harness evaluate --run "
                            "RUN --force`")
    path = Path(metrics_file).parent / entry["file"]
    if not path.is_file():
        raise PerImageError(f"{where}: per-image file {path} is missing; re-evaluate with "
                            "--force")
    data = path.read_bytes()
    if entry.get("sha256") and hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise PerImageError(f"{where}: per-image file {path} changed since the record was "
                            "written (sha256 differs); re-evaluate with --force")
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}
