"""Training checkpoints: what they hold, how they are written and how they are found again.

Layout of ``<run>/checkpoints/``::

    step_00001000.pt          one checkpoint per saved step (the last ``keep_last`` are kept)
    step_00001000.pt.sha256   its sha256, written after it (verified when loading)
    latest                    text: the file name of the newest complete checkpoint
    best                      text: the file name of the best checkpoint (by a metric if the
                              runner has one, else the final one); never pruned

A checkpoint is written to a temporary file, fsynced and renamed
(:func:`harness.core.io.atomic_write`), then its hash, then the ``latest`` pointer: a crash at any
moment leaves the previous checkpoint
and pointer intact. It holds everything an exact resume needs (see :func:`make_state`): every
network, optimiser and GradScaler state, the step (the learning rate is a pure function of it),
the sampler position, the RNG states of every rank, plus what it belongs to - method name,
dataset name and DatasetInfo, the config and its hash - so that loading it into another method
or dataset fails with a message naming both.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import torch

from harness.core.io import OutputError, atomic_write, atomic_write_text
from harness.train.finite import first_nonfinite
from harness.train.guards import TrainingError

FORMAT = "sis-harness-checkpoint"
FORMAT_VERSION = 1
DIRNAME = "checkpoints"
LATEST = "latest"
BEST = "best"
_STEP_FILE = re.compile(r"^step_(\d+)\.pt$")

LOG = logging.getLogger("harness.train")


class CheckpointError(TrainingError):
    """A checkpoint cannot be read or written; the message names the file."""


class CheckpointWriteError(CheckpointError):
    """A checkpoint cannot be written (full disk, read-only folder): the user's to fix."""
    exit_code = 2


class CheckpointMismatch(CheckpointError):
    """A checkpoint belongs to another method, dataset or label space."""


class NonFiniteCheckpoint(CheckpointError):
    """A checkpoint holds NaN or inf values (never written by this harness; an older version or
    a modified file): unusable, like a corrupted one."""


def step_file(step: int) -> str:
    return f"step_{step:08d}.pt"


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / DIRNAME


# --------------------------------------------------------------------------------------------
# Contents
# --------------------------------------------------------------------------------------------
def make_state(*, method: Any, cfg: Any, info: Any, step: int, finished: bool = False,
               sampler: dict | None = None, scalers: dict | None = None,
               rng: list[dict] | None = None, world_size: int = 1, schedule: dict | None = None,
               after_training: dict | None = None, best: dict | None = None) -> dict:
    """The checkpoint dictionary (also used to store imported official weights, with step 0)."""
    from harness.core.env import environment

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "step": int(step),
        "finished": bool(finished),
        "after_training": after_training,
        "method": {"name": cfg.method.name, "state": method.state_dict()},
        "scalers": scalers or {},
        "sampler": sampler or {},
        "schedule": schedule or {},
        "rng": rng,                       # one entry per rank (None: not a training state)
        "world_size": int(world_size),
        "dataset": {"name": cfg.dataset.name, "info": _info_dict(info)},
        "config": cfg.to_dict(),
        "config_hash": cfg.hash(),
        "best": best,
        "environment": environment(),
    }


def _info_dict(info: Any) -> dict:
    d = dataclasses.asdict(info)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def dataset_info(state: dict):
    """The DatasetInfo stored in a checkpoint."""
    from harness.core.data.base import DatasetInfo

    known = {f.name for f in dataclasses.fields(DatasetInfo)}
    saved = {k: tuple(v) if isinstance(v, list) else v
             for k, v in state["dataset"]["info"].items() if k in known}
    return DatasetInfo(**saved)


def check_compatible(state: dict, path: Path, *, method: str, dataset: str, info: Any) -> None:
    """Raise CheckpointMismatch unless ``state`` was trained by ``method`` on ``dataset`` with
    the same label semantics (DatasetInfo)."""
    m, d = state["method"]["name"], state["dataset"]["name"]
    if m != method or d != dataset:
        raise CheckpointMismatch(
            f"checkpoint {path} was trained with method '{m}' on dataset '{d}', but this run is "
            f"method '{method}' on dataset '{dataset}'; a run directory belongs to one method and "
            "dataset - use its own run directory or start a new one")
    if info is None:
        return
    saved, now = _info_dict(dataset_info(state)), _info_dict(info)
    diff = [f"{k}={saved[k]!r} (checkpoint) vs {now[k]!r} (now)"
            for k in now if k != "name" and saved.get(k) != now[k]]
    if diff:
        raise CheckpointMismatch(
            f"checkpoint {path} was trained on dataset '{d}' with different label semantics than "
            f"the dataset has now: {'; '.join(diff)}; the networks' input/output layers would not "
            "match - check the dataset options (e.g. contain_dontcare, instances, crop size)")


