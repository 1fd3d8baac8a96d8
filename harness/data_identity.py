"""A run's record of which data it used, and the check that the data is still the same.

The first time a run reads a split (train at train time, the protocol's split at generation),
the split's fingerprint listing (:mod:`harness.core.data.fingerprint`) is written to
``<run>/data/<split>.json`` and its summary to ``run.json`` (``data.<split>``). Every later
train (resume), generate or evaluate compares the split as it is now with that listing:

- unchanged: the recorded fingerprint is the identity of the inputs (samples' origins, records);
- changed: ONE error (:class:`DataChanged`, exit status 2) saying how many files changed, were
  added or were removed, and the way forward (``--fresh`` or ``--allow-data-change``);
- changed with ``allow_change``: the new listing is recorded, the change is appended to
  ``run.json`` (``data_changes``) and the new fingerprint becomes the identity, so samples made
  from the old data are regenerated and metrics recomputed.
"""
from __future__ import annotations

import datetime as _dt
import logging
from pathlib import Path
from typing import Any

from harness.core import dist as hdist
from harness.core.data.fingerprint import Fingerprint, common_base, compare, split_fingerprint
from harness.core.io import atomic_write_json, read_json
from harness.rundir import RunDir, RunError

LOG = logging.getLogger("harness")
DATA_DIR = "data"


class DataChanged(RunError):
    """The data of a split differs from what the run recorded (a user decision is needed)."""


def listing_file(rd: RunDir, split: str) -> Path:
    return rd.path / DATA_DIR / f"{split}.json"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _record(rd: RunDir, split: str, fp: Fingerprint, change: dict | None = None) -> None:
    atomic_write_json(listing_file(rd, split), fp.to_json())
    status = rd.status()
    data = dict(status.get("data") or {})
    data[split] = {**fp.summary(), "recorded": _now()}
    fields: dict[str, Any] = {"data": data}
    if change is not None:
        fields["data_changes"] = [*(status.get("data_changes") or []), change]
    rd.update_status(**fields)


def _check(rd: RunDir, dataset: Any, allow_change: bool, fresh_hint: str) -> dict:
    split = dataset.split
    current = split_fingerprint(dataset)
    path = listing_file(rd, split)
    if not path.is_file():
        _record(rd, split, current)
        return current.summary()
    try:
        old = Fingerprint.from_json(read_json(path))
    except ValueError as exc:
        raise RunError(f"{path}: {exc}; delete it to record the data again") from None
    change = compare(old, current, common_base(dataset))
    if not change:
        if current.mode == "content" and any(e.sha256 is None for e in old.files.values()):
            # Keep the recorded identity, add the content hashes for later content checks.
            atomic_write_json(path, {**Fingerprint(old.mode, old.digest, current.files)
                                     .to_json()})
        return old.summary()
    what = (f"the {split!r} split of dataset {dataset.name} is not the data this run recorded "
            f"in {path}: {change.describe()} of {len(old.files)} files (compared by "
            f"{'content' if old.mode == current.mode == 'content' else 'size and mtime'})")
    if not allow_change:
        raise DataChanged(f"{what}. Nothing was reused. Pass {fresh_hint} to start over on the "
                          "new data, or --allow-data-change to go on with the new data (recorded "
                          "in run.json; samples and metrics of this split are recomputed)")
    LOG.warning("%s; going on with the new data (--allow-data-change, recorded in %s)", what,
                rd.status_file)
    _record(rd, split, current, {"split": split, "at": _now(), **change.counts(),
                                 "old": old.digest, "new": current.digest,
                                 "mode": current.mode})
    return current.summary()


def check_split(rd: RunDir, dataset: Any, *, allow_change: bool = False,
                fresh_hint: str = "--fresh") -> dict:
    """The accepted identity of ``dataset``'s split for run ``rd`` (see the module doc).

    Rank 0 decides (and writes); every rank gets the same answer or the same error."""
    d = hdist.info()
    result: dict | None = None
    error: Exception | None = None
    if d.is_main:
        try:
            result = _check(rd, dataset, allow_change, fresh_hint)
        except Exception as exc:  # tell the other ranks before raising
            error = exc
    shared = hdist.broadcast_object((result, None if error is None else str(error)))
    if error is not None:
        raise error
    if shared[1] is not None:
        raise DataChanged(shared[1])
    return dict(shared[0])
