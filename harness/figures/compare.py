"""The comparison grid papers print: one row per label map; columns = label map (the dataset's
colours), real image, then each method's output, titled with the methods' display names.

Uses the samples each run already generated (the first seed of its manifest); a method without
samples, or a key some method did not generate, is a RunError naming what is missing. The
sidecar JSON (same stem) records which run / protocol / inference / seed / file each column and
cell came from, and the pixel box of every cell in the PNG (so a test, or a reader, can check a
cell against its source file).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from harness.figures.common import (FIGURES_DIR, Samples, display_name, eval_dataset,
                                    find_samples, pick_keys, pyplot, read_image, save, slug,
                                    to_hwc)
from harness.figures.palette import colorize
from harness.rundir import RunError

LOG = logging.getLogger("harness")

CELL_INCHES = 1.5
DPI = 100


def figure_stem(kind: str, dataset: str, parts: Sequence[str]) -> str:
    return slug(f"{kind}-{dataset}-" + "-".join(parts))


def dataset_row(dataset, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(colourised label map, real image) of ``key`` as uint8 HWC arrays."""
    keys = dataset.keys()
    if key not in keys:
        raise RunError(f"key {key!r} is not in {dataset.name} split {dataset.split!r}")
    item = dataset[keys.index(key)]
    info = dataset.info
    label = to_hwc(colorize(item["label"], info.num_label_channels, info.name))
    real = ((item["image"].float().clamp(-1, 1) + 1) * 127.5).round().byte()
    return label, to_hwc(real)


def cell_boxes(fig, axes_grid) -> list[list[list[int]]]:
    """[row][col] -> [x0, y0, x1, y1] pixels of each image in the saved PNG (origin top left)."""
    fig.canvas.draw()
    height = fig.bbox.height
    out = []
    for row in axes_grid:
        boxes = []
        for ax in row:
            b = ax.get_window_extent()
            boxes.append([int(round(b.x0)), int(round(height - b.y1)), int(round(b.x1)),
                          int(round(height - b.y0))])
        out.append(boxes)
    return out


def draw_grid(rows: list[list[np.ndarray]], titles: Sequence[str], row_labels: Sequence[str],
              suptitle: str | None = None):
    """A matplotlib figure with one image per cell; returns (figure, axes as [row][col])."""
    plt = pyplot()
    nr, nc = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(nr, nc, figsize=(CELL_INCHES * nc + 0.4, CELL_INCHES * nr + 0.5),
                             dpi=DPI, squeeze=False)
    for i, row in enumerate(rows):
        for j in range(nc):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(row):
                ax.imshow(row[j], interpolation="nearest")
            else:
                ax.set_axis_off()
            if i == 0 and j < len(titles):
                ax.set_title(titles[j], fontsize=9)
            if j == 0:
                ax.set_ylabel(row_labels[i], fontsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    # Leave room for the suptitle (tight_layout does not account for it).
    top = 1 - 0.3 / fig.get_figheight() if suptitle else 1
    fig.tight_layout(pad=0.3, rect=(0, 0, 1, top))
    return fig, [list(r) for r in axes]


def compare_figure(dataset: str, methods: Sequence[str], *, keys: Sequence[str] | None = None,
                   n: int = 6, runs_dir: str | Path = "runs",
                   out_dir: str | Path = FIGURES_DIR, protocol: str | None = None,
                   inference: str | None = None) -> Path:
    """Write ``compare-<dataset>-<methods>.{png,pdf,json}``; returns the PNG path."""
    if not methods:
        raise RunError("--methods: name at least one method")
    sources: list[Samples] = [find_samples(runs_dir, dataset, m, protocol_id=protocol,
                                           inference=inference) for m in methods]
    files = [s.files() for s in sources]
    common = set(files[0]).intersection(*files[1:])
    for s, f in zip(sources, files):
        if keys:
            missing = [k for k in keys if k not in f]
            if missing:
                raise RunError(f"{s.method!r} ({s.run.path}, {s.protocol_id}/{s.inference}) has "
                               f"no sample for {', '.join(missing)}")
    chosen = pick_keys(sorted(common), keys, n, "of every method (" + ", ".join(methods) + ")")
    data = eval_dataset(sources[0])
    rows, cells = [], []
    for key in chosen:
        label, real = dataset_row(data, key)
        row = [label, real]
        cell = [{"kind": "label"}, {"kind": "real"}]
        for s, f in zip(sources, files):
            row.append(read_image(f[key]))
            cell.append({"kind": "method", "method": s.method, "file": str(f[key])})
        rows.append(row)
        cells.append(cell)
    titles = ["label map", "real"] + [display_name(m) for m in methods]
    fig, axes = draw_grid(rows, titles, chosen)
    boxes = cell_boxes(fig, axes)
    for r, row in enumerate(cells):
        for c, cell in enumerate(row):
            cell["box"] = boxes[r][c]
    columns = [{"title": "label map", "source": f"{data.name} {data.split} labels"},
               {"title": "real", "source": f"{data.name} {data.split} images"}]
    columns += [{"title": display_name(s.method), **s.source()} for s in sources]
    sidecar = {"figure": "compare", "dataset": dataset, "split": data.split, "keys": chosen,
               "columns": columns, "cells": cells,
               "size": [int(fig.bbox.width), int(fig.bbox.height)]}
    png = save(fig, Path(out_dir), figure_stem("compare", dataset, methods), sidecar, dpi=DPI)
    for col in columns[2:]:
        LOG.info("figure compare: column %s from %s (%s/%s, seed %s)", col["title"], col["run"],
                 col["protocol_id"], col["inference"], col["seed"])
    return png
