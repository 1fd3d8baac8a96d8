"""What `evaluate` does after recording: keep an image folder's record as an external row and
refresh results/leaderboard.* as `run` does."""
from __future__ import annotations

import logging
from pathlib import Path

LOG = logging.getLogger("harness")


def runs_root_of(run_dir: Path) -> Path:
    """runs/<dataset>/<method>/<run-id> -> runs."""
    return Path(run_dir).resolve().parents[2]


def after_evaluate(record: dict, *, run_dir: Path | None, runs_dir: str | None,
                   results_dir: str | Path) -> list[Path]:
    from harness.results.external import add_external
    from harness.stages.leaderboard import refresh_leaderboard

    if run_dir is None:
        stored = add_external(results_dir, record)
        LOG.info("evaluate: external row %r kept in %s (remove it with `python -m harness "
                 "leaderboard --remove-external %s`)", record.get("variant"), stored,
                 record.get("variant"))
    runs = Path(runs_dir) if runs_dir else (runs_root_of(run_dir) if run_dir else Path("runs"))
    written = refresh_leaderboard(runs, results_dir)
    for p in written:
        LOG.info("evaluate: refreshed %s", p)
    return written
