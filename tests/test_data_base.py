"""The SemanticDataset machinery as a plugin dataset sees it: scan/info/label_space only."""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from _data_helpers import write_png
from harness.core.data import (DATASETS, DatasetError, DatasetInfo, DatasetOptions, EvalLabelSpace,
                               Record, SemanticDataset)


@dataclass
class TinyOptions(DatasetOptions):
    folder: str = ""


class Tiny(SemanticDataset):
    """A label-only dataset with a don't-care id (what a third-party plugin writes)."""
    name = "tiny"
    Options = TinyOptions

    def scan(self):
        return [Record(key=p.stem, image=None, label=p)
                for p in sorted(Path(self.options.folder).glob("*.png"))]

    @property
    def info(self):
        return DatasetInfo(self.name, 3, True, False, ("a", "b", "c"), self.eval_size)

    @property
    def label_space(self):
        return EvalLabelSpace("tiny", 3, ("a", "b", "c"), tuple(range(3)) + (255,) * 253)


def test_plugin_subclass_inherits_loading(tmp_path):
    for k in ("b", "a", "c"):
        write_png(tmp_path / f"{k}.png", np.array([[0, 1], [2, 255]]))
    ds = Tiny(TinyOptions(folder=str(tmp_path), preprocess="none", max_images=2), "val")
    assert ds.keys() == ["a", "b"] and len(ds) == 2
    s = ds[-1]
    assert s["key"] == "b" and s["index"] == 1
    assert s["label"].tolist() == [[0, 1], [2, 3]]          # 255 -> the don't-care channel 3
    assert torch.equal(s["image"], torch.zeros(3, 2, 2))    # label-only: no real image
    assert ds.info.channel_name(3) == "dontcare"
    with pytest.raises(IndexError):
        ds[2]
    with pytest.raises(DatasetError, match="has no image"):
        ds.read_image(ds.records()[0])
    assert ds.allowed_ids() == "0..2 and 255 (don't care)"


def test_duplicate_keys_are_an_error(tmp_path):
    write_png(tmp_path / "x.png", np.zeros((2, 2)))

    class Twice(Tiny):
        def scan(self):
            return super().scan() * 2
    with pytest.raises(DatasetError, match="key 'x' occurs twice"):
        Twice(TinyOptions(folder=str(tmp_path)), "val").records()


def test_dataset_info_checks_names():
    with pytest.raises(ValueError, match="2 class names for label_nc=3"):
        DatasetInfo("x", 3, False, False, ("a", "b"), (4, 4))
    with pytest.raises(ValueError, match="3 channel names for 4 label channels"):
        DatasetInfo("x", 3, True, False, ("a", "b", "c"), (4, 4), channel_names=("a", "b", "c"))


def test_registry_lists_the_builtins():
    assert {"cityscapes", "ade20k", "coco-stuff", "folder", "synthetic"} <= set(DATASETS.names())
    for name in DATASETS.names():
        cls = DATASETS.get(name)
        assert cls.name == name and cls.default_protocol
        assert issubclass(cls.Options, DatasetOptions)
