"""The command line: ``python -m harness <verb> ...`` (see docs/cli.md).

Machine output (JSON, tables) goes to stdout; logs and progress bars go to stderr. A user error
(bad configuration, dataset, missing weights, unwritable output, ...) exits with status 2 and
ONE line on stderr; ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Sequence

from harness.cli.common import Formatter, common_options, example
from harness.cli.errors import (EXIT_USER_ERROR, environment_error, is_training_error, message,
                                user_error_types)

LOG = logging.getLogger("harness")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every verb; each verb group adds its own (harness/cli/<group>.py)."""
    parser = argparse.ArgumentParser(
        prog="python -m harness", formatter_class=Formatter,
        description="Train, generate, evaluate and compare semantic image synthesis methods "
                    "under one hashed evaluation protocol.",
        epilog=example("python -m harness run --method all --dataset synthetic "
                        "--allow-missing-weights"))
    common_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add(name: str, help: str, example_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, formatter_class=Formatter,
                           epilog=example(example_text))
        common_options(p)
        return p

    from harness.cli import edit, results, run_verbs, samples, tools
    for group in (run_verbs, samples, results, tools):
        group.add_parsers(add)
    edit.add_parser(add)
    from harness.cli import figures
    figures.add_parser(add)
    from harness.cli import report as report_cli  # the HTML report (harness/report)
    report_cli.add_parsers(add)
    from harness.cli import weights
    weights.add_parser(add)
    from harness.cli import compare
    compare.add_parser(add)
    return parser


def _setup_logging(debug: bool, quiet: bool) -> None:
    level = logging.DEBUG if debug else (logging.WARNING if quiet else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_harness_cli", False):
            root.removeHandler(h)
    handler._harness_cli = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    if not debug:
        for noisy in ("PIL", "matplotlib", "urllib3", "mmengine"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    debug = bool(getattr(args, "debug", False))
    _setup_logging(debug, bool(getattr(args, "quiet", False)))
    func: Callable[[argparse.Namespace], int] = args.func
    from harness.core.weights import configure, reset_configuration
    reset_configuration()  # one command, one configuration (main() may run several times)
    if getattr(args, "weights_dir", None):  # before $HARNESS_WEIGHTS_DIR (docs/weights.md)
        configure(weights_dir=args.weights_dir)
    try:
        errors = user_error_types()
    except Exception:  # noqa: BLE001 - a broken import must still reach the traceback path
        if debug:
            raise
        errors = ()
    try:
        return int(func(args) or 0)
    except errors as exc:
        if debug:
            raise
        sys.stderr.write(f"error: {message(exc)}\n")
        return EXIT_USER_ERROR
    except Exception as exc:
        # The runner's TrainingError (non-finite loss, out of memory, interruption, unreadable
        # checkpoint) explains itself and carries its exit status.
        code = getattr(exc, "exit_code", None)
        if not debug and isinstance(code, int) and is_training_error(exc):
            sys.stderr.write(f"error: {message(exc)}\n")
            return code
        env = None if debug else environment_error(exc)
        if env is None:
            raise
        where = f"{env.filename}: " if env.filename else ""
        sys.stderr.write(f"error: {where}{env.strerror or env} (check that the folder exists, "
                         "is writable and has free space)\n")
        return EXIT_USER_ERROR
    except KeyboardInterrupt as exc:
        # Ctrl-C, or SIGTERM turned into harness.interrupt.Interrupted (exit 128 + signal)
        sys.stderr.write(f"{str(exc) or 'interrupted'}\n")
        return int(getattr(exc, "exit_code", 130))
