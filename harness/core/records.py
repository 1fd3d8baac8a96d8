"""The evaluation record (schema 1), combining seeds, and the run-level metrics.json.

One record = one evaluation of one generated set under one protocol::

    {"schema": 1, "method", "dataset", "variant", "run_id",
     "protocol": {"name", "hash", "id", "fields"}, "inference", "n_images", "seeds",
     "metrics": {name: {"status": "ok"|"skipped"|"n/a", "value"|"reason", ...}},
     "weights": {key: ResolvedWeights.record()}, "environment": harness.core.env.environment()}

A metric is never a number unless it was computed: missing weights give
``{"status": "skipped", "reason": ...}``, a method that cannot sample several outputs gives
``{"status": "n/a", ...}`` for diversity.

``<run>/metrics.json`` = ``{"schema": 1, "evaluations": {"<protocol id>/<inference>": record}}``.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from harness.core.io import atomic_write_json, read_json

SCHEMA = 1
METRICS_FILE = "metrics.json"

# The metrics a record holds and which way is better. How they are displayed (precision,
# scaling, headers) is the leaderboard's business: harness/results/columns.py.
METRICS: dict[str, dict[str, Any]] = {
    "fid": {"direction": "lower", "label": "FID"},
    "kid": {"direction": "lower", "label": "KID"},
    "miou": {"direction": "higher", "label": "mIoU (%)"},
    "accuracy": {"direction": "higher", "label": "pixel accuracy (%)"},
    "real_miou": {"direction": "higher", "label": "mIoU on real images (%)"},
    "real_accuracy": {"direction": "higher", "label": "pixel accuracy on real images (%)"},
    "lpips_diversity": {"direction": "higher", "label": "LPIPS diversity"},
    "mcsd": {"direction": "higher", "label": "mCSD (class-specific diversity)"},
    "mocd": {"direction": "lower", "label": "mOCD (other-classes diversity)"},
    # Opt-in feature-space metrics (protocol 'features:', evaluators/feature_spaces.py).
    "fd_dinov2": {"direction": "lower", "label": "FD_DINOv2"},
    "fd_clip": {"direction": "lower", "label": "FD in CLIP space"},
    "cmmd": {"direction": "lower", "label": "CMMD"},
    "precision": {"direction": "higher", "label": "precision"},
    "recall": {"direction": "higher", "label": "recall"},
    "density": {"direction": "higher", "label": "density"},
    "coverage": {"direction": "higher", "label": "coverage"},
}


class RecordError(ValueError):
    """Records that cannot be combined or a metrics.json that cannot be merged into."""


def ok(value: float, **extra: Any) -> dict:
    return {"status": "ok", "value": float(value), **extra}


def skipped(reason: str) -> dict:
    return {"status": "skipped", "reason": str(reason)}


def not_applicable(reason: str) -> dict:
    return {"status": "n/a", "reason": str(reason)}


def evaluation_key(record: dict) -> str:
    return f"{record['protocol']['id']}/{record.get('inference') or 'none'}"


# --- seeds --------------------------------------------------------------------------------------
def _std(values: Sequence[float]) -> float | None:
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def _combine_metric(name: str, entries: list[dict]) -> dict:
    statuses = {e.get("status") for e in entries}
    if statuses != {"ok"}:
        # One seed without a number means the combination has none either.
        first = next(e for e in entries if e.get("status") != "ok")
        return dict(first)
    values = [float(e["value"]) for e in entries]
    out = dict(entries[0])
    out.update(value=float(np.mean(values)), std=_std(values), per_seed=values)
    if name == "fid":
        out["ci95"] = None  # a bootstrap interval belongs to one generated set
        out["ci95_per_seed"] = [e.get("ci95") for e in entries]
    if len(entries) > 1 and "ci" in out:
        out["ci"] = None  # the same: the seeds' std is the spread of the combination
        out["ci_per_seed"] = [e.get("ci") for e in entries]
    if name == "kid":
        out["subset_std_per_seed"] = [e.get("std") for e in entries]
        out["std"] = _std(values)
    if "per_class" in entries[0]:
        names = list(entries[0]["per_class"])
        per_class = {}
        for cls in names:
            vals = [e["per_class"].get(cls) for e in entries]
            vals = [v for v in vals if v is not None]
            per_class[cls] = float(np.mean(vals)) if vals else None
        out["per_class"] = per_class
    return out


class EvaluationRecord(dict):
    """A record (a plain JSON-able dict) that also carries the per-image arrays its intervals
    were computed from (``per_image_arrays``), which write_record stores beside metrics.json."""
    per_image_arrays: dict | None = None


def with_per_image(record: dict, arrays: dict | None) -> dict:
    if arrays is None:
        return record
    out = EvaluationRecord(record)
    out.per_image_arrays = dict(arrays)
    return out


def per_image_arrays(record: dict) -> dict | None:
    return getattr(record, "per_image_arrays", None)


def combine_seeds(records: Sequence[dict]) -> dict:
    """One record from per-seed records: each metric's mean, std (ddof=1) and per-seed values."""
    records = list(records)
    if not records:
        raise RecordError("combine_seeds needs at least one record")
    base = records[0]
    for r in records[1:]:
        for key in ("dataset", "method", "variant", "inference", "n_images"):
            if r.get(key) != base.get(key):
                raise RecordError(f"cannot combine records with different {key}: "
                                  f"{base.get(key)!r} and {r.get(key)!r}")
        if r["protocol"]["hash"] != base["protocol"]["hash"]:
            raise RecordError(f"cannot combine records of different protocols: "
                              f"{base['protocol']['id']} and {r['protocol']['id']}")
    seeds = [s for r in records for s in r.get("seeds", [])]
    if len(set(seeds)) != len(seeds):
        raise RecordError(f"records repeat seeds: {seeds}")
    out = dict(base)
    out["seeds"] = seeds
    names = list(dict.fromkeys(n for r in records for n in r["metrics"]))
    out["metrics"] = {}
    for name in names:
        entries = [r["metrics"].get(name, skipped("not computed for every seed")) for r in records]
        out["metrics"][name] = _combine_metric(name, entries)
    weights = {}
    for r in records:
        weights.update(r.get("weights", {}))
    out["weights"] = weights
    arrays = per_image_arrays(base)
    if arrays is not None and len(records) > 1:
        # Per-image data belongs to one generated set; with several seeds only the diversity
        # samples' per-map values (measured once, with the first seed) are kept.
        arrays = {k: v for k, v in arrays.items() if k in ("keys", "lpips_per_map", "lpips_keys")}
    return with_per_image(out, arrays)


