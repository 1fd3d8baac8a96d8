"""COCO-Stuff 164k: 182 ids + don't care (255 -> channel 182), instance edges when present.

Two layouts are read (``layout: auto`` picks whichever exists):

* ``spade``: the SPADE folders ``{train,val}_img/*.jpg``, ``{train,val}_label/*.png``,
  ``{train,val}_inst/*.png`` and, for training, the optional ``*_portrait`` folders;
* ``stuffthingmaps``: the official downloads ``images/{train2017,val2017}/*.jpg`` and
  ``stuffthingmaps/{train2017,val2017}/*.png``, with instance maps (optional) in
  ``instances/{train2017,val2017}/*.png`` as written by :mod:`harness.core.data.coco_instances`.

Evaluation ('cocostuff-182') is the identity on 0..181 with 255 ignored.
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
from harness.core.data.classnames import COCO_STUFF_CLASSES
from harness.core.data.layout import (by_key, list_files, pair, require_dir, require_nonempty,
                                      resolve_root)

NUM_CLASSES = 182
IGNORE = 255

LAYOUT = """\
  SPADE layout:
    <root>/{train,val}_img/<id>.jpg   <root>/{train,val}_label/<id>.png   <root>/{train,val}_inst/<id>.png
    (optional, training only: <root>/train_{img,label,inst}_portrait/)
  or the official layout:
    <root>/images/{train2017,val2017}/<id>.jpg                (http://images.cocodataset.org/zips/)
    <root>/stuffthingmaps/{train2017,val2017}/<id>.png        (stuffthingmaps_trainval2017.zip)
    <root>/instances/{train2017,val2017}/<id>.png             (optional; build them with
        python -m harness.core.data.coco_instances from annotations/instances_<split>2017.json)
  label maps: 8-bit, values 0..181 (class id - 1) and 255 (unlabeled)"""


def eval_lut() -> tuple[int, ...]:
    return tuple(list(range(NUM_CLASSES)) + [IGNORE] * (256 - NUM_CLASSES))


@dataclass
class CocoStuffOptions(DatasetOptions):
    root: str | None = runtime("datasets/coco_stuff")
    preprocess: Literal["fixed", "resize_and_crop", "scale_width", "scale_width_and_crop",
                        "none"] = "resize_and_crop"
    load_size: int = 286
    crop_size: int = 256
    layout: Literal["auto", "spade", "stuffthingmaps"] = "auto"
    # null: use instance maps when the train split has its instance folder (else this split's).
    instances: bool | None = None
    portraits: bool = True          # SPADE layout: add the *_portrait folders at training


@DATASETS.register("coco-stuff")
class CocoStuffDataset(SemanticDataset):
    """COCO-Stuff 164k: 182 classes + don't care, instance edges when present, 256x256."""

    name = "coco-stuff"
    Options = CocoStuffOptions
    default_protocol = "coco-stuff-paper"
    splits = ("train", "val")

    def _root(self) -> Path:
        return resolve_root(self.options.root, self.name)

    def _layout(self) -> str:
        if self.options.layout != "auto":
            return self.options.layout
        root = self._root()
        if any((root / f"{s}_label").is_dir() for s in self.splits):
            return "spade"
        if (root / "stuffthingmaps").is_dir():
            return "stuffthingmaps"
        raise DatasetError(f"coco-stuff: {root} holds neither the SPADE layout (train_label/, "
                           f"val_label/) nor the official one (stuffthingmaps/).\n"
                           f"Expected layout:\n{LAYOUT}")

    def _dirs(self, split: str) -> tuple[Path, Path, Path]:
        """(image, label, instance) folders of ``split`` in the active layout."""
        root = self._root()
        if self._layout() == "spade":
            return root / f"{split}_img", root / f"{split}_label", root / f"{split}_inst"
        sub = f"{split}2017"
        return root / "images" / sub, root / "stuffthingmaps" / sub, root / "instances" / sub

    @cached_property
    def uses_instances(self) -> bool:
        if self.options.instances is not None:
            return self.options.instances
        train_img, _, train_inst = self._dirs("train")
        if train_img.is_dir():
            return train_inst.is_dir()
        return self._dirs(self.split)[2].is_dir()

    def scan(self) -> list[Record]:
        if self.split not in self.splits:
            raise DatasetError(f"coco-stuff has no split {self.split!r}; use train or val")
        img_dir, lbl_dir, inst_dir = self._dirs(self.split)
        what = f"coco-stuff {self._layout()} layout (split {self.split!r})"
        folders = [(img_dir, lbl_dir, inst_dir)]
        if self._layout() == "spade" and self.train and self.options.portraits:
            portrait = tuple(Path(f"{d}_portrait") for d in (img_dir, lbl_dir, inst_dir))
            if portrait[1].is_dir():
                folders.append(portrait)
        records: list[Record] = []
        for i_dir, l_dir, n_dir in folders:
            require_dir(i_dir, f"{what}: images", LAYOUT)
            require_dir(l_dir, f"{what}: label maps", LAYOUT)
            images = by_key(list_files(i_dir, [".jpg", ".jpeg", ".png"]), lambda p: p.stem,
                            "image")
            labels = by_key(list_files(l_dir, [".png"]), lambda p: p.stem, "label map")
            require_nonempty(images, "images", i_dir, "*.jpg", LAYOUT)
            require_nonempty(labels, "label maps", l_dir, "*.png", LAYOUT)
            instances = None
            if self.uses_instances:
                require_dir(n_dir, f"{what}: instance maps (set dataset.instances: false to "
                                   "train without instance edges)", LAYOUT)
                instances = by_key(list_files(n_dir, [".png"]), lambda p: p.stem, "instance map")
            records += pair(f"coco-stuff (split {self.split!r}, root {self._root()})",
                            images=images, labels=labels, instances=instances,
                            image_for=lambda k, d=i_dir: d / f"{k}.jpg",
                            label_for=lambda k, d=l_dir: d / f"{k}.png",
                            instance_for=lambda k, d=n_dir: d / f"{k}.png", layout=LAYOUT)
        return records

    @cached_property
    def info(self) -> DatasetInfo:
        return DatasetInfo(name=self.name, label_nc=NUM_CLASSES, contain_dontcare=True,
                           has_instances=self.uses_instances, class_names=COCO_STUFF_CLASSES,
                           image_size=self.eval_size)

    @cached_property
    def label_space(self) -> EvalLabelSpace:
        return EvalLabelSpace(name="cocostuff-182", num_classes=NUM_CLASSES,
                              class_names=COCO_STUFF_CLASSES, lut=eval_lut(), ignore_index=IGNORE)
