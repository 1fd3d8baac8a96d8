"""Which data a split is: a fingerprint of every file it reads, and what changed between two.

A split's fingerprint lists every file the split reads (its records' images, label maps and
instance maps, plus the dataset's own description files such as a folder dataset's
``classes.yaml``) by path relative to the folder that holds them all, with

- ``fast`` mode: size and ``mtime_ns`` of each file (a stat per file, no reading);
- ``content`` mode: size and the sha256 of each file's bytes (``dataset.verify_content: true``
  or ``--verify-content``; the reference images for FID always use it, they are read anyway).

The digest is the sha256 of the canonical listing (mode included), so two folders with the same
file names but different files never share a digest, and the listing itself tells how many files
changed, were added or were removed (:func:`compare`).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping

from harness.core.data.base import DatasetError

Mode = Literal["fast", "content"]
MODES = ("fast", "content")
_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Entry:
    """One file of a listing: size, mtime_ns and (content mode) the sha256 of its bytes."""
    size: int
    mtime_ns: int
    sha256: str | None = None

    def to_list(self) -> list:
        return [self.size, self.mtime_ns, self.sha256]


@dataclass(frozen=True)
class Fingerprint:
    mode: str
    digest: str                                   # sha256 of the canonical listing
    files: Mapping[str, Entry] = field(repr=False)  # relative path -> entry

    @property
    def short(self) -> str:
        return self.digest[:12]

    def summary(self) -> dict:
        """What records and manifests store (the listing itself lives in the run directory)."""
        return {"fingerprint": self.digest, "mode": self.mode, "files": len(self.files)}

    def to_json(self) -> dict:
        return {"mode": self.mode, "digest": self.digest,
                "files": {k: e.to_list() for k, e in sorted(self.files.items())}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Fingerprint":
        try:
            files = {str(k): Entry(int(v[0]), int(v[1]), v[2]) for k, v in data["files"].items()}
            return cls(str(data["mode"]), str(data["digest"]), files)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise DatasetError(f"a recorded data fingerprint is malformed ({exc!r})") from None


def _digest(mode: str, files: Mapping[str, Entry]) -> str:
    # fast: what a stat sees; content: what the bytes are (a touch or a copy does not change it)
    rows = [[rel, e.size, e.sha256 if mode == "content" else e.mtime_ns]
            for rel, e in sorted(files.items())]
    text = json.dumps({"mode": mode, "files": rows}, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint_files(paths: Iterable[Path], mode: str = "fast") -> Fingerprint:
    """The fingerprint of ``paths`` (relative to their common folder)."""
    if mode not in MODES:
        raise ValueError(f"fingerprint mode must be one of {MODES}, got {mode!r}")
    paths = sorted({Path(p) for p in paths})
    if not paths:
        return Fingerprint(mode, _digest(mode, {}), {})
    base = Path(os.path.commonpath([str(p.parent) for p in paths]))
    files: dict[str, Entry] = {}
    for p in paths:
        try:
            st = os.stat(p)
            sha = file_sha256(p) if mode == "content" else None
        except OSError as exc:
            raise DatasetError(f"cannot read {p}: {exc.strerror}") from None
        files[p.relative_to(base).as_posix()] = Entry(st.st_size, st.st_mtime_ns, sha)
    return Fingerprint(mode, _digest(mode, files), files)


def split_files(dataset: Any) -> list[Path]:
    """Every file the split of ``dataset`` reads (records, plus its description files)."""
    out: list[Path] = []
    for r in dataset.records():
        out += [p for p in (r.image, r.label, r.instance) if p is not None]
    extra = getattr(dataset, "identity_files", None)
    if callable(extra):
        out += [Path(p) for p in extra()]
    return out


def split_fingerprint(dataset: Any, mode: str | None = None) -> Fingerprint:
    """The fingerprint of a dataset split; ``mode`` defaults to the dataset's option
    ``verify_content`` (content) or fast."""
    if mode is None:
        mode = "content" if getattr(dataset.options, "verify_content", False) else "fast"
    return fingerprint_files(split_files(dataset), mode)


@dataclass(frozen=True)
class Change:
    changed: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.changed or self.added or self.removed)

    def counts(self) -> dict:
        return {"changed": len(self.changed), "added": len(self.added),
                "removed": len(self.removed)}

    def describe(self) -> str:
        parts = [f"{len(self.changed)} changed", f"{len(self.added)} added",
                 f"{len(self.removed)} removed"]
        example = (self.changed or self.added or self.removed or ("",))[0]
        return ", ".join(parts) + (f" (e.g. {example})" if example else "")


def _same(old: Entry, new: Entry, path: Path | None) -> bool:
    if old.size != new.size:
        return False
    if old.sha256 is not None and new.sha256 is not None:
        return old.sha256 == new.sha256
    if old.mtime_ns == new.mtime_ns:
        return True
    # Touched but perhaps not changed: the bytes decide when the old listing has them.
    if old.sha256 is not None and path is not None:
        try:
            return file_sha256(path) == old.sha256
        except OSError:
            return False
    return False


def compare(old: Fingerprint, new: Fingerprint, base: Path | None = None) -> Change:
    """What changed from ``old`` to ``new`` (``base``: the folder of ``new``'s files, to hash a
    touched file when only the old listing has its content hash)."""
    changed = tuple(k for k in sorted(set(old.files) & set(new.files))
                    if not _same(old.files[k], new.files[k],
                                 base / k if base is not None else None))
    return Change(changed, tuple(sorted(set(new.files) - set(old.files))),
                  tuple(sorted(set(old.files) - set(new.files))))


def common_base(dataset: Any) -> Path | None:
    paths = split_files(dataset)
    if not paths:
        return None
    return Path(os.path.commonpath([str(Path(p).parent) for p in paths]))
