"""Cityscapes: real file-name layout, labelIds in, trainIds for evaluation, 16-bit instances."""
import numpy as np
import pytest
import torch
from PIL import Image

from _data_helpers import make_cityscapes, truncate, write_png
from harness.core.data import DATASETS, DatasetError, build_dataset
from harness.core.data.cityscapes import CityscapesOptions, trainid_lut
from harness.core.data.edges import instance_edges


def _ds(root, split="val", train=False, **kw):
    return DATASETS.get("cityscapes")(CityscapesOptions(root=str(root), **kw), split, train=train)


def test_keys_pairing_and_raw_ids(tmp_path):
    keys = make_cityscapes(tmp_path, "val", {"aachen": 2, "bremen": 1}, size_hw=(16, 32))
    ds = _ds(tmp_path)
    assert ds.keys() == keys == ["aachen_000000_000019", "aachen_000001_000020",
                                 "bremen_000000_000019"]
    rec = ds.records()[2]
    assert rec.image.name == "bremen_000000_000019_leftImg8bit.png"
    assert rec.label.name == "bremen_000000_000019_gtFine_labelIds.png"
    assert rec.instance.name == "bremen_000000_000019_gtFine_instanceIds.png"
    raw = ds.read_label(rec)
    assert raw.dtype == np.int64 and set(np.unique(raw)) == {0, 7, 8, 11, 23, 24, 26, 33}
    inst = ds.read_instance(rec)
    assert inst.dtype == np.int64 and inst.max() >= 26000   # the 16-bit values survive
    assert np.array_equal(inst // 1000 == 26, raw == 26)
    np.testing.assert_array_equal(ds.raw_to_input(raw), raw)  # no don't-care: ids are channels
    info = ds.info
    assert (info.label_nc, info.contain_dontcare, info.has_instances) == (35, False, True)
    assert info.num_label_channels == 35 and info.image_size == (256, 512)
    assert info.class_names[7] == "road" and info.class_names[33] == "bicycle"
    assert info.class_names[34] == "license plate"
    assert ds.default_protocol == "cityscapes-paper" and ds.eval_size == (256, 512)


def test_trainid_lut_matches_the_cityscapes_table():
    lut = trainid_lut()
    assert len(lut) == 256
    expected = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
                24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
    for raw in range(256):
        assert lut[raw] == expected.get(raw, 255), raw
    # License plate (labelId -1, stored as 255 when written as uint8) and the unused slot 34.
    assert lut[255] == 255 and lut[34] == 255


def test_label_space(tmp_path):
    make_cityscapes(tmp_path, "val", {"aachen": 1})
    space = _ds(tmp_path).label_space
    assert space.name == "cityscapes-trainid" and space.num_classes == 19
    assert space.class_names[0] == "road" and space.class_names[18] == "bicycle"
    assert space.ignore_index == 255


def test_sample_fixed_transform_and_edges(tmp_path):
    make_cityscapes(tmp_path, "train", {"aachen": 1}, size_hw=(16, 32))
    ds = _ds(tmp_path, "train", train=True, crop_size=16, load_size=16)   # 16x8 (W x H)
    s = ds[0]
    assert s["image"].shape == (3, 8, 16) and s["image"].dtype == torch.float32
    assert s["label"].shape == (8, 16) and s["label"].dtype == torch.int64
    assert s["instance"].shape == (8, 16) and s["edge"].shape == (1, 8, 16)
    assert torch.equal(s["edge"], instance_edges(s["instance"]))
    assert set(s["label"].unique().tolist()) <= {0, 7, 8, 11, 23, 24, 26, 33}
    assert -1.0 <= s["image"].min() and s["image"].max() <= 1.0


def test_default_config_size(tmp_path):
    make_cityscapes(tmp_path, "val", {"aachen": 1}, size_hw=(64, 128))
    ds = build_dataset("cityscapes", {"root": str(tmp_path)}, "val")
    assert ds[0]["image"].shape == (3, 256, 512)


def test_missing_label_named_with_where_it_was_looked_for(tmp_path):
    make_cityscapes(tmp_path, "val", {"aachen": 2})
    gone = tmp_path / "gtFine/val/aachen/aachen_000001_000020_gtFine_labelIds.png"
    gone.unlink()
    with pytest.raises(DatasetError) as e:
        _ds(tmp_path).records()
    msg = str(e.value)
    assert "1 image(s) without a label map" in msg
    assert "aachen_000001_000020_leftImg8bit.png" in msg and str(gone) in msg
    assert "Expected layout" in msg and "_gtFine_labelIds.png" in msg


def test_label_without_image_and_missing_instance(tmp_path):
    make_cityscapes(tmp_path, "val", {"aachen": 2})
    (tmp_path / "leftImg8bit/val/aachen/aachen_000000_000019_leftImg8bit.png").unlink()
    (tmp_path / "gtFine/val/aachen/aachen_000001_000020_gtFine_instanceIds.png").unlink()
    with pytest.raises(DatasetError) as e:
        _ds(tmp_path).records()
    msg = str(e.value)
    assert "1 label map(s) without an image" in msg
    assert "aachen_000000_000019_leftImg8bit.png" in msg
    assert "1 label map(s) without an instance map" in msg
    assert "aachen_000001_000020_gtFine_instanceIds.png" in msg
    # Without instances the missing instanceIds file does not matter.
    (tmp_path / "gtFine/val/aachen/aachen_000000_000019_gtFine_labelIds.png").unlink()
    (tmp_path / "gtFine/val/aachen/aachen_000000_000019_gtFine_instanceIds.png").unlink()
    ds = _ds(tmp_path, instances=False)
    assert ds.keys() == ["aachen_000001_000020"] and "instance" not in ds[0]


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(DatasetError, match=r"folder .*leftImg8bit/val does not exist"):
        _ds(tmp_path / "nowhere").records()
    (tmp_path / "leftImg8bit/val/aachen").mkdir(parents=True)
    (tmp_path / "gtFine/val").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"no images found in .*leftImg8bit/val "
                                           r"\(looked for <city>/\*_leftImg8bit.png\)"):
        _ds(tmp_path).records()
    with pytest.raises(DatasetError, match="cityscapes has no split 'training'"):
        _ds(tmp_path, "training").records()


