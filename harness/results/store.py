"""Collect evaluation records from ``metrics.json`` files into typed, validated objects.

A metrics.json (written by the evaluators) holds
``{"schema": 1, "evaluations": {"<protocol id>/<inference>": record}}``. Reading is forgiving,
because a leaderboard must still be printable when one run is old, partial or broken: every
problem becomes ONE warning that names the file (and the evaluation key), the affected value is
left out, and the remaining records are kept. A file that cannot be read at all is skipped.
Warnings go to the ``harness.results`` logger (stderr by default) and to ``problems`` if given.
"""
from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

from harness.core.records import METRICS_FILE

LOG = logging.getLogger("harness.results")

SCHEMA_VERSION = 1
STATUSES = ("ok", "skipped", "n/a")


@dataclass(frozen=True)
class Metric:
    """One metric of one record. ``value`` is set only when ``status == 'ok'``."""
    status: str                                 # "ok" | "skipped" | "n/a"
    value: float | None = None
    per_seed: tuple[float, ...] = ()            # one value per generation seed, if recorded
    reason: str | None = None                   # why skipped / not applicable
    unverified: bool = False                    # computed with unverified weights
    # bootstrap interval over the evaluation images (docs/statistics.md), if recorded
    ci: tuple[float, float] | None = None
    ci_level: float | None = None


@dataclass(frozen=True)
class Record:
    """One evaluation (one protocol, one inference mode) of one run or image folder."""
    source: Path                                # the metrics.json it came from
    key: str                                    # "<protocol id>/<inference>"
    dataset: str
    protocol_id: str
    protocol_name: str | None
    protocol_hash: str | None
    method: str | None
    variant: str | None
    inference: str | None
    run_id: str | None
    config_hash: str | None
    train_seed: int | None
    n_images: int | None
    seeds: tuple[int, ...]
    variant_hash: str | None = None             # identity without the seed (None: older records)
    metrics: dict[str, Metric] = field(default_factory=dict)
    notes: tuple[str, ...] = ()                 # the evaluator's caveats (e.g. lossy images)
    raw: dict = field(default_factory=dict, repr=False)
    # sha256 of the evaluated split's files (None: older records) and whether the dataset's
    # tables are keyed by it (folder datasets), see harness.core.data.fingerprint
    data_fingerprint: str | None = None
    tables_by_fingerprint: bool = False

    @property
    def table_id(self) -> str:
        """The table this record belongs to: the protocol id, plus the data's short fingerprint
        for datasets that are whatever a folder holds."""
        if self.tables_by_fingerprint:
            return f"{self.protocol_id}@data-{(self.data_fingerprint or 'unknown')[:12]}"
        return self.protocol_id


class Reporter:
    def __init__(self, problems: list[str] | None) -> None:
        self.problems = problems

    def __call__(self, message: str) -> None:
        LOG.warning("%s", message)
        if self.problems is not None:
            self.problems.append(message)


# Sub-folders of a run that hold thousands of images or checkpoints and never a metrics.json.
SKIP_DIRS = frozenset({"samples", "train_samples", "checkpoints"})


def _walk_for_metrics(root: Path) -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        if METRICS_FILE in files:
            found.append(Path(folder) / METRICS_FILE)
    return found


def find_metrics_files(paths: Iterable[str | Path], warn: Reporter | None = None) -> list[Path]:
    """Every metrics.json named or found (recursively) under ``paths``; sorted, each once."""
    warn = warn or Reporter(None)
    found: dict[Path, Path] = {}
    for p in paths:
        p = Path(p)
        if p.is_file():
            candidates = [p]
        elif p.is_dir():
            candidates = _walk_for_metrics(p)
        else:
            warn(f"{p}: does not exist; no evaluation records read from it")
            continue
        for c in candidates:
            found.setdefault(c.resolve(), c)
    return sorted(found.values(), key=lambda q: q.as_posix())


def collect_records(paths: Iterable[str | Path], *,
                    problems: list[str] | None = None) -> list[Record]:
    """Records of every metrics.json under ``paths`` (files or folders searched recursively).

    Order is stable: by file path, then evaluation key. Unreadable files and unusable records
    are skipped with a warning naming the file; ``problems`` (if given) collects the warnings.
    """
    warn = Reporter(problems)
    records: list[Record] = []
    for path in find_metrics_files(paths, warn):
        records.extend(read_metrics_file(path, warn))
    return records


