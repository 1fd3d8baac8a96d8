"""How a leaderboard row names its training seeds: "1 seed", "3 seeds".

A reproduced row aggregates every run of one variant (same configuration but the training seed,
harness.results.leaderboard); its ± over several runs is the std over training seeds, which the
row's seed count qualifies (docs/statistics.md#training-seeds). Runs that do not record their
training seed, or two runs of one seed, are counted as runs instead, so the count never claims
seeds it does not have.
"""
from __future__ import annotations

from harness.results.leaderboard import Row

HEADER = "Training seeds"
HEADER_TEX = "Seeds"


def seeds_label(row: Row) -> str:
    """The row's count of training seeds ("" for real-image and published rows)."""
    if row.kind != "reproduced":
        return ""
    k = len(row.train_seeds)
    if k and k == row.n_runs:
        return "1 seed" if k == 1 else f"{k} seeds"
    return "1 run" if row.n_runs == 1 else f"{row.n_runs} runs ({k} training seeds known)"
