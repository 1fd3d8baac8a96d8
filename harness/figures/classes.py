"""Per-class IoU across methods: a heatmap (classes x methods) and a bar chart of the classes
where the methods differ most (largest max - min IoU).

Reads each method's recorded evaluation (``metrics.json``: mIoU ``per_class`` and
``pixel_share``) of the most recent run of that method on the dataset; every method must have
been evaluated under the same protocol (id, which includes its hash) and inference mode, or the
figure is refused. Rows (most frequent class first) are labelled with the class's share of the
ground-truth pixels.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from harness.figures.common import FIGURES_DIR, display_name, method_runs, pyplot, save, slug
from harness.rundir import RunError

SPREAD_TOP = 8


def _records(runs_dir, dataset, method, protocol, inference):
    from harness.core.records import read_metrics

    found = []
    for rd in method_runs(runs_dir, dataset, method):
        if not rd.metrics_file.is_file():
            continue
        for key, rec in sorted(read_metrics(rd.metrics_file)["evaluations"].items()):
            m = (rec.get("metrics") or {}).get("miou") or {}
            if m.get("status") != "ok" or not m.get("per_class"):
                continue
            pid = (rec.get("protocol") or {}).get("id", "")
            name = (rec.get("protocol") or {}).get("name", "")
            if protocol and protocol not in (pid, name) and not pid.startswith(f"{protocol}-"):
                continue
            if inference and rec.get("inference") != inference:
                continue
            found.append((rd, key, rec))
    return found


def method_ious(dataset: str, methods: Sequence[str], *, runs_dir: str | Path = "runs",
                protocol: str | None = None, inference: str | None = None):
    """(pandas DataFrame classes x display names of IoU %, pixel share % per class, sources)."""
    import pandas as pd

    columns, share, sources, key0 = {}, {}, [], None
    for method in methods:
        found = _records(runs_dir, dataset, method, protocol, inference)
        if key0 is not None:
            found = [f for f in found if f[1] == key0]
        if not found:
            want = key0 or "/".join(x for x in (protocol, inference) if x) or "any protocol"
            raise RunError(f"{method!r} on {dataset!r}: no evaluation with per-class IoU for "
                           f"{want} under {runs_dir}; evaluate a run first (`python -m harness "
                           f"evaluate --run RUN`)")
        rd, key, rec = found[0]
        key0 = key
        m = rec["metrics"]["miou"]
        columns[display_name(method)] = m["per_class"]
        share = share or dict(m.get("pixel_share") or {})
        sources.append({"method": method, "display_name": display_name(method),
                        "run": str(rd.path), "evaluation": key, "miou": m["value"]})
    frame = pd.DataFrame(columns).astype(float)
    # Most frequent classes first (rows), as in per_class_iou.csv.
    order = sorted(frame.index, key=lambda c: -(share.get(c) if share.get(c) is not None else -1))
    return frame.loc[order], share, sources


def _row_label(cls: str, share: dict) -> str:
    v = share.get(cls)
    return f"{cls} ({v:.1f}%)" if v is not None else cls


def classes_figure(dataset: str, methods: Sequence[str], *, runs_dir: str | Path = "runs",
                   out_dir: str | Path = FIGURES_DIR, protocol: str | None = None,
                   inference: str | None = None, top: int = SPREAD_TOP) -> tuple[Path, Path]:
    """Write ``classes-<dataset>-heatmap`` and ``classes-<dataset>-spread`` (.png/.pdf/.json);
    returns the two PNG paths."""
    if not methods:
        raise RunError("--methods: name at least one method")
    frame, share, sources = method_ious(dataset, methods, runs_dir=runs_dir, protocol=protocol,
                                        inference=inference)
    plt = pyplot()
    stem = slug(f"classes-{dataset}-" + "-".join(methods))
    values = frame.to_numpy()
    labels = [_row_label(c, share) for c in frame.index]
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(frame.columns), 0.8 + 0.28 * len(frame)),
                           dpi=100)
    im = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", vmin=0, vmax=100,
                   aspect="auto")
    ax.set_xticks(range(len(frame.columns)), list(frame.columns), fontsize=8)
    ax.set_yticks(range(len(frame)), labels, fontsize=7)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = values[i, j]
            ax.text(j, i, "-" if np.isnan(v) else f"{v:.0f}", ha="center", va="center",
                    fontsize=6, color="white" if np.isnan(v) or v < 60 else "black")
    ax.set_title(f"per-class IoU (%), {dataset}", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.05)
    fig.tight_layout()
    common = {"dataset": dataset, "methods": sources, "classes": list(frame.index),
              "pixel_share": share}
    heat = save(fig, Path(out_dir), f"{stem}-heatmap",
                {"figure": "classes-heatmap", **common,
                 "iou": {c: [None if np.isnan(v) else float(v) for v in frame.loc[c]]
                         for c in frame.index}})
    spread = (frame.max(axis=1) - frame.min(axis=1)).dropna().sort_values(ascending=False,
                                                                          kind="stable")
    picked = list(spread.index[:max(1, top)])
    bars_wide = 0.25 * len(picked) * max(1, len(frame.columns)) + 1.5
    fig, ax = plt.subplots(figsize=(min(9.0, max(4.0, bars_wide)), 3.0), dpi=100)
    width = 0.8 / max(1, len(frame.columns))
    for j, col in enumerate(frame.columns):
        ax.bar(np.arange(len(picked)) + (j - (len(frame.columns) - 1) / 2) * width,
               frame.loc[picked, col].fillna(0).to_numpy(), width, label=col)
    ax.set_xticks(range(len(picked)), [_row_label(c, share) for c in picked], rotation=30,
                  ha="right", fontsize=7)
    ax.set_ylabel("IoU (%)")
    ax.set_title("classes where the methods differ most", fontsize=9)
    ax.legend(fontsize=7, ncol=min(4, len(frame.columns)))
    ax.set_ylim(0, 115)  # room for the legend above the bars
    fig.tight_layout()
    bars = save(fig, Path(out_dir), f"{stem}-spread",
                {"figure": "classes-spread", **common, "picked": picked,
                 "spread": {c: float(spread[c]) for c in picked}})
    return heat, bars