# --------------------------------------------------------------------------------------------
# Finding checkpoints
# --------------------------------------------------------------------------------------------
def list_checkpoints(directory: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every step file, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for p in directory.iterdir():
        m = _STEP_FILE.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def read_pointer(directory: str | Path, which: str = LATEST) -> Path | None:
    """The file a pointer ('latest' / 'best') names, or None if there is no such pointer."""
    pointer = Path(directory) / which
    try:
        name = pointer.read_text().splitlines()[0].strip()
    except (OSError, IndexError):
        return None
    if not name or "/" in name or "\\" in name:
        return None
    return Path(directory) / name


def find_checkpoint(directory: str | Path, which: str = LATEST) -> Path | None:
    """The checkpoint ``which`` names: 'latest', 'best' (falls back to latest) or a file path.

    Without a 'latest' pointer the highest step file counts as latest. Returns None when the
    directory has no checkpoint; does not read or verify the file.
    """
    directory = Path(directory)
    if which not in (LATEST, BEST):
        p = Path(which)
        return p if p.is_file() else None
    if which == BEST:
        p = read_pointer(directory, BEST)
        if p is not None and p.is_file():
            return p
    p = read_pointer(directory, LATEST)
    if p is not None and p.is_file():
        return p
    found = list_checkpoints(directory)
    return found[-1][1] if found else None


resolve_checkpoint = find_checkpoint


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------
def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _recorded_sha256(path: Path) -> str | None:
    try:
        return (path.parent / (path.name + ".sha256")).read_text().split()[0]
    except (OSError, IndexError):
        return None


def _archive_problem(path: Path) -> str | None:
    """What is wrong with a torch.save zip archive by its own CRC-32s, or None. A file that is
    not a complete zip archive is left to torch.load, which names the problem."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile:
        return None
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    return f"its member {bad!r} fails its CRC-32 check" if bad is not None else None


def read(path: str | Path, *, verify: bool = True) -> dict:
    """Load a checkpoint file (CPU tensors); CheckpointError naming the file if it is missing,
    truncated, corrupted, not a harness checkpoint, or holds a non-finite value
    (NonFiniteCheckpoint)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    expected = _recorded_sha256(path) if verify else None
    if expected is not None:
        try:
            actual = file_sha256(path)
        except OSError as exc:
            raise CheckpointError(f"checkpoint {path} cannot be read: {exc.strerror}") from None
        if actual != expected:
            raise CheckpointError(
                f"checkpoint {path} is corrupted: its sha256 {actual[:16]}... differs from "
                f"{expected[:16]}... recorded when it was written (truncated or modified file)")
    elif verify:
        # No sidecar (a file copied without it): torch.load does not check the archive's
        # CRC-32s, so a flipped byte inside a tensor would load silently. Check them here.
        problem = _archive_problem(path)
        if problem is not None:
            raise CheckpointError(f"checkpoint {path} is corrupted: {problem} (and it has no "
                                  f"{path.name}.sha256 sidecar to compare with)")
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            # Method extra state with non-tensor objects (e.g. numpy arrays) needs the full
            # unpickler; only for a complete zip archive (a torch.save file), ideally verified.
            if not zipfile.is_zipfile(path):
                raise
            state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises RuntimeError / EOFError / UnpicklingError / ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"checkpoint {path} is unreadable (truncated or corrupted?): "
                              f"{type(exc).__name__}: {first[:300]}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a harness training checkpoint (no '{FORMAT}' marker); official "
            "checkpoints of a method's authors are loaded with `harness import-official`")
    if state.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {state['format_version']}, newer than this "
            f"harness understands ({FORMAT_VERSION}); update the harness")
    bad = first_nonfinite((state.get("method") or {}).get("state") or {})
    if bad is not None:
        raise NonFiniteCheckpoint(
            f"checkpoint {path} (step {state.get('step')}) holds non-finite values: "
            f"{bad.describe()}; it cannot be used (this harness never writes such a state: the "
            "file comes from an older version or was modified)")
    return state


