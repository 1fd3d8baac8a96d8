"""ADE20K: ADEChallengeData2016 layout, the official channel order quirk, reduce-zero eval."""
import numpy as np
import pytest

from _data_helpers import make_ade20k, write_png
from harness.core.data import DatasetError, build_dataset
from harness.core.data.ade20k import eval_lut
from harness.core.data.classnames import ADE20K_CLASSES


def test_layout_split_names_and_nested_root(tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    val = make_ade20k(root, "validation", n=3)
    make_ade20k(root, "training", n=2)
    ds = build_dataset("ade20k", {"root": str(root)}, "val")
    assert ds.keys() == val == ["ADE_val_00000001", "ADE_val_00000002", "ADE_val_00000003"]
    assert ds.records()[0].image.suffix == ".jpg" and ds.records()[0].instance is None
    # The folder that contains ADEChallengeData2016 works too; 'training' is an alias of 'train'.
    parent = build_dataset("ade20k", {"root": str(tmp_path)}, "training")
    assert parent.keys() == ["ADE_train_00000001", "ADE_train_00000002"]
    assert build_dataset("ade20k", {"root": str(tmp_path)}, "train").keys() == parent.keys()
    with pytest.raises(DatasetError, match="ade20k has no split 'test'"):
        build_dataset("ade20k", {"root": str(root)}, "test").records()


def test_official_channel_order_and_eval_reduce_zero(tmp_path):
    make_ade20k(tmp_path, "validation", n=1, size_hw=(12, 20))
    ds = build_dataset("ade20k", {"root": str(tmp_path)}, "val")
    info = ds.info
    assert (info.label_nc, info.contain_dontcare, info.has_instances) == (150, True, False)
    assert info.num_label_channels == 151 and info.image_size == (256, 256)
    assert info.class_names == ADE20K_CLASSES and len(ADE20K_CLASSES) == 150
    assert ADE20K_CLASSES[:4] == ("wall", "building", "sky", "floor")
    assert ADE20K_CLASSES[149] == "flag"
    assert info.channel_name(0) == "other" and info.channel_name(1) == "wall"
    assert info.channel_name(150) == "flag"
    raw = np.array([[0, 1, 2, 150, 75]])
    # The official (no-op postprocess) behaviour: the raw value is the channel.
    assert ds.raw_to_input(raw).tolist() == [[0, 1, 2, 150, 75]]
    s = ds[0]
    assert s["label"].shape == (256, 256) and "instance" not in s and "edge" not in s
    assert set(s["label"].unique().tolist()) <= {0, 1, 2, 150, 75}
    space = ds.label_space
    assert space.name == "ade20k-150" and space.num_classes == 150
    assert space.lut == eval_lut()
    lut = np.array(space.lut)
    assert lut[0] == 255 and lut[1] == 0 and lut[150] == 149 and lut[151] == 255
    assert (lut[1:151] == np.arange(150)).all()


def test_unknown_channel_last(tmp_path):
    make_ade20k(tmp_path, "validation", n=1)
    ds = build_dataset("ade20k", {"root": str(tmp_path), "unknown_channel": "last"}, "val")
    assert ds.raw_to_input(np.array([0, 1, 150])).tolist() == [150, 0, 149]
    assert ds.info.channel_name(150) == "other" and ds.info.channel_name(0) == "wall"


def test_out_of_range_and_missing_annotation(tmp_path):
    make_ade20k(tmp_path, "validation", n=2, size_hw=(6, 6))
    bad = tmp_path / "annotations/validation/ADE_val_00000001.png"
    write_png(bad, np.full((6, 6), 151))
    ds = build_dataset("ade20k", {"root": str(tmp_path)}, "val")
    with pytest.raises(DatasetError) as e:
        ds[0]
    assert str(bad) in str(e.value) and "ids 151 in 36 pixels" in str(e.value)
    assert "allowed raw ids are 0..150" in str(e.value)
    (tmp_path / "annotations/validation/ADE_val_00000002.png").unlink()
    with pytest.raises(DatasetError) as e:
        build_dataset("ade20k", {"root": str(tmp_path)}, "val").records()
    assert "1 image(s) without a label map" in str(e.value)
    assert "ADE_val_00000002.jpg" in str(e.value)
    assert str(tmp_path / "annotations/validation/ADE_val_00000002.png") in str(e.value)


def test_missing_folder_names_layout(tmp_path):
    with pytest.raises(DatasetError) as e:
        build_dataset("ade20k", {"root": str(tmp_path)}, "val").records()
    assert f"{tmp_path}/images/validation does not exist" in str(e.value)
    assert "ADEChallengeData2016.zip" in str(e.value)
