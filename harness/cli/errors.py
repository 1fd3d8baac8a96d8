"""How the command line reports an error: which exceptions are the user's to fix (one line on
stderr, exit status 2), which OSErrors are the environment's (a full disk, a read-only folder), and
the one-line message of an exception."""
from __future__ import annotations

import errno

EXIT_USER_ERROR = 2


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exceptions that are the user's to fix: one line, exit status 2."""
    from evaluators.evaluate import EvaluationError
    from evaluators.pairing import PairingError
    from harness.core.records import RecordError
    from evaluators.segmenters._common import CheckpointMismatch as SegmenterCheckpointMismatch
    from evaluators.segmenters.trained import TrainedSegmenterError
    from harness.core.weights import WeightsHashMismatch, WeightsUnavailable
    from harness.core.config import ConfigError
    from harness.core.data.base import DatasetError
    from harness.core.errors import UserError
    from harness.generate import GenerationError
    from harness.core.io import OutputError, UnreadableFileError
    from harness.core.registry import RegistryError
    from harness.rundir import RunError
    from harness.train.checkpoint import CheckpointMismatch
    from methods.base import NotSupported

    return (ConfigError, DatasetError, RegistryError, WeightsUnavailable, WeightsHashMismatch,
            OutputError, RunError, NotSupported, GenerationError, EvaluationError, PairingError,
            RecordError, TrainedSegmenterError, SegmenterCheckpointMismatch, CheckpointMismatch,
            UserError, UnreadableFileError)


# An OSError with one of these errno values is the environment's (a full disk, a read-only or
# missing folder), not a bug: one line naming the path, exit status 2.
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES,
                                 errno.EPERM, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG})


def environment_error(exc: BaseException) -> OSError | None:
    """The OSError of ``exc`` or of its causes that is the environment's to fix, if any."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def is_training_error(exc: BaseException) -> bool:
    try:
        from harness.train.guards import TrainingError
    except ImportError:
        return False
    return isinstance(exc, TrainingError)


def message(exc: BaseException) -> str:
    """The error's own message (which names the file / key); continuation lines indented."""
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    if isinstance(exc, OSError) and exc.filename is None and exc.strerror:
        text = exc.strerror  # OutputError(errno, message): the message without "[Errno n]"
    lines = [ln.rstrip() for ln in str(text).strip().splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    return "\n  ".join([lines[0]] + [ln.strip() if not ln.startswith(" ") else ln.rstrip()
                                     for ln in lines[1:]])