def read_latest(directory: str | Path) -> tuple[Path, dict] | None:
    """The newest readable checkpoint of ``directory`` as (path, state); None if there is none.

    Starts at the 'latest' pointer (or the highest step file without a pointer); when that file
    is unreadable, falls back to the previous checkpoints one by one, saying so.
    """
    directory = Path(directory)
    steps = list_checkpoints(directory)
    target = read_pointer(directory, LATEST)
    candidates: list[Path] = []
    if target is not None and target.is_file():
        candidates.append(target)
        m = _STEP_FILE.match(target.name)
        limit = int(m.group(1)) if m else None
        candidates += [p for s, p in reversed(steps) if p != target and (limit is None or s < limit)]
    else:
        if target is not None:
            LOG.warning("checkpoint pointer %s names %s, which does not exist; using the newest "
                        "step file instead", directory / LATEST, target.name)
        candidates = [p for _, p in reversed(steps)]
    if not candidates:
        return None
    errors = []
    for i, path in enumerate(candidates):
        try:
            state = read(path)
        except CheckpointMismatch:
            raise
        except CheckpointError as exc:
            errors.append(str(exc))
            if i + 1 < len(candidates):
                LOG.warning("%s; falling back to the previous checkpoint %s", exc, candidates[i + 1])
            continue
        if errors:
            LOG.warning("resuming from %s instead of the newest checkpoint (see above)", path)
        return path, state
    raise CheckpointError(f"no readable checkpoint in {directory}: " + " | ".join(errors) +
                          f". Delete the broken files (or the folder {directory}) to train from "
                          "the start")


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------
class _HashingWriter:
    """A file object that hashes what torch.save writes through it."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.sha = hashlib.sha256()

    def write(self, data) -> int:
        self.sha.update(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


def write(directory: str | Path, state: dict, *, keep_last: int = 2,
          check_finite: bool = True) -> Path:
    """Write ``state`` as the checkpoint of its step, then its hash, then the 'latest' pointer;
    prune older step files beyond ``keep_last`` (the 'best' one is kept). A state with a NaN or
    inf is refused (NonFiniteCheckpoint) before anything is written."""
    directory = Path(directory)
    path = directory / step_file(state["step"])
    previous = read_pointer(directory, LATEST)
    hashes: list[str] = []
    # The trainer checks first (harness.train.finite, with a fuller message) and passes
    # check_finite=False; this guards every other writer.
    bad = first_nonfinite((state.get("method") or {}).get("state") or {}) if check_finite else None
    if bad is not None:
        raise NonFiniteCheckpoint(
            f"refusing to write checkpoint {path}: the state holds non-finite values: "
            f"{bad.describe()}; 'latest' ({previous.name if previous else 'none'}) is unchanged")

    def save(f: BinaryIO) -> None:
        w = _HashingWriter(f)
        torch.save(state, w)
        hashes.append(w.sha.hexdigest())

    try:
        atomic_write(path, save)
        atomic_write_text(directory / (path.name + ".sha256"), f"{hashes[0]}  {path.name}\n")
        atomic_write_text(directory / LATEST, path.name + "\n")
    except OutputError as exc:
        kept = (f"the previous checkpoint {previous} and the 'latest' pointer are unchanged"
                if previous is not None else "no earlier checkpoint exists")
        raise CheckpointWriteError(
            f"cannot write checkpoint {path}: {_reason(exc)}; {kept}. Make {directory} "
            "writable or free space, then run the same command to resume") from exc
    prune(directory, keep_last)
    return path


def set_best(directory: str | Path, path: Path, metric: float | None = None) -> None:
    text = path.name + "\n" + (f"metric={metric!r}\n" if metric is not None else "")
    try:
        atomic_write_text(Path(directory) / BEST, text)
    except OutputError as exc:
        raise CheckpointWriteError(f"cannot write the 'best' pointer in {directory}: "
                              f"{_reason(exc)}") from exc


def _reason(exc: OSError) -> str:
    """The operating system's words for a failed write (without harness.core.io's wrapping)."""
    cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
    return cause.strerror or str(cause)


def best_metric(directory: str | Path) -> float | None:
    try:
        lines = (Path(directory) / BEST).read_text().splitlines()
    except OSError:
        return None
    for line in lines[1:]:
        if line.startswith("metric="):
            try:
                return float(line.split("=", 1)[1])
            except ValueError:
                return None
    return None


# The temporary names harness.core.io.atomic_write gives the files of this folder
# (".<name>.<random>.tmp").
_TEMP_FILE = re.compile(r"^\.(step_\d+\.pt(\.sha256)?|latest|best)\.[A-Za-z0-9_]+\.tmp$")


def remove_stale_temp_files(directory: str | Path) -> list[Path]:
    """Delete the temporary files a killed write left behind (only this module's own names).

    Called when training starts, by the one process that writes checkpoints: no write of this
    run directory is in progress then.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for p in sorted(directory.iterdir()):
        if _TEMP_FILE.match(p.name) and p.is_file():
            try:
                p.unlink()
            except OSError as exc:
                LOG.warning("could not delete the stale temporary file %s: %s", p, exc.strerror)
                continue
            removed.append(p)
    if removed:
        LOG.warning("removed %d temporary file(s) left by an interrupted checkpoint write in %s: "
                    "%s", len(removed), directory, ", ".join(p.name for p in removed))
    return removed


def prune(directory: str | Path, keep_last: int) -> list[Path]:
    """Delete step files older than the newest ``keep_last`` (never 'latest' or 'best')."""
    if keep_last < 1:
        return []
    directory = Path(directory)
    protect = {read_pointer(directory, LATEST), read_pointer(directory, BEST)}
    files = list_checkpoints(directory)
    removed = []
    for _, p in files[:-keep_last]:
        if p in protect:
            continue
        for victim in (p, p.parent / (p.name + ".sha256")):
            try:
                os.unlink(victim)
            except FileNotFoundError:
                pass
            except OSError as exc:
                LOG.warning("could not delete old checkpoint %s: %s", victim, exc.strerror)
        removed.append(p)
    return removed
