"""One writer per run directory: an inter-process lock (``filelock``) held for a whole command.

The lock file lives beside the run directory, ``<runs>/<dataset>/<method>/.<run-id>.lock``, not
inside it, so that ``--fresh`` (which deletes the directory) and ``import-official --force``
(which swaps it) never delete a lock that someone holds. The holder writes who it is (pid, host,
command, start time) into the lock file, so a second writer can say whom it is waiting for.

Readers (``leaderboard``, reading metrics.json) take no lock: every file is replaced atomically,
so they always see a whole old or a whole new version. See docs/reliability.md for which verbs
lock and why the granularity is the whole command.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shutil
import socket
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from harness.core import dist as hdist
from harness.core.io import OutputError, folder_problem
from harness.rundir import RunError

LOG = logging.getLogger("harness")

# How often a waiting writer re-checks the lock, and repeats its message (seconds).
POLL_S = 0.2
REMIND_S = 60.0


class RunLocked(RunError):
    """Another process holds the run directory's lock and the caller asked not to wait."""


def lock_path(run_path: str | Path) -> Path:
    p = Path(run_path)
    return p.parent / f".{p.name}.lock"


def _holder(path: Path) -> str:
    """Who holds the lock, as written by the holder (empty when unknown)."""
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return ""
    if not isinstance(info, dict) or "pid" not in info:
        return ""
    return (f"pid {info.get('pid')} on {info.get('host', '?')}, `{info.get('command', '?')}`, "
            f"since {info.get('since', '?')}")


def _write_holder(path: Path) -> None:
    # A second descriptor: the flock belongs to filelock's open file, the text is only a note.
    info = {"pid": os.getpid(), "host": socket.gethostname(),
            "command": " ".join(["harness"] + sys.argv[1:])[:300],
            "since": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    try:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, (json.dumps(info) + "\n").encode())
        finally:
            os.close(fd)
    except OSError:
        pass  # the note is optional; the lock itself is held


def _acquire(run_path: Path, wait: bool):
    from filelock import FileLock, Timeout

    path = lock_path(run_path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path))
        lock.acquire(timeout=0)
    except Timeout:
        holder = _holder(path)
        who = f" (held by {holder})" if holder else ""
        if not wait:
            raise RunLocked(f"run {run_path} is in use by another process{who}; lock file "
                            f"{path}. Wait for it to finish, or run without --no-wait to wait "
                            "for it") from None
        LOG.warning("waiting for run %s: another process is writing to it%s; lock file %s",
                    run_path, who, path)
        while True:
            try:
                lock.acquire(timeout=REMIND_S, poll_interval=POLL_S)
                break
            except Timeout:
                holder = _holder(path)
                LOG.warning("still waiting for run %s%s", run_path,
                            f" (held by {holder})" if holder else "")
    except OSError as exc:
        why = folder_problem(path.parent) or f"is {path.parent} a writable folder?"
        raise OutputError(exc.errno, f"cannot create the run directory {run_path} (its lock file "
                                     f"{path.name}): {exc.strerror or exc}; {why}") from exc
    _write_holder(path)
    return lock


@contextmanager
def run_lock(run_path: str | Path, *, wait: bool = True) -> Iterator[None]:
    """Hold the lock of ``run_path`` for the body: rank 0 takes it, the other ranks wait for
    rank 0's answer (so a refused lock stops every rank with the same error)."""
    run_path = Path(run_path)
    lock = None
    error: Exception | None = None
    if hdist.info().is_main:
        try:
            lock = _acquire(run_path, wait)
        except (RunError, OutputError) as exc:
            error = exc
    failed = hdist.broadcast_object(None if error is None else str(error))
    if error is not None:
        raise error
    if failed is not None:
        raise RunLocked(failed)
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def remove_lock_file(run_path: str | Path) -> None:
    """Delete the lock file of a run whose directory was removed (call while holding the
    lock: filelock re-checks that the file it locked still has a name, so a waiter then starts
    over on a new file instead of sharing an unlinked one)."""
    try:
        lock_path(run_path).unlink()
    except OSError:
        pass


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` (itself included) that does not exist yet."""
    missing = None
    for p in [path, *path.parents]:
        if p.exists():
            break
        missing = p
    return missing


def _has_checkpoint(run_path: Path) -> bool:
    from harness.train import checkpoint as ckpt

    return ckpt.find_checkpoint(run_path / "checkpoints", "latest") is not None


def _undo_start(run_path: Path, created: Path) -> None:
    """Remove the run directory this command created, its lock file and the parent folders it
    created, where empty (never a folder another run has put something into since)."""
    shutil.rmtree(run_path, ignore_errors=True)
    remove_lock_file(run_path)
    p = run_path.parent
    while p != created.parent:
        try:
            p.rmdir()
        except OSError:
            break
        p = p.parent


@contextmanager
def claimed_run(run_path: str | Path, *, wait: bool = True) -> Iterator[None]:
    """:func:`run_lock` for a command that may create the run (train, run): when the command
    fails before the run has a checkpoint and the run directory did not exist before, what it
    created is removed, so a failed start leaves no stray run directory behind."""
    run_path = Path(run_path)
    created = _first_missing(run_path)
    with run_lock(run_path, wait=wait):
        try:
            yield
        except BaseException:
            if created is not None and hdist.info().is_main and not _has_checkpoint(run_path):
                _undo_start(run_path, created)
            raise
