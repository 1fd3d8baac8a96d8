"""Stop signals as exceptions, so that a stage interrupted by SIGTERM records that it was.

Python turns Ctrl-C (SIGINT) into KeyboardInterrupt, but SIGTERM - what ``kill``, batch
schedulers and torchrun send - ends the process at once by default: no ``except`` or ``finally``
block runs, and a status file keeps saying 'running'. Inside :func:`stop_signals_raise` SIGTERM
raises :class:`Interrupted` (a KeyboardInterrupt) instead; files being written are not
corrupted by it (:mod:`harness.core.io` writes through temporary files and renames).
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived; ``exit_code`` is the shell's convention, 128 + signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum
        self.exit_code = 128 + signum

    def __reduce__(self):
        return (Interrupted, (self.signum,))


def _raise(signum: int, frame) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def stop_signals_raise(signals: tuple[int, ...] = (signal.SIGTERM,)) -> Iterator[None]:
    """Within the block, ``signals`` raise Interrupted (main thread only: Python delivers
    signals there; elsewhere this does nothing). The previous handlers are restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


def was_interrupted(exc: BaseException) -> bool:
    """True for Ctrl-C and stop signals (also the runner's TrainingInterrupted, which carries the
    signal number), False for failures."""
    return isinstance(exc, KeyboardInterrupt) or getattr(exc, "signum", None) is not None