def read_metrics_file(path: Path, warn: Reporter | None = None) -> list[Record]:
    warn = warn or Reporter(None)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        warn(f"{path}: cannot be read ({exc}); skipped")
        return []
    except json.JSONDecodeError as exc:
        warn(f"{path}: is not valid JSON ({exc}; perhaps an interrupted write); skipped — "
             "re-run the evaluation to recreate it")
        return []
    if not isinstance(data, dict):
        warn(f"{path}: expected a JSON object with 'evaluations', got {type(data).__name__}; "
             "skipped")
        return []
    schema = data.get("schema")
    if schema is None:
        warn(f"{path}: has no 'schema' key (older file); reading it as schema {SCHEMA_VERSION}")
    elif schema != SCHEMA_VERSION:
        warn(f"{path}: schema {schema!r}, this harness reads schema {SCHEMA_VERSION}; reading "
             "the fields it knows")
    evaluations = data.get("evaluations")
    if evaluations is None and "metrics" in data and "protocol" in data:
        evaluations = {_key_of(data): data}     # a single bare record (older layout)
    if not isinstance(evaluations, dict):
        warn(f"{path}: expected 'evaluations' to be an object of "
             "'<protocol id>/<inference>' -> record, found "
             f"{type(evaluations).__name__ if evaluations is not None else 'nothing'}; skipped")
        return []
    out = []
    for key in sorted(evaluations):
        rec = parse_record(path, str(key), evaluations[key], warn)
        if rec is not None:
            out.append(rec)
    return out


def _key_of(rec: dict) -> str:
    proto = rec.get("protocol")
    pid = proto.get("id") if isinstance(proto, dict) else None
    return f"{pid}/{rec.get('inference')}"


