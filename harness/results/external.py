"""External rows: evaluations of image folders (released outputs, other methods' results).

`evaluate --images DIR --label L` scores a folder that is no run of this harness. Its record is
kept in ``<results dir>/external/<slug of L>/metrics.json`` -- beside the tables, not inside the
image folder -- so that every leaderboard rebuild (``run``, ``evaluate``, ``leaderboard``) reads
it again, whatever the runs folder holds, until ``leaderboard --remove-external L`` deletes it.
The record keeps ``external: true`` and where the images were (``images_dir``).
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from harness.core.records import METRICS_FILE, evaluation_key, write_record

EXTERNAL_DIR = "external"


class ExternalError(ValueError):
    """An external row that does not exist or a label that cannot name one."""


def slug(label: str) -> str:
    """Folder name of a label: 'SPADE (released)' -> 'spade-released'."""
    s = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    if not s:
        raise ExternalError(f"label {label!r}: needs at least one letter or digit")
    return s


def external_root(results_dir: str | Path) -> Path:
    return Path(results_dir) / EXTERNAL_DIR


def add_external(results_dir: str | Path, record: dict) -> Path:
    """Store ``record`` (one evaluation of an image folder) as an external row; returns the
    metrics.json it went into. Another evaluation of the same label and protocol replaces it."""
    label = record.get("variant") or record.get("method")
    if not label:
        raise ExternalError("an external record needs a label (method / variant)")
    record = {**record, "external": True}
    path = external_root(results_dir) / slug(str(label)) / METRICS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_record(path, record)
    return path


def list_external(results_dir: str | Path) -> dict[str, dict]:
    """label -> {"path", "keys"} of every stored external row."""
    out: dict[str, dict] = {}
    root = external_root(results_dir)
    if not root.is_dir():
        return out
    for path in sorted(root.glob(f"*/{METRICS_FILE}")):
        try:
            evaluations = json.loads(path.read_text(encoding="utf-8")).get("evaluations") or {}
        except (OSError, ValueError, AttributeError):
            evaluations = {}
        labels = {str(r.get("variant") or r.get("method") or path.parent.name)
                  for r in evaluations.values() if isinstance(r, dict)} or {path.parent.name}
        for label in labels:
            out[label] = {"path": str(path), "keys": sorted(evaluations)}
    return out


def remove_external(results_dir: str | Path, label: str) -> Path:
    """Delete the external row named ``label`` (its label or its folder name); returns the
    folder removed. Unknown: an error listing the stored labels."""
    stored = list_external(results_dir)
    target = None
    if label in stored:
        target = Path(stored[label]["path"]).parent
    else:
        try:
            candidate = external_root(results_dir) / slug(label)
        except ExternalError:
            candidate = None
        if candidate is not None and (candidate / METRICS_FILE).is_file():
            target = candidate
    if target is None:
        known = ", ".join(repr(k) for k in sorted(stored)) or "none"
        raise ExternalError(f"--remove-external {label!r}: no such external row under "
                            f"{external_root(results_dir)} (stored: {known})")
    shutil.rmtree(target)
    return target


__all__ = ["EXTERNAL_DIR", "ExternalError", "add_external", "evaluation_key", "external_root",
           "list_external", "remove_external", "slug"]
