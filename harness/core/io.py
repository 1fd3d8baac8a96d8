"""Atomic file writes: temp file in the same folder + fsync + rename, so a reader (or a crash)
never sees half a file and an existing file is only replaced by a complete one.

New files get the mode ``open()`` would give them (0666 minus the umask: 0644 by default), not
mkstemp's private 0600."""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


class OutputError(OSError):
    """A result could not be written (read-only or full destination); names the path."""


class UnreadableFileError(ValueError):
    """A file the harness reads back (run.json, metrics.json, a samples manifest) is not what
    it should be: broken JSON or the wrong shape. Names the file."""


def _umask() -> int:
    # /proc tells the umask without changing it (os.umask is a set-and-restore, racy in threads).
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """The permission bits a newly created file gets: 0666 minus the process umask."""
    return 0o666 & ~_umask()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _os_error_in(exc: BaseException) -> OSError | None:
    """The OSError behind ``exc``: itself, or one it was raised from or while handling (torch's
    zip writer turns a full disk into a RuntimeError raised while handling the OSError)."""
    for _ in range(10):
        if exc is None or isinstance(exc, OSError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def folder_problem(path: str | Path) -> str:
    """Why folders cannot be created at ``path``, in words, when a part of it is a file."""
    for p in [Path(path), *Path(path).parents]:
        if p.exists():
            return "" if p.is_dir() else f"{p} is a file, not a folder"
    return ""


fsync_dir = _fsync_dir  # make a rename in ``path`` durable


def atomic_write(path: str | Path, write: Callable[[io.BufferedWriter], None]) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OutputError(exc.errno, f"cannot write {path}: {exc.strerror} (is the folder "
                                     f"{path.parent} writable and is there free space?)") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), new_file_mode())
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        os_error = _os_error_in(exc)
        if os_error is not None:
            raise OutputError(os_error.errno, f"cannot write {path}: "
                                              f"{os_error.strerror or os_error} (the previous "
                                              "version, if any, is left untouched)") from os_error
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def atomic_torch_save(path: str | Path, obj: Any) -> Path:
    import torch
    return atomic_write(path, lambda f: torch.save(obj, f))


def read_json(path: str | Path, *, expect: type | None = None) -> Any:
    """The JSON in ``path``; ``expect`` (e.g. dict) checks the top-level type."""
    path = Path(path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UnreadableFileError(
            f"{path} is not valid JSON ({exc}); it may be from an interrupted write of an older "
            "version or edited by hand: delete or repair it (the harness recomputes what it "
            "held)") from exc
    if expect is not None and not isinstance(data, expect):
        raise UnreadableFileError(f"{path} holds a JSON {type(data).__name__}, expected a JSON "
                                  f"{'object' if expect is dict else expect.__name__}: delete or "
                                  "repair it")
    return data
