"""Any dataset in a plain folder tree, described by ``classes.yaml``.

Layout (pairing by file stem)::

    <root>/classes.yaml
    <root>/<split>/images/<stem>.png|.jpg
    <root>/<split>/labels/<stem>.png            single-channel class ids
    <root>/<split>/instances/<stem>.png         optional instance ids (8- or 16-bit)

``classes.yaml``::

    classes: [sky, grass, road]   # label id = position (0-based); at most 255 classes
    dontcare: 255                 # optional raw id of unlabeled pixels -> one extra channel,
                                  # ignored in evaluation
    label_space: my-dataset       # optional name of the evaluation label space (default 'folder')

Evaluation scores the class ids as they are (identity), the don't-care id ignored.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import yaml

from harness.core.data import DATASETS
from harness.core.data.base import (DatasetError, DatasetInfo, DatasetOptions, EvalLabelSpace,
                                    Record, SemanticDataset)
from harness.core.data.layout import (IMAGE_SUFFIXES, by_key, list_files, pair, require_dir,
                                      require_nonempty, resolve_root)

IGNORE = 255
MAX_CLASSES = 255

LAYOUT = """\
  <root>/classes.yaml                     (classes: [name, ...]; optional dontcare: <id>)
  <root>/<split>/images/<stem>.png|.jpg
  <root>/<split>/labels/<stem>.png        (single-channel class ids 0..N-1)
  <root>/<split>/instances/<stem>.png     (optional instance ids)"""


@dataclass(frozen=True)
class ClassSpec:
    """What ``classes.yaml`` declares."""
    classes: tuple[str, ...]
    dontcare: int | None = None
    label_space: str = "folder"


def load_class_spec(path: Path) -> ClassSpec:
    """Parse and check ``classes.yaml``; every problem is one DatasetError naming the file."""
    if not path.is_file():
        raise DatasetError(f"missing {path}: a folder dataset names its classes there, e.g.\n"
                           "  classes: [sky, grass, road]\n  dontcare: 255   # optional\n"
                           f"Expected layout:\n{LAYOUT}")
    from harness.core.strict_yaml import DuplicateKeyError, safe_load
    try:
        data = safe_load(path.read_text())
    except DuplicateKeyError as exc:
        raise DatasetError(f"{path}: key {exc.key!r} appears twice, at lines {exc.first_line} "
                           f"and {exc.second_line}; remove one") from None
    except yaml.YAMLError as exc:
        raise DatasetError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a mapping with a 'classes' list, got "
                           f"{type(data).__name__}")
    unknown = sorted(set(data) - {"classes", "dontcare", "label_space"})
    if unknown:
        raise DatasetError(f"{path}: unknown key {unknown[0]!r}; valid keys: classes, dontcare, "
                           "label_space")
    classes = data.get("classes")
    if (not isinstance(classes, list) or not classes
            or not all(isinstance(c, str) and c.strip() for c in classes)):
        raise DatasetError(f"{path}: 'classes' must be a non-empty list of class names (label id "
                           f"= position), got {classes!r}")
    if len(set(classes)) != len(classes):
        dup = sorted({c for c in classes if classes.count(c) > 1})
        raise DatasetError(f"{path}: class names must be unique; repeated: {', '.join(dup)}")
    if len(classes) > MAX_CLASSES:
        raise DatasetError(f"{path}: {len(classes)} classes; at most {MAX_CLASSES} are supported")
    dontcare = data.get("dontcare")
    if dontcare is not None and (not isinstance(dontcare, int) or isinstance(dontcare, bool)
                                 or not len(classes) <= dontcare <= 255):
        raise DatasetError(f"{path}: 'dontcare' must be an integer id in {len(classes)}..255 "
                           f"(not a class id), got {dontcare!r}")
    label_space = data.get("label_space", "folder")
    if not isinstance(label_space, str) or not label_space:
        raise DatasetError(f"{path}: 'label_space' must be a non-empty string")
    return ClassSpec(tuple(classes), dontcare, label_space)


@dataclass
class FolderOptions(DatasetOptions):
    # null: use instance maps when <root>/train/instances exists (else <root>/<split>/instances).
    instances: bool | None = None


@DATASETS.register("folder")
class FolderDataset(SemanticDataset):
    """Any <root>/<split>/{images,labels[,instances]} tree with a classes.yaml."""

    name = "folder"
    Options = FolderOptions
    default_protocol = "folder"
    tables_by_fingerprint = True

    def _root(self) -> Path:
        return resolve_root(self.options.root, self.name)

    @cached_property
    def classes(self) -> ClassSpec:
        root = self._root()
        require_dir(root, f"{self.name} dataset root", LAYOUT)
        return load_class_spec(root / "classes.yaml")

    @cached_property
    def uses_instances(self) -> bool:
        if self.options.instances is not None:
            return self.options.instances
        root = self._root()
        if (root / "train" / "images").is_dir():
            return (root / "train" / "instances").is_dir()
        return (root / self.split / "instances").is_dir()

    def scan(self) -> list[Record]:
        self.classes  # a missing classes.yaml is the first thing to report
        split_dir = self._root() / self.split
        what = f"{self.name} (split {self.split!r})"
        img_dir = require_dir(split_dir / "images", f"{what}: images", LAYOUT)
        lbl_dir = require_dir(split_dir / "labels", f"{what}: label maps", LAYOUT)
        images = by_key(list_files(img_dir, IMAGE_SUFFIXES), lambda p: p.stem, "image")
        labels = by_key(list_files(lbl_dir, [".png"]), lambda p: p.stem, "label map")
        require_nonempty(images, "images", img_dir, "*.png / *.jpg", LAYOUT)
        require_nonempty(labels, "label maps", lbl_dir, "*.png", LAYOUT)
        instances = None
        inst_dir = split_dir / "instances"
        if self.uses_instances:
            require_dir(inst_dir, f"{what}: instance maps (set dataset.instances: false to "
                                  "train without instance edges)", LAYOUT)
            instances = by_key(list_files(inst_dir, [".png"]), lambda p: p.stem, "instance map")
        return pair(f"{what}, root {self._root()}", images=images, labels=labels,
                    instances=instances, image_for=lambda k: img_dir / f"{k}.png",
                    label_for=lambda k: lbl_dir / f"{k}.png",
                    instance_for=lambda k: inst_dir / f"{k}.png", layout=LAYOUT)

    def identity_files(self) -> list[Path]:
        return [self._root() / "classes.yaml"]

    def input_lut(self) -> np.ndarray:
        spec = self.classes
        n = len(spec.classes)
        lut = np.full(256, -1, dtype=np.int64)
        lut[:n] = np.arange(n)
        if spec.dontcare is not None:
            lut[spec.dontcare] = n
        return lut

    def allowed_ids(self) -> str:
        spec = self.classes
        text = f"0..{len(spec.classes) - 1}"
        if spec.dontcare is not None:
            text += f" and {spec.dontcare} (don't care)"
        return text

    @cached_property
    def info(self) -> DatasetInfo:
        spec = self.classes
        return DatasetInfo(name=self.name, label_nc=len(spec.classes),
                           contain_dontcare=spec.dontcare is not None,
                           has_instances=self.uses_instances, class_names=spec.classes,
                           image_size=self.eval_size)

    @cached_property
    def label_space(self) -> EvalLabelSpace:
        spec = self.classes
        n = len(spec.classes)
        lut = list(range(n)) + [IGNORE] * (256 - n)
        return EvalLabelSpace(name=spec.label_space, num_classes=n, class_names=spec.classes,
                              lut=tuple(lut), ignore_index=IGNORE)
