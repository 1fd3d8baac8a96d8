"""What every CLI verb shares: JSON on stdout, opening a run directory."""
from __future__ import annotations

import json
import sys
from typing import Any


def emit_json(data: Any) -> None:
    """Machine output: indented JSON on stdout (logs and progress go to stderr)."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def open_run(path: str):
    """(RunDir, its resolved config) of an existing run directory."""
    from harness.rundir import RunDir

    rd = RunDir.open(path)
    return rd, rd.load_config()
