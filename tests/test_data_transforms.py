"""The official transforms: sizes per mode, one plan for image/label/instance, nearest labels,
bicubic images, and augmentation that is a pure function of (seed, epoch, index)."""
import numpy as np
import pytest
import torch
from PIL import Image

from _data_helpers import make_folder, write_png
from harness.core.data import DatasetError, build_dataset, collate
from harness.core.data.edges import instance_edges
from harness.core.data.folder import FolderOptions
from harness.core.data.transforms import make_plan, output_hw, round_to_multiple


def _opts(**kw):
    return FolderOptions(root="unused", **kw)


@pytest.mark.parametrize("kw, src, train, expected", [
    (dict(preprocess="fixed", crop_size=512, load_size=512, aspect_ratio=2.0), (1024, 2048), True,
     (256, 512)),
    (dict(preprocess="fixed", crop_size=512, load_size=512, aspect_ratio=2.0), (1024, 2048), False,
     (256, 512)),
    (dict(preprocess="resize_and_crop", load_size=286, crop_size=256), (375, 500), True, (256, 256)),
    (dict(preprocess="resize_and_crop", load_size=286, crop_size=256), (375, 500), False,
     (256, 256)),
    (dict(preprocess="scale_width", load_size=1024), (1024, 2048), True, (512, 1024)),
    (dict(preprocess="scale_width", load_size=1024), (1024, 2048), False, (512, 1024)),
    (dict(preprocess="scale_width", load_size=100, size_multiple=32), (300, 400), False, (64, 96)),
    (dict(preprocess="scale_width_and_crop", load_size=1024, crop_size=512), (1024, 2048), True,
     (512, 512)),
    (dict(preprocess="scale_width_and_crop", load_size=1024, crop_size=512), (1024, 2048), False,
     (256, 512)),
    # 2000 / 32 = 62.5 rounds to 62 (Python round, as in pix2pixHD).
    (dict(preprocess="none", size_multiple=32), (1000, 2000), False, (992, 1984)),
    (dict(preprocess="none"), (37, 51), True, (37, 51)),
])
def test_output_sizes(kw, src, train, expected):
    o = _opts(**kw)
    assert output_hw(o, src, train=train) == expected
    plan = make_plan(o, src, train=train, seed=3, epoch=1, index=5)
    assert (plan.output_hw or src) == expected
    if not train:
        assert plan.crop_box is None and plan.flip is False


def test_rounding_like_pix2pixhd():
    assert round_to_multiple(1000, 32) == 992 and round_to_multiple(1010, 32) == 1024
    assert round_to_multiple(5, 32) == 32 and round_to_multiple(37, 1) == 37


def test_crop_positions_cover_the_range_and_flip_is_fair():
    o = _opts(preprocess="resize_and_crop", load_size=286, crop_size=256)
    plans = [make_plan(o, (100, 100), train=True, seed=0, epoch=0, index=i) for i in range(400)]
    xs = {p.crop_box[0] for p in plans}
    assert min(xs) == 0 and max(xs) == 30 and len(xs) == 31
    flips = sum(p.flip for p in plans)
    assert 160 < flips < 240
    assert all(p.crop_box[2] - p.crop_box[0] == 256 == p.crop_box[3] - p.crop_box[1] for p in plans)
    no_flip = _opts(preprocess="resize_and_crop", load_size=286, crop_size=256, flip=False)
    assert not any(make_plan(no_flip, (100, 100), train=True, index=i).flip for i in range(50))


def test_plan_is_a_pure_function_of_seed_epoch_index():
    o = _opts(preprocess="resize_and_crop", load_size=64, crop_size=32)
    a = [make_plan(o, (40, 40), train=True, seed=1, epoch=2, index=i) for i in range(20)]
    np.random.seed(123)
    torch.manual_seed(5)
    b = [make_plan(o, (40, 40), train=True, seed=1, epoch=2, index=i) for i in range(20)]
    assert a == b
    assert a != [make_plan(o, (40, 40), train=True, seed=1, epoch=3, index=i) for i in range(20)]
    assert a != [make_plan(o, (40, 40), train=True, seed=2, epoch=2, index=i) for i in range(20)]


