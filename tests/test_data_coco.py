"""COCO-Stuff: SPADE and official layouts, 255 -> don't-care channel, instance-map converter."""
import json

import numpy as np
import pytest
from PIL import Image

from _data_helpers import make_coco_official, make_coco_spade, write_png
from harness.core.data import DatasetError, build_dataset
from harness.core.data.classnames import COCO_STUFF_CLASSES, COCO_STUFF_UNUSED
from harness.core.data.coco_instances import build_instance_maps, instance_map, main


def test_spade_layout_dontcare_and_instances(tmp_path):
    keys = make_coco_spade(tmp_path, "val", n=3)
    ds = build_dataset("coco-stuff", {"root": str(tmp_path)}, "val")
    assert ds.keys() == keys
    info = ds.info
    assert (info.label_nc, info.contain_dontcare, info.has_instances) == (182, True, True)
    assert info.num_label_channels == 183 and info.image_size == (256, 256)
    assert info.class_names == COCO_STUFF_CLASSES and COCO_STUFF_CLASSES[0] == "person"
    assert COCO_STUFF_CLASSES[91] == "banner" and COCO_STUFF_CLASSES[181] == "wood"
    assert [COCO_STUFF_CLASSES[i] for i in (11, 90)] == ["street sign", "hair brush"]
    assert len(COCO_STUFF_UNUSED) == 11
    assert ds.raw_to_input(np.array([0, 90, 181, 255])).tolist() == [0, 90, 181, 182]
    s = ds[0]
    assert set(s["label"].unique().tolist()) <= {0, 90, 181, 182, 156}
    assert 182 in s["label"].unique().tolist()
    assert s["edge"].shape == (1, 256, 256)
    space = ds.label_space
    assert space.name == "cocostuff-182" and space.num_classes == 182
    lut = np.array(space.lut)
    assert (lut[:182] == np.arange(182)).all() and (lut[182:] == 255).all()


def test_portraits_only_at_training(tmp_path):
    make_coco_spade(tmp_path, "train", n=2)
    make_coco_spade(tmp_path, "train", n=2, suffix="_portrait", start=100)
    train = build_dataset("coco-stuff", {"root": str(tmp_path)}, "train", train=True)
    assert len(train) == 4 and train.records()[-1].image.parent.name == "train_img_portrait"
    assert len(build_dataset("coco-stuff", {"root": str(tmp_path)}, "train")) == 2
    assert len(build_dataset("coco-stuff", {"root": str(tmp_path), "portraits": False},
                             "train", train=True)) == 2


def test_instances_auto_follow_the_train_split(tmp_path):
    make_coco_spade(tmp_path, "train", n=1, instances=False)
    make_coco_spade(tmp_path, "val", n=1, instances=True)
    ds = build_dataset("coco-stuff", {"root": str(tmp_path)}, "val")
    assert ds.info.has_instances is False and "instance" not in ds[0]
    with pytest.raises(DatasetError, match="train_inst does not exist"):
        build_dataset("coco-stuff", {"root": str(tmp_path), "instances": True}, "train").records()


def test_official_layout_with_and_without_instances(tmp_path):
    keys = make_coco_official(tmp_path, "val", n=2)
    ds = build_dataset("coco-stuff", {"root": str(tmp_path)}, "val")
    assert ds.keys() == keys and ds.info.has_instances is False
    assert ds.records()[0].label.parent == tmp_path / "stuffthingmaps/val2017"
    for k in keys:
        write_png(tmp_path / "instances/val2017" / f"{k}.png", np.zeros((12, 16), np.int64))
    ds = build_dataset("coco-stuff", {"root": str(tmp_path), "layout": "stuffthingmaps"}, "val")
    assert ds.info.has_instances is True and ds[1]["instance"].shape == (256, 256)


def test_neither_layout(tmp_path):
    with pytest.raises(DatasetError, match="holds neither the SPADE layout"):
        build_dataset("coco-stuff", {"root": str(tmp_path)}, "val").records()


