"""ADE20K SceneParsing (ADEChallengeData2016): 150 classes + "other", no instances.

Generator input reproduces the official SPADE / CC-FPSE / SMIS behaviour: their ``postprocess``
meant to move "other" (raw 0) to the last channel but never writes the result back, so the raw
value is the channel: 0 = other -> channel 0, class k -> channel k, 151 channels. Set
``unknown_channel: last`` for the intended order (other -> 150, class k -> k - 1). Evaluation
('ade20k-150'): raw 0 is ignored (255), class k -> k - 1, as the segmenters predict.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np

from harness.core.config import runtime
from harness.core.data import DATASETS
from harness.core.data.base import (DatasetError, DatasetInfo, DatasetOptions, EvalLabelSpace,
                                    Record, SemanticDataset)
from harness.core.data.classnames import ADE20K_CLASSES
from harness.core.data.layout import (by_key, list_files, pair, require_dir, require_nonempty,
                                      resolve_root)

NUM_CLASSES = 150
IGNORE = 255
SPLIT_DIRS = {"train": "training", "val": "validation", "training": "training",
              "validation": "validation"}
FILE_PREFIX = {"training": "ADE_train_", "validation": "ADE_val_"}

LAYOUT = """\
  <root>/images/training/ADE_train_%08d.jpg        <root>/annotations/training/ADE_train_%08d.png
  <root>/images/validation/ADE_val_%08d.jpg        <root>/annotations/validation/ADE_val_%08d.png
  (<root> is the unzipped ADEChallengeData2016 folder, or a folder containing it; download
  http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip; splits train/val)"""


def eval_lut() -> tuple[int, ...]:
    """raw 0 ("other") -> ignore; class k (1..150) -> k - 1; anything else -> ignore."""
    return tuple([IGNORE] + list(range(NUM_CLASSES)) + [IGNORE] * (255 - NUM_CLASSES))


@dataclass
class ADE20KOptions(DatasetOptions):
    root: str | None = runtime("datasets/ade20k")
    preprocess: Literal["fixed", "resize_and_crop", "scale_width", "scale_width_and_crop",
                        "none"] = "resize_and_crop"
    load_size: int = 286
    crop_size: int = 256
    # "first": the official (no-op postprocess) order, other = channel 0; "last": other = 150.
    unknown_channel: Literal["first", "last"] = "first"


@DATASETS.register("ade20k")
class ADE20KDataset(SemanticDataset):
    """ADE20K SceneParsing: 150 classes + "other" (151 channels), no instances, 256x256."""

    name = "ade20k"
    Options = ADE20KOptions
    default_protocol = "ade20k-paper"

    def _root(self) -> Path:
        root = resolve_root(self.options.root, self.name)
        nested = root / "ADEChallengeData2016"
        if not (root / "images").is_dir() and (nested / "images").is_dir():
            return nested
        return root

    def scan(self) -> list[Record]:
        if self.split not in SPLIT_DIRS:
            raise DatasetError(f"ade20k has no split {self.split!r}; use train or val")
        sub = SPLIT_DIRS[self.split]
        root = self._root()
        img_dir = require_dir(root / "images" / sub, f"ade20k images (split {self.split!r})",
                              LAYOUT)
        ann_dir = require_dir(root / "annotations" / sub,
                              f"ade20k annotations (split {self.split!r})", LAYOUT)
        prefix = FILE_PREFIX[sub]
        images = by_key([p for p in list_files(img_dir, [".jpg", ".jpeg", ".png"])
                         if p.name.startswith(prefix)], lambda p: p.stem, "image")
        labels = by_key([p for p in list_files(ann_dir, [".png"]) if p.name.startswith(prefix)],
                        lambda p: p.stem, "label map")
        require_nonempty(images, "images", img_dir, f"{prefix}*.jpg", LAYOUT)
        require_nonempty(labels, "label maps", ann_dir, f"{prefix}*.png", LAYOUT)
        return pair(f"ade20k (split {self.split!r}, root {root})", images=images, labels=labels,
                    image_for=lambda k: img_dir / f"{k}.jpg",
                    label_for=lambda k: ann_dir / f"{k}.png", layout=LAYOUT)

    def input_lut(self) -> np.ndarray:
        lut = np.full(256, -1, dtype=np.int64)
        if self.options.unknown_channel == "first":
            lut[:NUM_CLASSES + 1] = np.arange(NUM_CLASSES + 1)
        else:
            lut[0] = NUM_CLASSES
            lut[1:NUM_CLASSES + 1] = np.arange(NUM_CLASSES)
        return lut

    @cached_property
    def info(self) -> DatasetInfo:
        if self.options.unknown_channel == "first":
            channels = ("other",) + ADE20K_CLASSES
        else:
            channels = ADE20K_CLASSES + ("other",)
        return DatasetInfo(name=self.name, label_nc=NUM_CLASSES, contain_dontcare=True,
                           has_instances=False, class_names=ADE20K_CLASSES,
                           image_size=self.eval_size, channel_names=channels)

    @cached_property
    def label_space(self) -> EvalLabelSpace:
        return EvalLabelSpace(name="ade20k-150", num_classes=NUM_CLASSES,
                              class_names=ADE20K_CLASSES, lut=eval_lut(), ignore_index=IGNORE)