def test_out_of_range_label_value(tmp_path):
    make_cityscapes(tmp_path, "val", {"aachen": 1}, size_hw=(8, 8))
    bad = tmp_path / "gtFine/val/aachen/aachen_000000_000019_gtFine_labelIds.png"
    label = np.full((8, 8), 7)
    label[0, :3] = [40, 255, 40]
    write_png(bad, label)
    ds = _ds(tmp_path)
    for load in (lambda: ds[0], lambda: ds.read_label(ds.records()[0])):
        with pytest.raises(DatasetError) as e:
            load()
        assert str(bad) in str(e.value)
        assert "contains ids 40, 255 in 3 pixels" in str(e.value)
        assert "allowed raw ids are 0..34" in str(e.value)


def test_size_mismatch_and_truncated_image(tmp_path):
    make_cityscapes(tmp_path, "val", {"aachen": 2}, size_hw=(8, 16))
    img = tmp_path / "leftImg8bit/val/aachen/aachen_000000_000019_leftImg8bit.png"
    write_png(img, np.zeros((8, 12, 3), np.uint8))
    ds = _ds(tmp_path)
    with pytest.raises(DatasetError) as e:
        ds[0]
    assert str(img) in str(e.value) and "is 12x8 (W x H) but its label map" in str(e.value)
    inst = tmp_path / "gtFine/val/aachen/aachen_000001_000020_gtFine_instanceIds.png"
    write_png(inst, np.full((4, 16), 26001))
    with pytest.raises(DatasetError, match=r"instance map .*aachen_000001_000020_gtFine_instanceIds"
                                           r"\.png is 16x4"):
        ds[1]
    write_png(img, np.zeros((8, 16, 3), np.uint8))
    write_png(img, np.random.default_rng(0).integers(0, 255, (64, 64, 3)))
    truncate(img)
    with pytest.raises(DatasetError) as e:
        ds[0]
    assert f"cannot read image {img}" in str(e.value) and "truncated or corrupt" in str(e.value)


def test_colour_label_map_rejected(tmp_path):
    make_cityscapes(tmp_path, "val", {"aachen": 1}, size_hw=(8, 8))
    bad = tmp_path / "gtFine/val/aachen/aachen_000000_000019_gtFine_labelIds.png"
    Image.new("RGB", (8, 8)).save(bad)
    with pytest.raises(DatasetError, match=r"has mode 'RGB' \(3 channels\); expected a "
                                           "single-channel PNG"):
        _ds(tmp_path)[0]