def test_bad_label_value_and_unpaired(tmp_path):
    make_coco_spade(tmp_path, "val", n=2, size_hw=(4, 4))
    bad = tmp_path / "val_label/000000000001.png"
    write_png(bad, np.array([[0, 182, 200, 255]] * 4))
    ds = build_dataset("coco-stuff", {"root": str(tmp_path)}, "val")
    with pytest.raises(DatasetError) as e:
        ds[0]
    assert str(bad) in str(e.value) and "ids 182, 200 in 8 pixels" in str(e.value)
    assert "allowed raw ids are 0..181 and 255 (don't care)" in str(e.value)
    (tmp_path / "val_inst/000000000002.png").unlink()
    with pytest.raises(DatasetError, match=r"1 label map\(s\) without an instance map:\n.*"
                                           r"000000000002.png  \(looked for .*val_inst/"):
        build_dataset("coco-stuff", {"root": str(tmp_path)}, "val").records()


def test_instance_map_semantics():
    label = np.full((6, 8), 150, np.int64)
    label[:, 4:] = 255
    anns = [
        {"segmentation": [[2, 2, 4, 2, 4, 4, 2, 4]]},            # a 3x3 square at x,y 1..3
        {"segmentation": {"counts": [1, 2], "size": [6, 8]}},    # RLE / crowd: skipped
        {"segmentation": [[6, 5, 8, 5, 8, 6, 6, 6], [7, 1, 8, 1, 8, 2, 7, 2]]},  # two parts
    ]
    inst = instance_map(label, anns)
    expected = label.copy()
    expected[1:4, 1:4] = 0            # first polygon annotation -> 0 (coordinates shifted by -1)
    expected[4:6, 5:8] = 1            # the RLE one does not take a number
    expected[0:2, 6:8] = 1
    np.testing.assert_array_equal(inst, expected)


def test_build_instance_maps_and_load_them(tmp_path):
    keys = make_coco_official(tmp_path, "val", n=2, size_hw=(12, 16))
    ann_file = tmp_path / "instances_val2017.json"
    ann_file.write_text(json.dumps({
        "images": [{"id": 1, "file_name": f"{keys[0]}.jpg"}, {"id": 2, "file_name": f"{keys[1]}.jpg"}],
        "annotations": [{"image_id": 1, "segmentation": [[3, 3, 6, 3, 6, 6, 3, 6]]},
                        {"image_id": 1, "segmentation": [[9, 3, 12, 3, 12, 6, 9, 6]]}]}))
    out = tmp_path / "instances/val2017"
    assert build_instance_maps(ann_file, tmp_path / "stuffthingmaps/val2017", out,
                               progress=False) == 2
    first = np.asarray(Image.open(out / f"{keys[0]}.png")).astype(np.int64)
    assert first[3, 3] == 0 and first[3, 9] == 1
    label = np.asarray(Image.open(tmp_path / f"stuffthingmaps/val2017/{keys[1]}.png"))
    assert np.array_equal(np.asarray(Image.open(out / f"{keys[1]}.png")), label)
    ds = build_dataset("coco-stuff", {"root": str(tmp_path)}, "val")
    assert ds.info.has_instances and ds.records()[0].instance == out / f"{keys[0]}.png"
    # Missing label maps are reported before anything is written.
    ann_file.write_text(json.dumps({"images": [{"id": 3, "file_name": "nope.jpg"}],
                                    "annotations": []}))
    with pytest.raises(DatasetError, match=r"1 label map\(s\) of .* are missing"):
        build_instance_maps(ann_file, tmp_path / "stuffthingmaps/val2017", tmp_path / "x")
    assert not (tmp_path / "x").exists()
    assert main(["--annotations", str(tmp_path / "missing.json"), "--labels", "a", "--out", "b",
                 "--quiet"]) == 2