def test_crop_larger_than_resized_image_is_an_error():
    with pytest.raises(ValueError, match="crop_size .* must not exceed load_size"):
        _opts(preprocess="resize_and_crop", load_size=200, crop_size=256)
    o = _opts(preprocess="scale_width_and_crop", load_size=64, crop_size=48)
    with pytest.raises(DatasetError, match="cannot crop 48x48 from an image resized to 64x32"):
        make_plan(o, (100, 200), train=True)


def _pil_nearest(array, hw):
    """Independent NEAREST resize: source index floor((dst + 0.5) * src / dst)."""
    h, w = hw
    sy = np.minimum(((np.arange(h) + 0.5) * array.shape[0] / h).astype(int), array.shape[0] - 1)
    sx = np.minimum(((np.arange(w) + 0.5) * array.shape[1] / w).astype(int), array.shape[1] - 1)
    return array[sy][:, sx]


@pytest.fixture
def striped(tmp_path):
    """A 20x30 folder dataset with instances; left part class 0, then 1, right part 2."""
    make_folder(tmp_path, "train", n=4, size_hw=(20, 30), instances=True)
    rng = np.random.default_rng(0)
    label = np.zeros((20, 30), np.int64)
    label[:, 10:20] = 1
    label[:, 20:] = 2
    label[15:, 5:8] = 1
    inst = label * 1000 + (np.arange(30)[None].repeat(20, 0) // 7)
    for i in range(4):
        write_png(tmp_path / f"train/images/img{i:03d}.png", rng.integers(0, 256, (20, 30, 3)))
        write_png(tmp_path / f"train/labels/img{i:03d}.png", label)
        write_png(tmp_path / f"train/instances/img{i:03d}.png", inst)
    return tmp_path, label, inst


def test_one_plan_for_image_label_instance(striped):
    root, label, inst = striped
    ds = build_dataset("folder", {"root": str(root), "preprocess": "resize_and_crop",
                                  "load_size": 40, "crop_size": 24}, "train", train=True, seed=7)
    ds.set_epoch(3)
    seen_flip = set()
    for i in range(len(ds)):
        s = ds[i]
        plan = make_plan(ds.options, (20, 30), train=True, seed=7, epoch=3, index=i)
        seen_flip.add(plan.flip)
        left, top, right, bottom = plan.crop_box

        def expected_ids(a):
            out = _pil_nearest(a, (40, 40))[top:bottom, left:right]
            return out[:, ::-1] if plan.flip else out
        assert np.array_equal(s["label"].numpy(), expected_ids(label))
        assert np.array_equal(s["instance"].numpy(), expected_ids(inst))
        assert torch.equal(s["edge"], instance_edges(s["instance"]))
        # Nearest: no label value appears that was not in the source.
        assert set(s["label"].unique().tolist()) <= {0, 1, 2}
        # The image: PIL bicubic to 40x40, the same crop, the same flip.
        src = Image.open(root / f"train/images/img{i:03d}.png").convert("RGB")
        ref = np.asarray(src.resize((40, 40), Image.BICUBIC))[top:bottom, left:right]
        ref = ref[:, ::-1] if plan.flip else ref
        got = ((s["image"].permute(1, 2, 0).numpy() + 1) / 2 * 255).round().astype(np.uint8)
        assert np.array_equal(got, ref)
    assert seen_flip == {True, False}   # both branches exercised with these seeds


def test_flip_moves_image_and_label_together(tmp_path):
    """Colour encodes the class: after any augmentation the colour still matches the label."""
    make_folder(tmp_path, "train", n=1, size_hw=(32, 32))
    label = np.zeros((32, 32), np.int64)
    label[:, 20:] = 2
    label[:16, :8] = 1
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    write_png(tmp_path / "train/labels/img000.png", label)
    write_png(tmp_path / "train/images/img000.png", colours[label])
    ds = build_dataset("folder", {"root": str(tmp_path), "preprocess": "resize_and_crop",
                                  "load_size": 48, "crop_size": 40}, "train", train=True)
    flips = set()
    for epoch in range(8):
        ds.set_epoch(epoch)
        s = ds[0]
        flips.add(make_plan(ds.options, (32, 32), train=True, epoch=epoch).flip)
        img = s["image"].permute(1, 2, 0).numpy()
        lab = s["label"].numpy()
        # Away from class boundaries the dominant channel equals the class id.
        interior = np.ones_like(lab, bool)
        for dy, dx in ((0, 3), (0, -3), (3, 0), (-3, 0)):
            interior &= np.roll(lab, (dy, dx), (0, 1)) == lab
        assert (img.argmax(-1)[interior] == lab[interior]).all()
    assert flips == {True, False}


def test_eval_transform_is_deterministic_resize(striped):
    root, label, _ = striped
    ds = build_dataset("folder", {"root": str(root), "load_size": 40, "crop_size": 24}, "train")
    assert ds.eval_size == (24, 24) and ds.info.image_size == (24, 24)
    a, b = ds[1], ds[1]
    assert torch.equal(a["image"], b["image"])
    assert np.array_equal(a["label"].numpy(), _pil_nearest(label, (24, 24)))


def test_augmentation_independent_of_dataloader_workers(striped):
    root, _, _ = striped
    def batches(workers):
        ds = build_dataset("folder", {"root": str(root), "load_size": 40, "crop_size": 24},
                           "train", train=True, seed=11)
        ds.set_epoch(2)
        loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=workers,
                                             collate_fn=collate, shuffle=False)
        return list(loader)
    serial, parallel = batches(0), batches(2)
    assert len(serial) == len(parallel) == 2
    for a, b in zip(serial, parallel):
        assert a.key == b.key
        assert torch.equal(a.image, b.image) and torch.equal(a.label, b.label)
        assert torch.equal(a.instance, b.instance) and torch.equal(a.edge, b.edge)
        assert torch.equal(a.index, b.index)


