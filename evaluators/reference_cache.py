"""Cached statistics of the real images, keyed so that a stale entry can never be read.

Layout: ``<cache_root>/reference/<protocol hash>/<dataset fingerprint>/<name>.pt``. The protocol
hash covers every setting (split, resolution, N, filters, segmenter and weight identities); the
dataset fingerprint is the split's CONTENT fingerprint (sha256 of every file it reads, by
relative path: :mod:`harness.core.data.fingerprint`), so a real image changed in place - even at
the same byte size and mtime - never reuses old statistics; each file name adds the sha256 of
the weights actually used (a stand-in file under the same protocol gets its own entry). Every
entry also stores the keys it was computed from, checked on reading.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import torch

from harness.core.io import atomic_torch_save
from harness.core.paths import cache_root


def data_fingerprint(dataset) -> str:
    """The content fingerprint of the evaluated split (the reference images are read anyway)."""
    from harness.core.data.fingerprint import split_fingerprint
    return split_fingerprint(dataset, "content").digest


def reference_dir(protocol, dataset, fingerprint: str | None = None) -> Path:
    """``fingerprint``: the split's content fingerprint when already computed."""
    return (cache_root() / "reference" / protocol.hash()
            / (fingerprint or data_fingerprint(dataset)))


def weights_tag(shas: Sequence[str]) -> str:
    """16 hex identifying the weight files (or state) a network ran with."""
    return hashlib.sha256("|".join(shas).encode()).hexdigest()[:16]


def module_tag(module: torch.nn.Module) -> str:
    """16 hex of a module's state (for networks without a resolved weight file)."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def load(path: Path, keys: Sequence[str]) -> dict | None:
    """The cached entry at ``path`` if it exists and was computed from ``keys``."""
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a corrupt or foreign file is recomputed, not trusted
        return None
    if not isinstance(data, dict) or list(data.get("keys", [])) != list(keys):
        return None
    return data


def save(path: Path, keys: Sequence[str], **payload) -> None:
    atomic_torch_save(path, {"keys": list(keys), **payload})
