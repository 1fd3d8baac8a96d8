"""Folder datasets: classes.yaml, stem pairing, don't care, every bad-input message."""
import numpy as np
import pytest
import torch

from _data_helpers import make_folder, truncate, write_jpg, write_png
from harness.core.config import ConfigError, DatasetSpec, EvalConfig, ExperimentConfig, MethodSpec
from harness.core.config import TrainConfig
from harness.core.data import DATASETS, DatasetError, build_dataset, build_dataset_from_config


def test_pairing_by_stem_classes_and_dontcare(tmp_path):
    keys = make_folder(tmp_path, "train", n=3, classes=("sky", "grass", "road"), dontcare=255,
                       label_values=[0, 1, 2, 255])
    write_jpg(tmp_path / "train/images/img001.jpg", np.zeros((16, 16, 3)))  # same stem twice
    with pytest.raises(DatasetError, match="two image files share the key 'img001'"):
        build_dataset("folder", {"root": str(tmp_path)}, "train").records()
    (tmp_path / "train/images/img001.png").unlink()
    ds = build_dataset("folder", {"root": str(tmp_path)}, "train")
    assert ds.keys() == keys and ds.records()[1].image.suffix == ".jpg"
    info = ds.info
    assert info.class_names == ("sky", "grass", "road") and info.label_nc == 3
    assert info.contain_dontcare and info.num_label_channels == 4 and not info.has_instances
    assert ds.raw_to_input(np.array([0, 1, 2, 255])).tolist() == [0, 1, 2, 3]
    space = ds.label_space
    assert space.name == "folder" and space.num_classes == 3
    assert space.lut[:3] == (0, 1, 2) and space.lut[255] == 255 and space.lut[3] == 255
    assert DATASETS.get("folder").default_protocol == "folder"


def test_instances_auto_and_max_images(tmp_path):
    make_folder(tmp_path, "train", n=5, instances=True)
    ds = build_dataset("folder", {"root": str(tmp_path), "max_images": 2}, "train", train=True)
    assert len(ds) == 2 and ds.keys() == ["img000", "img001"]
    s = ds[1]
    assert s["instance"].dtype == torch.int64 and s["edge"].shape == (1, 256, 256)
    assert set(s["instance"].unique().tolist()) <= {1, 1001, 2001}
    off = build_dataset("folder", {"root": str(tmp_path), "instances": False}, "train")
    assert "instance" not in off[0] and off.records()[0].instance is None


def test_fingerprint_tracks_files(tmp_path):
    make_folder(tmp_path, "val", n=2)
    fp = build_dataset("folder", {"root": str(tmp_path)}, "val").fingerprint()
    assert fp == build_dataset("folder", {"root": str(tmp_path)}, "val").fingerprint()
    assert len(fp) == 64
    write_png(tmp_path / "val/labels/img001.png", np.zeros((16, 17), np.int64))
    assert build_dataset("folder", {"root": str(tmp_path)}, "val").fingerprint() != fp
    assert build_dataset("folder", {"root": str(tmp_path), "max_images": 1},
                         "val").fingerprint() != fp


def test_classes_yaml_errors(tmp_path):
    make_folder(tmp_path, "train", n=1)
    (tmp_path / "classes.yaml").unlink()
    with pytest.raises(DatasetError, match=r"missing .*classes.yaml: a folder dataset names its "
                                           "classes there"):
        build_dataset("folder", {"root": str(tmp_path)}, "train").records()
    for text, message in [
        ("classes: sky", "'classes' must be a non-empty list"),
        ("classes: [a, a]", "class names must be unique; repeated: a"),
        ("classes: [a, b]\ndontcare: 1", "'dontcare' must be an integer id in 2..255"),
        ("classes: [a]\ncolours: [1]", "unknown key 'colours'"),
        ("classes: [a\n", "is not valid YAML"),
    ]:
        (tmp_path / "classes.yaml").write_text(text)
        with pytest.raises(DatasetError, match=message):
            build_dataset("folder", {"root": str(tmp_path)}, "train").info


def test_layout_errors(tmp_path):
    with pytest.raises(DatasetError, match="set dataset.root"):
        build_dataset("folder", None, "train").records()
    make_folder(tmp_path, "train", n=2)
    with pytest.raises(DatasetError) as e:
        build_dataset("folder", {"root": str(tmp_path)}, "val").records()
    assert f"folder {tmp_path}/val/images does not exist" in str(e.value)
    assert "<root>/<split>/labels/<stem>.png" in str(e.value)
    for f in (tmp_path / "train/labels").iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match=r"no label maps found in .*train/labels"):
        build_dataset("folder", {"root": str(tmp_path)}, "train").records()


def test_bad_values_size_and_corrupt_files(tmp_path):
    make_folder(tmp_path, "train", n=3, size_hw=(8, 8))
    write_png(tmp_path / "train/labels/img000.png", np.full((8, 8), 3))
    ds = build_dataset("folder", {"root": str(tmp_path)}, "train")
    with pytest.raises(DatasetError, match=r"label map .*img000.png contains ids 3 in 64 pixels, "
                                           r"outside the range of folder: allowed raw ids are 0..2$"):
        ds[0]
    write_png(tmp_path / "train/images/img001.png", np.zeros((9, 8, 3)))
    with pytest.raises(DatasetError, match=r"image .*img001.png is 8x9 \(W x H\) but its label map "
                                           r".*img001.png is 8x8"):
        ds[1]
    truncate(tmp_path / "train/labels/img002.png", 0.6)
    with pytest.raises(DatasetError, match=r"cannot read label map .*img002.png: .*truncated or "
                                           "corrupt file"):
        ds[2]
    (tmp_path / "train/images/img002.png").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match=r"cannot read image .*img002.png: "
                                           "UnidentifiedImageError"):
        ds.read_image(ds.records()[2])


def test_options_are_validated_like_config(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'dataset.colour'"):
        build_dataset("folder", {"root": str(tmp_path), "colour": 1}, "train")
    with pytest.raises(TypeError, match="expects FolderOptions"):
        DATASETS.get("folder")(DATASETS.get("ade20k").Options(), "train")


def test_build_from_experiment_config(tmp_path):
    make_folder(tmp_path, "train", n=2)
    options = DATASETS.get("folder").Options(root=str(tmp_path), load_size=32, crop_size=16)
    cfg = ExperimentConfig(name="x", method=MethodSpec("none", None),
                           dataset=DatasetSpec("folder", options), train=TrainConfig(seed=5),
                           eval=EvalConfig())
    ds = build_dataset_from_config(cfg, "train", train=True)
    assert ds.seed == 5 and ds.train and ds[0]["image"].shape == (3, 16, 16)
