"""The built-in synthetic dataset: deterministic bytes, cached once, safe to start concurrently."""
import multiprocessing as mp

import numpy as np
import pytest
import torch

from harness.core.data import DATASETS, build_dataset
from harness.core.data import synthetic
from harness.core.data.synthetic import CLASSES, STUFF, THINGS, generation_key


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _opts(**kw):
    return {"num_train": 6, "num_val": 3, "size": 32, **kw}


def test_same_seed_same_bytes_other_seed_differs(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "a"))
    a = build_dataset("synthetic", _opts(), "train")
    root_a = a._root()
    assert root_a.parent == tmp_path / "a/datasets/synthetic"
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "b"))
    b = build_dataset("synthetic", _opts(), "train")
    assert root_a.name == b._root().name and _files(root_a) == _files(b._root())
    c = build_dataset("synthetic", _opts(generation_seed=1), "train")
    assert c._root() != b._root()
    differ = [k for k, v in _files(c._root()).items() if _files(b._root()).get(k) != v]
    assert any(k.startswith("train/images/") for k in differ)


def test_content_classes_and_instances(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    ds = build_dataset("synthetic", _opts(num_train=24), "train")
    assert len(ds) == 24 and ds.keys()[0] == "train_00000"
    assert len(build_dataset("synthetic", _opts(num_train=24), "val")) == 3
    info = ds.info
    assert len(CLASSES) >= 8 and info.class_names == CLASSES and info.has_instances
    assert info.image_size == (32, 32) and not info.contain_dontcare
    assert ds.label_space.name == "synthetic" and ds.default_protocol == "synthetic"
    seen = np.zeros(len(CLASSES), int)
    for rec in ds.records():
        label, inst = ds.read_label(rec), ds.read_instance(rec)
        seen += np.bincount(label.ravel(), minlength=len(CLASSES)) > 0
        stuff = label < len(STUFF)
        assert (inst[stuff] == label[stuff]).all()                   # stuff: the class id
        assert (inst[~stuff] // 1000 == label[~stuff]).all()         # things: class*1000 + k
        assert (inst[~stuff] % 1000 >= 1).all()
    assert (seen > 0).all(), dict(zip(CLASSES, seen))                # every class occurs
    # Colour depends on the class: per-class mean colours are far apart.
    means = np.zeros((len(CLASSES), 3))
    counts = np.zeros(len(CLASSES))
    for rec in ds.records():
        img, label = ds.read_image(rec).astype(float), ds.read_label(rec)
        for c in range(len(CLASSES)):
            m = label == c
            means[c] += img[m].sum(0)
            counts[c] += m.sum()
    means /= counts[:, None]
    dist = np.linalg.norm(means[:, None] - means[None], axis=-1) + np.eye(len(CLASSES)) * 1e3
    assert dist.min() > 25, dist.min()


def test_second_construction_does_not_regenerate(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    first = build_dataset("synthetic", _opts(), "train", train=True)
    stamp = (first._root() / "generation.json").stat().st_mtime_ns

    def boom(*args, **kwargs):
        raise AssertionError("regenerated")
    monkeypatch.setattr(synthetic, "write_split", boom)
    again = build_dataset("synthetic", _opts(), "val")
    assert again._root() == first._root() and len(again) == 3
    assert (first._root() / "generation.json").stat().st_mtime_ns == stamp
    sample = first[0]
    assert sample["image"].shape == (3, 32, 32) and sample["edge"].shape == (1, 32, 32)
    # Options that change the pictures change the cache key; transform options do not.
    base = DATASETS.get("synthetic").Options(num_train=6, num_val=3, size=32)
    assert generation_key(base) != generation_key(DATASETS.get("synthetic").Options(
        num_train=6, num_val=3, size=48))
    assert generation_key(base) == generation_key(DATASETS.get("synthetic").Options(
        num_train=6, num_val=3, size=32, flip=False, max_images=2))


def _construct(cache, queue):
    import os
    os.environ["HARNESS_CACHE"] = cache
    ds = build_dataset("synthetic", _opts(num_train=12), "train")
    queue.put((str(ds._root()), len(ds)))


def test_concurrent_processes_generate_safely(tmp_path):
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_construct, args=(str(tmp_path), queue)) for _ in range(3)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len({r for r in results}) == 1 and results[0][1] == 12
    parent = tmp_path / "datasets/synthetic"
    assert [p.name for p in parent.iterdir()] == [results[0][0].rsplit("/", 1)[1]]  # no temp left


def test_options_validation():
    with pytest.raises(ValueError, match="size must be >= 16"):
        DATASETS.get("synthetic").Options(size=8)
    with pytest.raises(ValueError, match="num_train and num_val must be >= 1"):
        DATASETS.get("synthetic").Options(num_val=0)


def test_training_samples_are_flipped_deterministically(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    ds = build_dataset("synthetic", _opts(), "train", train=True, seed=3)
    plain = build_dataset("synthetic", _opts(), "train")
    flipped = 0
    for i in range(len(ds)):
        a, b = ds[i], plain[i]
        same = torch.equal(a["label"], b["label"])
        mirrored = torch.equal(a["label"], b["label"].flip(-1))
        assert same or mirrored
        flipped += mirrored and not same
        if mirrored and not same:
            assert torch.equal(a["image"], b["image"].flip(-1))
    assert 0 < flipped < len(ds)