def finite_or_skipped(metrics: dict) -> dict:
    """An "ok" entry whose value is NaN/inf (e.g. mIoU without a single scored pixel) becomes
    skipped: a record never holds a number that is not one."""
    for name, entry in metrics.items():
        if entry.get("status") == "ok" and not math.isfinite(float(entry["value"])):
            metrics[name] = skipped(f"{name} is undefined here (value {entry['value']}): e.g. "
                                    "no pixel of the ground truth is scored")
    return metrics


def single_seed_fields(metrics: dict) -> dict:
    """per_seed / std for a record of one generated set (std None: one seed says nothing)."""
    for entry in metrics.values():
        if entry.get("status") == "ok":
            entry.setdefault("per_seed", [entry["value"]])
            if "std" not in entry:
                entry["std"] = None
    return metrics


# --- metrics.json -------------------------------------------------------------------------------
def _metrics_path(path: str | Path) -> Path:
    path = Path(path)
    return path / METRICS_FILE if path.is_dir() or path.suffix != ".json" else path


def read_metrics(path: str | Path) -> dict:
    """The run-level file (``{"schema": 1, "evaluations": {}}`` when it does not exist)."""
    path = _metrics_path(path)
    if not path.exists():
        return {"schema": SCHEMA, "evaluations": {}}
    data = read_json(path)  # broken JSON: UnreadableFileError naming the file
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or \
            not isinstance(data.get("evaluations"), dict):
        raise RecordError(f"{path} is not a schema-{SCHEMA} metrics file (expected "
                          '{"schema": 1, "evaluations": {...}}); move it away to start a new one')
    return data


def write_record(path: str | Path, record: dict) -> Path:
    """Merge ``record`` into ``<dir>/metrics.json`` (or the given .json file), atomically.

    The entry ``"<protocol id>/<inference>"`` is replaced; other entries are kept.
    """
    if record.get("schema") != SCHEMA:
        raise RecordError(f"record has schema {record.get('schema')!r}, expected {SCHEMA}")
    path = _metrics_path(path)
    with _records_lock(path):  # read-modify-write: concurrent writers must not drop records
        data = read_metrics(path)
        arrays = per_image_arrays(record)
        record = dict(record)
        if arrays is not None:
            from harness.core.per_image import save_per_image
            record["per_image"] = save_per_image(path.parent, evaluation_key(record), arrays)
        data["evaluations"][evaluation_key(record)] = record
        return atomic_write_json(path, _jsonable(data))


@contextmanager
def _records_lock(path: Path) -> Iterator[None]:
    """An inter-process lock on one metrics.json (a run's, or a shared ``evaluate --out``
    file), held only for the read-modify-write; the lock file sits beside it."""
    from filelock import FileLock

    from harness.core.io import OutputError

    lock = FileLock(str(path.parent / f".{path.name}.lock"))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except OSError as exc:
        raise OutputError(exc.errno, f"cannot write {path}: {exc.strerror or exc} (is "
                                     f"{path.parent} a writable folder?)") from exc
    try:
        yield
    finally:
        lock.release()


def _jsonable(obj: Any) -> Any:
    """NaN/inf are not JSON: store them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj
