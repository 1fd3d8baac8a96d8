"""Error kinds shared by every layer (foundation: imports nothing from the harness).

``UserError`` marks an exception as the user's to fix - a bad input file, a wrong option, a
checkpoint that does not fit - rather than a bug. Its message names the file or key and what was
expected; the command line prints it on one line and exits with status 2 (``--debug`` shows the
traceback). Any layer may derive its error types from it (methods included) without the command
line having to know them one by one.
"""
from __future__ import annotations


class UserError(Exception):
    """The user's to fix; the message names the file or key and what was expected (exit 2)."""
    exit_code = 2


def describe(exc: BaseException, limit: int = 300) -> str:
    """``Type: first line of the message`` - a library's multi-line error squeezed into a clause
    of a one-line user error."""
    text = str(exc).strip()
    first = text.splitlines()[0][:limit] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
