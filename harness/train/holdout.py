"""The held-out slice of the training split: the images checkpoint selection may look at.

Selecting a checkpoint on the evaluation split would report a number tuned on the test set
(the complaint of OASIS issue #4). The harness instead holds ``train.holdout`` images of the
*training* split out of training and lets selection read only those. Which images: the first
``holdout`` of a permutation of the split's sorted keys drawn from ``train.holdout_seed`` with
torch's CPU generator (the same on every machine), so every training seed of a variant holds out
the same images and trains on the same rest.

    train_part, holdout_part = split_holdout(dataset, size, seed)
    write_holdout_record(run_dir, train_part, holdout_part, size, seed)  # <run>/data/holdout.json
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch

HOLDOUT_FILE = "holdout.json"


class HoldoutError(ValueError):
    """A held-out slice that cannot be made (too large for the split)."""


def holdout_keys(keys: list[str], size: int, seed: int) -> list[str]:
    """The ``size`` keys held out of ``keys`` (sorted first, so the listing order does not matter),
    returned sorted."""
    keys = sorted(keys)
    if size <= 0:
        return []
    if size >= len(keys):
        raise HoldoutError(f"train.holdout={size}: the training split has only {len(keys)} "
                           "images; hold out fewer so that some are left to train on")
    perm = torch.randperm(len(keys), generator=torch.Generator().manual_seed(int(seed)))
    return sorted(keys[int(i)] for i in perm[:size])


def restricted(dataset: Any, keep: set[str]) -> Any:
    """A shallow copy of ``dataset`` listing only the records whose key is in ``keep`` (datasets
    list their records once, in ``records()``; the copy's list is that list filtered)."""
    records = [r for r in dataset.records() if r.key in keep]
    if dataset.records() and hasattr(type(dataset), "native_size"):
        # Size-keeping modes take the size from the split's first file: fix it on the whole
        # split before copying, so both parts have the full split's DatasetInfo.
        dataset.native_size  # noqa: B018 (a cached property, computed for the copy to inherit)
    part = copy.copy(dataset)
    part._records = records
    return part


def split_holdout(dataset: Any, size: int, seed: int) -> tuple[Any, Any | None]:
    """(the training part, the held-out part or None when ``size`` is 0)."""
    if size <= 0:
        return dataset, None
    keys = [r.key for r in dataset.records()]
    held = set(holdout_keys(keys, size, seed))
    return restricted(dataset, set(keys) - held), restricted(dataset, held)


def holdout_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / "data" / HOLDOUT_FILE


def write_holdout_record(run_dir: str | Path, train_part: Any, holdout_part: Any | None,
                         size: int, seed: int) -> Path:
    """``<run>/data/holdout.json``: which training keys were trained on and which were held out
    (the evidence that selection never read an image training or evaluation used)."""
    from harness.core.io import atomic_write_text

    data = {"size": size, "seed": seed, "split": getattr(train_part, "split", "train"),
            "holdout_keys": [r.key for r in holdout_part.records()] if holdout_part else [],
            "train_keys": [r.key for r in train_part.records()]}
    path = holdout_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")
    return path


def read_holdout_record(run_dir: str | Path) -> dict | None:
    path = holdout_path(run_dir)
    return json.loads(path.read_text()) if path.is_file() else None
