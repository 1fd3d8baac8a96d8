"""Reusing generated images across protocols that would generate identical ones.

An image is a pure function of (method, checkpoint, inference mode, the input data, the
generation size, seed, key, sample index) - see :mod:`harness.generate`. Two protocols of one
run that share the generation size (a dataset's ``*-paper`` and ``*-full-res`` protocols differ
only in how the segmenter scores) therefore produce the same files; the second one links them
from the first instead of generating them again.

Identity is checked on the manifests' fields, never on file names alone: the donor's manifest
must be complete and record the same origin (method, run, checkpoint sha256, inference, input
data fingerprint), the same split, resolution and configuration hash; a file is taken only when
the donor's manifest lists it for the same key and seed (or diversity sample).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Iterable, Mapping

from harness.core.io import read_json

# Manifest fields that must agree besides the origin (written by generate_stage as "extra").
SAME_FIELDS = ("split", "resolution", "config_hash", "dataset")
# Origin fields that must agree (the protocol is the one that may differ).
SAME_ORIGIN = ("method", "inference", "run_id", "checkpoint_sha256", "inputs")


def _complete(manifest: Mapping[str, Any], folder: Path) -> bool:
    rels = [r for s in manifest.get("files", {}).values() for r in s.values()]
    rels += [r for rs in (manifest.get("diversity") or {}).values() for r in rs]
    return all((folder / r).is_file() for r in rels)


def find_donors(samples_root: Path, out_dir: Path, want: Mapping[str, Any],
                origin: Mapping[str, Any]) -> list[tuple[Path, dict]]:
    """Complete sample sets under ``samples_root`` (``<protocol id>/<inference>/``) other than
    ``out_dir`` whose manifests match ``want`` (SAME_FIELDS) and ``origin`` (SAME_ORIGIN)."""
    donors = []
    if not samples_root.is_dir():
        return donors
    for path in sorted(samples_root.glob("*/*/manifest.json")):
        folder = path.parent
        if folder.resolve() == out_dir.resolve():
            continue
        try:
            manifest = read_json(path)
        except (OSError, ValueError):
            continue
        recorded = manifest.get("origin") or {}
        if any(manifest.get(k) != want.get(k) for k in SAME_FIELDS):
            continue
        if any(recorded.get(k) != origin.get(k) or origin.get(k) is None for k in SAME_ORIGIN):
            continue
        if _complete(manifest, folder):
            donors.append((folder, manifest))
    return donors


def _listed(manifest: Mapping[str, Any], key: str, seed: Any, rel: str) -> bool:
    if seed == "diversity":
        return rel in ((manifest.get("diversity") or {}).get(key) or [])
    return (manifest.get("files") or {}).get(str(seed), {}).get(key) == rel


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.link")
    try:
        os.link(src, tmp)
    except OSError:  # another file system, or links not allowed: copy
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def reuse(donors: Iterable[tuple[Path, dict]], wanted: Iterable[tuple[str, Any, str]],
          out_dir: Path) -> dict[str, int]:
    """Link every missing ``(key, seed, rel)`` of ``out_dir`` that a donor lists; returns
    donor protocol id -> files taken."""
    donors = list(donors)
    taken: dict[str, int] = {}
    for key, seed, rel in wanted:
        dst = out_dir / rel
        if dst.is_file():
            continue
        for folder, manifest in donors:
            if _listed(manifest, key, seed, rel) and (folder / rel).is_file():
                _link(folder / rel, dst)
                pid = str(manifest.get("protocol"))
                taken[pid] = taken.get(pid, 0) + 1
                break
    return taken