def test_image_resized_and_label_resized_readers(striped):
    root, label, _ = striped
    ds = build_dataset("folder", {"root": str(root)}, "train")
    rec = ds.records()[0]
    img = ds.image_resized(rec, (10, 12))
    ref = np.asarray(Image.open(rec.image).convert("RGB").resize((12, 10), Image.BICUBIC))
    assert img.dtype == torch.uint8 and img.shape == (3, 10, 12)
    assert np.array_equal(img.permute(1, 2, 0).numpy(), ref)
    bil = ds.image_resized(rec, (10, 12), filter="bilinear")
    assert not torch.equal(bil, img)
    assert np.array_equal(ds.label_resized(rec, (7, 9)), _pil_nearest(label, (7, 9)))
    assert np.array_equal(ds.read_image(rec), np.asarray(Image.open(rec.image).convert("RGB")))
    with pytest.raises(ValueError, match="unknown resize filter"):
        ds.image_resized(rec, (4, 4), filter="cubic")


def test_size_keeping_mode_rejects_mixed_sizes(tmp_path):
    make_folder(tmp_path, "train", n=2, size_hw=(16, 16))
    write_png(tmp_path / "train/images/img001.png", np.zeros((16, 24, 3)))
    write_png(tmp_path / "train/labels/img001.png", np.zeros((16, 24), np.int64))
    ds = build_dataset("folder", {"root": str(tmp_path), "preprocess": "none"}, "train")
    assert ds[0]["label"].shape == (16, 16) and ds.eval_size == (16, 16)
    with pytest.raises(DatasetError, match=r"img001.png \(24x16, W x H\) becomes 24x16 with "
                                           r"preprocess='none', but the split's first sample "
                                           "gives 16x16"):
        ds[1]


def test_eval_label_space_to_eval():
    from harness.core.data.cityscapes import CityscapesDataset, CityscapesOptions
    space = CityscapesDataset(CityscapesOptions(), "val").label_space
    raw = np.array([[7, 26, 34, 255, 300, -1]])
    assert space.to_eval(raw).tolist() == [[0, 13, 255, 255, 255, 255]]
