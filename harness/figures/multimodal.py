"""Multimodal figures from files runs already wrote.

- :func:`multimodal_figure`: K samples per label map of a multimodal method, read from the
  diversity samples its generation wrote (``manifest.json`` ``diversity``: key -> K files);
  rows = label maps, columns = label map, real image, sample 1..K.
- :func:`edit_figures`: one figure per ``harness edit`` result of a run (GroupDNet's class-wise
  re-sampling, morphing, mixing, manipulation), read from ``<run>/edits/*/manifest.json``: one row
  of the images in the order the edit wrote them, captioned as recorded.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from harness.figures.common import (FIGURES_DIR, display_name, eval_dataset, find_samples,
                                    pick_keys, read_image, save, slug)
from harness.figures.compare import DPI, cell_boxes, dataset_row, draw_grid, figure_stem
from harness.rundir import RunDir, RunError

EDIT_OPERATIONS = ("resample", "morph", "mix", "manipulate")


def multimodal_figure(dataset: str, method: str, *, k: int | None = None,
                      keys: Sequence[str] | None = None, n: int = 4,
                      runs_dir: str | Path = "runs", out_dir: str | Path = FIGURES_DIR,
                      protocol: str | None = None, inference: str | None = None,
                      run: str | Path | None = None) -> Path:
    """Write ``multimodal-<dataset>-<method>.{png,pdf,json}``; returns the PNG path."""
    s = find_samples(runs_dir, dataset, method, protocol_id=protocol, inference=inference,
                     run=run)
    diversity = s.manifest.get("diversity") or {}
    if not diversity:
        why = ("the method is not multimodal" if not s.manifest.get("multimodal")
               else "the protocol generated no diversity samples")
        raise RunError(f"{method!r} ({s.run.path}, {s.protocol_id}/{s.inference}) has no "
                       f"multiple samples per label map: {why}")
    chosen = pick_keys(sorted(diversity), keys, n, f"with several samples in {s.out_dir}")
    have = min(len(diversity[key]) for key in chosen)
    k = have if k is None else k
    if k > have:
        raise RunError(f"--k {k}: {s.out_dir} holds {have} samples per label map")
    data = eval_dataset(s)
    rows, cells = [], []
    for key in chosen:
        label, real = dataset_row(data, key)
        paths = [s.out_dir / rel for rel in diversity[key][:k]]
        rows.append([label, real] + [read_image(p) for p in paths])
        cells.append([{"kind": "label"}, {"kind": "real"}] +
                     [{"kind": "sample", "file": str(p)} for p in paths])
    titles = ["label map", "real"] + [f"sample {i + 1}" for i in range(k)]
    fig, axes = draw_grid(rows, titles, chosen, suptitle=f"{display_name(method)}: {k} samples "
                                                         "per label map")
    boxes = cell_boxes(fig, axes)
    for r, row in enumerate(cells):
        for c, cell in enumerate(row):
            cell["box"] = boxes[r][c]
    sidecar = {"figure": "multimodal", "dataset": dataset, "keys": chosen, "k": k,
               "source": s.source(), "titles": titles, "cells": cells,
               "size": [int(fig.bbox.width), int(fig.bbox.height)]}
    return save(fig, Path(out_dir), figure_stem("multimodal", dataset, [method]), sidecar,
                dpi=DPI)


def edit_figures(run: str | Path, *, operations: Sequence[str] = EDIT_OPERATIONS,
                 out_dir: str | Path = FIGURES_DIR) -> list[Path]:
    """One figure per edit of ``run`` (``edit-<dataset>-<method>-<edit id>``); PNG paths."""
    rd = RunDir.open(run)
    manifests = sorted((rd.path / "edits").glob("*/manifest.json"))
    picked = []
    for mf in manifests:
        doc = json.loads(mf.read_text())
        if doc.get("operation") in operations:
            picked.append((mf.parent, doc))
    if not picked:
        raise RunError(f"{rd.path / 'edits'}: no {'/'.join(operations)} edit to draw; write one "
                       f"first (`python -m harness edit resample --run {rd.path} --key KEY "
                       "--class CLASS`)")
    method, dataset = rd.path.parent.name, rd.path.parent.parent.name
    out = []
    for folder, doc in picked:
        images = [read_image(folder / e["file"]) for e in doc["images"]]
        captions = [str(e.get("caption", "")) for e in doc["images"]]
        params = doc.get("params") or {}
        maps = _label_maps(rd, params)
        images = [m for _, m in maps] + images
        captions = [c for c, _ in maps] + captions
        what = doc["operation"]
        if params.get("class_name"):
            what += f" of {params['class_name']}"
        where = params.get("key") or f"{params.get('from')} -> {params.get('to')}"
        fig, axes = draw_grid([images], captions, [""],
                              suptitle=f"{display_name(method)}: {what} ({where})")
        boxes = cell_boxes(fig, axes)[0]
        sidecar = {"figure": "edit", "dataset": dataset, "method": method, "run": str(rd.path),
                   "edit": str(folder), "operation": doc["operation"], "params": params,
                   "cells": [{"caption": c, "kind": "label"} for c, _ in maps] +
                            [{"caption": e.get("caption", ""), "file": str(folder / e["file"])}
                             for e in doc["images"]],
                   "size": [int(fig.bbox.width), int(fig.bbox.height)]}
        for cell, box in zip(sidecar["cells"], boxes):
            cell["box"] = box
        out.append(save(fig, Path(out_dir), slug(f"edit-{dataset}-{method}-{folder.name}"),
                        sidecar, dpi=DPI))
    return out


def _label_maps(rd: RunDir, params: dict) -> list[tuple[str, object]]:
    """The edited label map(s) in the dataset's colours: ``key`` (re-sampling, mixing,
    manipulation) or ``from`` and ``to`` (morphing); [] when the split cannot be read."""
    from harness.core.data.base import DatasetError
    from harness.stages.common import build_dataset

    keys = [params[k] for k in ("key", "from", "to") if params.get(k)]
    if not keys:
        return []
    cfg = rd.load_config()
    try:
        data = build_dataset(cfg.dataset, params.get("split", "val"), train=False,
                             seed=cfg.train.seed)
        return [(f"label {k}", dataset_row(data, k)[0]) for k in dict.fromkeys(keys)]
    except (DatasetError, RunError) as exc:
        import logging

        logging.getLogger("harness").warning("figure edits: no label map for %s (%s)", keys, exc)
        return []
