"""Training curves from ``<run>/train_log.jsonl``: one panel per numeric quantity (each loss,
each learning rate, throughput, and whatever periodic evaluation writes: any numeric key, nested
keys joined with '/'), one line per run, against the step.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from harness.figures.common import FIGURES_DIR, pyplot, save, slug
from harness.rundir import RunDir, RunError

# Bookkeeping, not quantities to plot.
SKIP = {"step", "epoch", "time_s", "wall"}


def _order(name: str) -> tuple[int, str]:
    """Losses first, then everything else (periodic evaluation), then learning rates and speed."""
    if name.startswith("loss/"):
        return 0, name
    if name.startswith("lr/") or name in ("images_per_s", "gpu_mem_max_gib"):
        return 2, name
    return 1, name


def flatten(entry: dict, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in entry.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, f"{name}/"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            if not prefix and k in SKIP:
                continue
            out[name] = float(v)
    return out


def read_log(run: RunDir) -> dict[str, list[tuple[int, float]]]:
    """quantity -> [(step, value)] of one run (lines without a step are ignored)."""
    path = run.path / "train_log.jsonl"
    if not path.is_file():
        raise RunError(f"{path}: no training log (was the run trained?)")
    series: dict[str, list[tuple[int, float]]] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            raise RunError(f"{path}:{n}: not a JSON line") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("step"), (int, float)):
            continue
        for k, v in flatten(entry).items():
            series.setdefault(k, []).append((int(entry["step"]), v))
    if not series:
        raise RunError(f"{path}: no numeric quantity with a step")
    return series


def curves_figure(runs: Sequence[str | Path], *, out_dir: str | Path = FIGURES_DIR,
                  quantities: Sequence[str] | None = None) -> Path:
    """Write ``curves-<run ids>.{png,pdf,json}``; returns the PNG path."""
    if not runs:
        raise RunError("figure curves: name at least one run directory")
    rds = [RunDir.open(r) for r in runs]
    logs = [read_log(rd) for rd in rds]
    names = sorted(set().union(*logs), key=_order)
    if quantities:
        unknown = [q for q in quantities if q not in names]
        if unknown:
            raise RunError(f"--quantity {', '.join(unknown)}: not in the logs "
                           f"(have: {', '.join(names)})")
        names = list(quantities)
    plt = pyplot()
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), dpi=100,
                             squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax, name in zip(flat, names):
        for rd, log in zip(rds, logs):
            pts = log.get(name)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="." if len(pts) < 30
                        else None, label=f"{rd.path.parent.name} {rd.run_id}")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in flat[len(names):]:
        ax.set_axis_off()
    if len(rds) > 1:
        flat[0].legend(fontsize=6)
    fig.tight_layout()
    stem = slug("curves-" + "-".join(rd.run_id for rd in rds))
    sidecar = {"figure": "curves", "runs": [str(rd.path) for rd in rds], "quantities": names,
               "points": {name: {rd.run_id: len(log.get(name, [])) for rd, log in
                                 zip(rds, logs)} for name in names}}
    return save(fig, Path(out_dir), stem, sidecar)
