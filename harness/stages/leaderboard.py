"""The leaderboard stage: rewrite results/leaderboard.* from every metrics.json under the runs
folder(s) (the tables themselves: :mod:`harness.results`)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence


def refresh_leaderboard(runs_dir: str | Path | Sequence[str | Path], results_dir: str | Path, *,
                        formats: Sequence[str] = ("csv", "md", "latex"),
                        published: bool = True) -> list[Path]:
    """Rewrite results/leaderboard.* from every metrics.json under the runs folder(s)."""
    from harness.results import build as lb

    paths = [runs_dir] if isinstance(runs_dir, (str, Path)) else list(runs_dir)
    return lb.write_leaderboard([Path(p) for p in paths], Path(results_dir),
                                formats=tuple(formats), published=published)