def parse_record(path: Path, key: str, rec: Any, warn: Reporter | None = None) -> Record | None:
    """Validate one record; ``None`` (with a warning) when it cannot be placed in any table."""
    warn = warn or Reporter(None)
    where = f"{path}: evaluation {key!r}"
    if not isinstance(rec, dict):
        warn(f"{where}: expected an object, got {type(rec).__name__}; skipped")
        return None

    def opt_str(name: str) -> str | None:
        v = rec.get(name)
        if v is None or isinstance(v, str):
            return v
        warn(f"{where}: {name!r} should be a string or null, got {v!r}; ignored")
        return None

    def opt_int(name: str, note: str) -> int | None:
        if name not in rec:
            warn(f"{where}: missing {name!r}; {note}")
            return None
        v = rec[name]
        if v is None or (isinstance(v, int) and not isinstance(v, bool)):
            return v
        warn(f"{where}: {name!r} should be an integer, got {v!r}; {note}")
        return None

    dataset = rec.get("dataset")
    if not isinstance(dataset, str) or not dataset:
        warn(f"{where}: missing or invalid 'dataset' ({dataset!r}); skipped (a record must name "
             "its dataset to be placed in a table)")
        return None

    proto = rec.get("protocol")
    pid = pname = phash = None
    if isinstance(proto, dict):
        pname, phash, pid = proto.get("name"), proto.get("hash"), proto.get("id")
        if not isinstance(pid, str) or not pid:
            pid = f"{pname}-{phash}" if isinstance(pname, str) and isinstance(phash, str) else None
    if pid is None:
        warn(f"{where}: missing 'protocol' id (expected protocol.id = '<name>-<hash>'); "
             "skipped — a number without its protocol cannot be compared with anything")
        return None
    if not key.startswith(f"{pid}/"):
        warn(f"{where}: the key does not start with the record's protocol id {pid!r}; the "
             "record's protocol is used")
    # Unverified weights (evaluators/unverified.py): the identity carries a suffix, so such
    # numbers get their own table; the values they produced are marked.
    unverified_metrics: set[str] = set()
    if isinstance(proto, dict) and isinstance(proto.get("identity"), str) and proto["identity"]:
        pid = proto["identity"]
        marked = (proto.get("unverified") or {}).get("metrics")
        unverified_metrics = set(marked) if isinstance(marked, list) else set()

    inference = rec.get("inference")
    if inference is not None and not isinstance(inference, str):
        warn(f"{where}: 'inference' should be a string or null, got {inference!r}; ignored")
        inference = None
    if "inference" not in rec:
        warn(f"{where}: missing 'inference'; shown as '—'")

    method = opt_str("method")
    variant = opt_str("variant")
    if method is None and variant is None:
        # A bare image folder: name the row after the folder that holds the metrics.json.
        variant = path.parent.name

    seeds_raw = rec.get("seeds")
    if isinstance(seeds_raw, list) and all(isinstance(s, int) and not isinstance(s, bool)
                                           for s in seeds_raw):
        seeds = tuple(seeds_raw)
    else:
        warn(f"{where}: missing or invalid 'seeds' ({seeds_raw!r}); generation seeds unknown")
        seeds = ()

    n_images = opt_int("n_images", "N shown as '?'")
    train_seed = opt_int("train_seed", "shown as unknown") if "train_seed" in rec else None

    metrics_raw = rec.get("metrics")
    if not isinstance(metrics_raw, dict):
        warn(f"{where}: missing or invalid 'metrics' object; the row shows no values")
        metrics_raw = {}
    metrics = {}
    for name in sorted(metrics_raw):
        m = parse_metric(f"{where}: metric {name!r}", metrics_raw[name], warn)
        if m is not None:
            metrics[name] = replace(m, unverified=True) if name in unverified_metrics else m

    notes_raw = rec.get("notes", [])
    if isinstance(notes_raw, list) and all(isinstance(n, str) for n in notes_raw):
        notes = tuple(notes_raw)
    else:
        warn(f"{where}: 'notes' should be a list of strings, got {notes_raw!r}; ignored")
        notes = ()

    data = rec.get("data") if isinstance(rec.get("data"), dict) else {}
    content = data.get("content") if isinstance(data.get("content"), str) else None
    return Record(source=path, key=key, dataset=dataset, protocol_id=pid,
                  protocol_name=pname if isinstance(pname, str) else None,
                  protocol_hash=phash if isinstance(phash, str) else None,
                  method=method, variant=variant, inference=inference,
                  run_id=opt_str("run_id"), config_hash=opt_str("config_hash"),
                  variant_hash=opt_str("variant_hash"),
                  train_seed=train_seed, n_images=n_images, seeds=seeds,
                  metrics=metrics, notes=notes, raw=rec, data_fingerprint=content,
                  tables_by_fingerprint=data.get("tables_by_fingerprint") is True)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def parse_metric(where: str, m: Any, warn: Reporter) -> Metric | None:
    if _finite(m):
        warn(f"{where}: a bare number (older file); read as status 'ok'")
        return Metric("ok", float(m))
    if not isinstance(m, dict):
        warn(f"{where}: expected an object with 'status', got {m!r}; left out")
        return None
    status = m.get("status")
    if status is None and _finite(m.get("value")):
        warn(f"{where}: no 'status' (older file); read as 'ok' because it has a value")
        status = "ok"
    if status not in STATUSES:
        warn(f"{where}: unknown status {status!r} (expected one of {', '.join(STATUSES)}); "
             "left out")
        return None
    reason = m.get("reason") if isinstance(m.get("reason"), str) else None
    if status != "ok":
        return Metric(status, reason=reason)
    value = m.get("value")
    if not _finite(value):
        warn(f"{where}: status 'ok' but 'value' is {value!r} (a finite number was expected); "
             "left out")
        return None
    per_seed_raw = m.get("per_seed")
    per_seed: tuple[float, ...] = ()
    if per_seed_raw is not None:
        if isinstance(per_seed_raw, list) and all(_finite(v) for v in per_seed_raw):
            per_seed = tuple(float(v) for v in per_seed_raw)
        else:
            warn(f"{where}: 'per_seed' should be a list of finite numbers, got "
                 f"{per_seed_raw!r}; no seed spread shown")
    ci, ci_level = _interval(where, m, warn)
    return Metric("ok", float(value), per_seed, reason, ci=ci, ci_level=ci_level)


def _interval(where: str, m: dict, warn: Reporter) -> tuple[tuple[float, float] | None,
                                                            float | None]:
    """The record's ``ci`` (older records: FID's ``ci95``) and its level."""
    raw = m.get("ci", m.get("ci95"))
    if raw is None:
        return None, None
    if not (isinstance(raw, list) and len(raw) == 2 and all(_finite(v) for v in raw)
            and raw[0] <= raw[1]):
        warn(f"{where}: 'ci' should be [lo, hi] with lo <= hi, got {raw!r}; no interval shown")
        return None, None
    level = m.get("ci_level", m.get("confidence", 0.95))
    return (float(raw[0]), float(raw[1])), float(level) if _finite(level) else None
