"""COCO-Stuff instance maps from COCO ``instances_*.json`` polygons (no pycocotools needed).

Same semantics as SPADE's ``datasets/coco_generate_instance_map.py``: start from the image's
stuff+thing label map, then paint every polygon annotation of the image, in file order, with a
running counter 0, 1, 2, ... (one value per annotation); RLE (crowd) annotations are skipped and
polygon coordinates are shifted by -1. The result has boundaries between thing instances and
between stuff regions, which is all the edge map needs. Two deliberate differences: polygons
are rasterised with PIL (boundary pixels included, clipped at the image border instead of
wrapping around), and maps whose values exceed 255 are stored as 16-bit PNGs instead of
overflowing.

    python -m harness.core.data.coco_instances --annotations annotations/instances_val2017.json \\
        --labels datasets/coco_stuff/val_label --out datasets/coco_stuff/val_inst
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from harness.core.data.base import DatasetError
from harness.core.data.imageio import encode_png_ids, ids_to_array, open_ids, write_bytes


def instance_map(label: np.ndarray, annotations: Iterable[dict]) -> np.ndarray:
    """int64 [H, W]: ``label`` with each polygon annotation painted with its running index."""
    inst = np.asarray(label).astype(np.int64, copy=True)
    h, w = inst.shape
    count = 0
    for ann in annotations:
        segmentation = ann.get("segmentation")
        if not isinstance(segmentation, list):  # RLE: crowd regions are not instances here
            continue
        mask = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(mask)
        for polygon in segmentation:
            points = np.asarray(polygon, dtype=np.float64).reshape(-1, 2) - 1.0
            if len(points) >= 3:
                draw.polygon([tuple(p) for p in points.tolist()], fill=1)
            elif len(points) > 0:
                draw.point([tuple(p) for p in points.tolist()], fill=1)
        inst[np.asarray(mask, dtype=bool)] = count
        count += 1
    return inst


def build_instance_maps(annotation_file: str | Path, label_dir: str | Path, out_dir: str | Path,
                        *, progress: bool = True) -> int:
    """Write ``out_dir/<id>.png`` for every image of ``annotation_file``; returns the count.

    Label maps are read from ``label_dir/<id>.png`` (the stuffthingmaps). Every missing label map
    is reported in one DatasetError before anything is written."""
    annotation_file, label_dir, out_dir = Path(annotation_file), Path(label_dir), Path(out_dir)
    try:
        data = json.loads(annotation_file.read_text())
    except FileNotFoundError:
        raise DatasetError(f"COCO annotation file {annotation_file} does not exist (download "
                           "annotations_trainval2017.zip from http://images.cocodataset.org/"
                           "annotations/)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"COCO annotation file {annotation_file} is not valid JSON: {exc}") \
            from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise DatasetError(f"{annotation_file}: expected a COCO instances file with 'images' and "
                           "'annotations' lists")
    per_image: dict[int, list[dict]] = defaultdict(list)
    for ann in data["annotations"]:
        per_image[ann["image_id"]].append(ann)

    jobs = []
    missing = []
    for img in data["images"]:
        stem = Path(img["file_name"]).stem
        label_path = label_dir / f"{stem}.png"
        if not label_path.is_file():
            missing.append(label_path)
        jobs.append((img["id"], stem, label_path))
    if missing:
        shown = "\n".join(f"  {p}" for p in missing[:8])
        more = f"\n  ... and {len(missing) - 8} more" if len(missing) > 8 else ""
        raise DatasetError(f"{len(missing)} label map(s) of {annotation_file} are missing in "
                           f"{label_dir}:\n{shown}{more}\n(the stuffthingmaps PNGs, named like "
                           "the images)")
    out_dir.mkdir(parents=True, exist_ok=True)
    for image_id, stem, label_path in tqdm(jobs, desc="instance maps", disable=not progress,
                                           file=sys.stderr):
        label = ids_to_array(open_ids(label_path, "label map"))
        inst = instance_map(label, per_image.get(image_id, ()))
        write_bytes(out_dir / f"{stem}.png", encode_png_ids(inst))
    return len(jobs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.core.data.coco_instances",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotations", required=True,
                        help="COCO instances_{train,val}2017.json")
    parser.add_argument("--labels", required=True, help="folder of the stuffthingmaps PNGs")
    parser.add_argument("--out", required=True, help="folder for the instance PNGs")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        n = build_instance_maps(args.annotations, args.labels, args.out, progress=not args.quiet)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"written": n, "out": str(args.out)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
