"""Cityscapes (gtFine): 35 labelIds in, instance edges, scored on the 19 trainIds.

Generator input = the raw ``*_gtFine_labelIds.png`` values (label_nc 35, no don't-care, as in
SPADE / pix2pixHD); instances from ``*_gtFine_instanceIds.png`` (16-bit: things
``labelId*1000 + k``, stuff the plain labelId). Evaluation maps labelIds to the 19 trainIds of
cityscapesScripts; everything else (including license plate, trainId -1) is ignored (255).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from harness.core.config import runtime
from harness.core.data import DATASETS
from harness.core.data.base import (DatasetError, DatasetInfo, DatasetOptions, EvalLabelSpace,
                                    Record, SemanticDataset)
from harness.core.data.layout import (by_key, list_files, pair, require_dir, require_nonempty,
                                      resolve_root)

# cityscapesScripts labels table: (name, labelId, trainId); trainId 255 / -1 = not evaluated.
LABELS: tuple[tuple[str, int, int], ...] = (
    ("unlabeled", 0, 255), ("ego vehicle", 1, 255), ("rectification border", 2, 255),
    ("out of roi", 3, 255), ("static", 4, 255), ("dynamic", 5, 255), ("ground", 6, 255),
    ("road", 7, 0), ("sidewalk", 8, 1), ("parking", 9, 255), ("rail track", 10, 255),
    ("building", 11, 2), ("wall", 12, 3), ("fence", 13, 4), ("guard rail", 14, 255),
    ("bridge", 15, 255), ("tunnel", 16, 255), ("pole", 17, 5), ("polegroup", 18, 255),
    ("traffic light", 19, 6), ("traffic sign", 20, 7), ("vegetation", 21, 8),
    ("terrain", 22, 9), ("sky", 23, 10), ("person", 24, 11), ("rider", 25, 12), ("car", 26, 13),
    ("truck", 27, 14), ("bus", 28, 15), ("caravan", 29, 255), ("trailer", 30, 255),
    ("train", 31, 16), ("motorcycle", 32, 17), ("bicycle", 33, 18), ("license plate", -1, -1),
)
LABEL_NC = 35  # SPADE's label_nc: ids 0..33 plus one slot for license plate (never drawn)
IGNORE = 255

# Generator channel k = labelId k; channel 34 stands for license plate, which the official
# labelIds PNGs never contain (json2labelImg skips negative ids).
INPUT_CLASS_NAMES: tuple[str, ...] = tuple(n for n, i, _ in LABELS if i >= 0) + ("license plate",)
TRAIN_CLASS_NAMES: tuple[str, ...] = tuple(
    n for n, _, t in sorted((x for x in LABELS if 0 <= x[2] < 255), key=lambda x: x[2]))


def trainid_lut() -> tuple[int, ...]:
    """raw labelId (0..255) -> trainId; ids without a trainId (and -1 stored as 255) -> 255."""
    lut = [IGNORE] * 256
    for _, label_id, train_id in LABELS:
        if label_id >= 0 and 0 <= train_id < 255:
            lut[label_id] = train_id
    return tuple(lut)


LAYOUT = """\
  <root>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
  <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png
  <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_instanceIds.png   (16-bit)
  with <split> in train, val (test has no public labels); from https://www.cityscapes-dataset.com
  (leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip)"""

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
INSTANCE_SUFFIX = "_gtFine_instanceIds.png"


@dataclass
class CityscapesOptions(DatasetOptions):
    root: str | None = runtime("datasets/cityscapes")
    preprocess: Literal["fixed", "resize_and_crop", "scale_width", "scale_width_and_crop",
                        "none"] = "fixed"
    load_size: int = 512
    crop_size: int = 512
    aspect_ratio: float = 2.0
    instances: bool = True          # read *_instanceIds.png and feed the instance edge map


@DATASETS.register("cityscapes")
class CityscapesDataset(SemanticDataset):
    """Cityscapes gtFine: 35 labelIds + instance edges; mIoU on 19 trainIds (512x256 default)."""

    name = "cityscapes"
    Options = CityscapesOptions
    default_protocol = "cityscapes-paper"
    splits = ("train", "val", "test")

    def _root(self) -> Path:
        return resolve_root(self.options.root, self.name)

    def scan(self) -> list[Record]:
        if self.split not in self.splits:
            raise DatasetError(f"cityscapes has no split {self.split!r}; use one of "
                               f"{', '.join(self.splits)}")
        root = self._root()
        img_dir = require_dir(root / "leftImg8bit" / self.split,
                              f"cityscapes images (split {self.split!r})", LAYOUT)
        gt_dir = require_dir(root / "gtFine" / self.split,
                             f"cityscapes annotations (split {self.split!r})", LAYOUT)

        def strip(suffix):
            return lambda p: p.name[:-len(suffix)]

        images = by_key(list_files(img_dir, [".png"], recursive=True, endswith=IMAGE_SUFFIX),
                        strip(IMAGE_SUFFIX), "image")
        gt_files = list_files(gt_dir, [".png"], recursive=True)
        labels = by_key([p for p in gt_files if p.name.endswith(LABEL_SUFFIX)],
                        strip(LABEL_SUFFIX), "label map")
        require_nonempty(images, "images", img_dir, f"<city>/*{IMAGE_SUFFIX}", LAYOUT)
        require_nonempty(labels, "label maps", gt_dir, f"<city>/*{LABEL_SUFFIX}", LAYOUT)
        instances = None
        if self.options.instances:
            instances = by_key([p for p in gt_files if p.name.endswith(INSTANCE_SUFFIX)],
                               strip(INSTANCE_SUFFIX), "instance map")

        city = {k: p.parent.name for k, p in {**labels, **images}.items()}
        return pair(
            f"cityscapes (split {self.split!r}, root {root})", images=images, labels=labels,
            instances=instances,
            image_for=lambda k: img_dir / city[k] / f"{k}{IMAGE_SUFFIX}",
            label_for=lambda k: gt_dir / city[k] / f"{k}{LABEL_SUFFIX}",
            instance_for=lambda k: gt_dir / city[k] / f"{k}{INSTANCE_SUFFIX}",
            layout=LAYOUT)

    @cached_property
    def info(self) -> DatasetInfo:
        return DatasetInfo(name=self.name, label_nc=LABEL_NC, contain_dontcare=False,
                           has_instances=self.options.instances, class_names=INPUT_CLASS_NAMES,
                           image_size=self.eval_size)

    @cached_property
    def label_space(self) -> EvalLabelSpace:
        return EvalLabelSpace(name="cityscapes-trainid", num_classes=19,
                              class_names=TRAIN_CLASS_NAMES, lut=trainid_lut(),
                              ignore_index=IGNORE)
