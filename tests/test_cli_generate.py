"""Generation to PNG + manifest: per-image seeding, batch/shard independence, resume, layout."""
from __future__ import annotations

import hashlib
import os
import socket

import numpy as np
import pytest
import torch
from PIL import Image

from evaluators.protocol import DiversitySettings, Protocol
from harness.core.data import build_dataset
from harness.core.dist import DistInfo
from harness.generate import (GenerationError, generate_samples, image_generator, image_seed,
                              load_manifest)

from _cli_helpers import ToyConfig, ToyMethod

SIZE = 16


@pytest.fixture(scope="module")
def val(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    return build_dataset("synthetic", {"root": str(root), "size": SIZE, "num_train": 2,
                                       "num_val": 5}, "val")


def protocol(**kw):
    base = dict(name="t", dataset="synthetic", resolution=(SIZE, SIZE), num_images=4,
                seeds=(0, 1), diversity=DiversitySettings(samples_per_map=3, maps=2))
    base.update(kw)
    return Protocol(**base)


def toy(val, z_dim=2, seed=0):
    torch.manual_seed(seed)
    return ToyMethod(ToyConfig(z_dim=z_dim), val.info).eval()


def read_png(path):
    return np.asarray(Image.open(path).convert("RGB"))


def test_image_seed_is_sha256_of_seed_and_key():
    want = int.from_bytes(hashlib.sha256(b"3\x1fa/b").digest()[:8], "big") & (2**63 - 1)
    assert image_seed(3, "a/b") == want
    assert image_seed(3, "a/b") != image_seed(4, "a/b") != image_seed(3, "a/c")
    assert image_seed("diversity", "k", 0) != image_seed("diversity", "k", 1)
    g1, g2 = image_generator(0, "k"), image_generator(0, "k")
    assert torch.equal(torch.randn(5, generator=g1), torch.randn(5, generator=g2))


def test_layout_manifest_and_pixels_match_single_image_generation(val, tmp_path):
    method, proto = toy(val), protocol()
    m = generate_samples(method, val, proto, tmp_path, batch_size=3, origin={"run_id": "r"},
                         progress=False)
    keys = val.keys()[:4]
    assert m["keys"] == keys and m["seeds"] == [0, 1] and m["multimodal"] is True
    assert m["protocol"] == proto.id and m["method"] == "toy" and m["inference"] == "random"
    assert set(m["files"]) == {"0", "1"}
    assert sorted(m["diversity"]) == keys[:2]
    assert all(len(v) == 3 for v in m["diversity"].values())
    assert (tmp_path / "manifest.json").is_file() and load_manifest(tmp_path) == m
    # every PNG equals generating that one image alone with its own generator (lossless)
    for seed in (0, 1):
        for i, key in enumerate(keys):
            rel = m["files"][str(seed)][key]
            assert rel == f"seed{seed}/{key}.png"
            sample = val[i]
            alone = method.generate(sample["label"][None], sample["instance"][None],
                                    edge=sample["edge"][None],
                                    generator=[image_generator(seed, key)])[0]
            assert np.array_equal(read_png(tmp_path / rel), alone.permute(1, 2, 0).numpy())
    for i, key in enumerate(keys[:2]):
        for j, rel in enumerate(m["diversity"][key]):
            assert rel == f"diversity/{key}/{j}.png"
            sample = val[i]
            alone = method.generate(sample["label"][None], sample["instance"][None],
                                    edge=sample["edge"][None],
                                    generator=[image_generator("diversity", key, j)])[0]
            assert np.array_equal(read_png(tmp_path / rel), alone.permute(1, 2, 0).numpy())
    # seeds give different images for a multimodal method
    assert not np.array_equal(read_png(tmp_path / m["files"]["0"][keys[0]]),
                              read_png(tmp_path / m["files"]["1"][keys[0]]))


def test_batch_size_does_not_change_images(val, tmp_path):
    method, proto = toy(val), protocol()
    a = generate_samples(method, val, proto, tmp_path / "a", batch_size=1, progress=False)
    b = generate_samples(method, val, proto, tmp_path / "b", batch_size=4, progress=False)
    for s in a["files"]:
        for key, rel in a["files"][s].items():
            assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


def test_resume_generates_only_missing_files_and_same_pixels(val, tmp_path):
    method, proto = toy(val), protocol()
    first = generate_samples(method, val, proto, tmp_path, origin={"ck": "1"}, progress=False)
    assert first["generated_now"] == 4 * 2 + 2 * 3
    victims = [tmp_path / first["files"]["1"][val.keys()[2]],
               tmp_path / first["diversity"][val.keys()[1]][2]]
    before = [v.read_bytes() for v in victims]
    for v in victims:
        v.unlink()
    (tmp_path / "manifest.json").unlink()
    again = generate_samples(method, val, proto, tmp_path, origin={"ck": "1"}, progress=False)
    assert again["generated_now"] == 2
    assert [v.read_bytes() for v in victims] == before


def test_files_of_another_origin_are_discarded(val, tmp_path):
    proto = protocol()
    generate_samples(toy(val, seed=0), val, proto, tmp_path, origin={"ck": "a"}, progress=False)
    stale = tmp_path / "seed0" / "stale.png"
    stale.write_bytes(b"x")
    m = generate_samples(toy(val, seed=1), val, proto, tmp_path, origin={"ck": "b"},
                         progress=False)
    assert m["generated_now"] == 14 and not stale.exists()


def test_unimodal_method_generates_first_seed_only_and_no_diversity(val, tmp_path):
    m = generate_samples(toy(val, z_dim=0), val, protocol(seeds=(5, 6, 7)), tmp_path,
                         progress=False)
    assert m["seeds"] == [5] and m["protocol_seeds"] == [5, 6, 7]
    assert m["unimodal"] is True and m["diversity"] == {}
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["seed5"]


def test_num_images_none_means_whole_split(val, tmp_path):
    m = generate_samples(toy(val, z_dim=0), val, protocol(num_images=None), tmp_path,
                         progress=False)
    assert m["keys"] == val.keys() and m["num_images"] == 5


def test_errors(val, tmp_path):
    with pytest.raises(GenerationError, match="cannot encode a style"):
        generate_samples(toy(val), val, protocol(), tmp_path, inference="encoded")
    with pytest.raises(Exception, match="asks for 9 images.*only 5"):
        generate_samples(toy(val), val, protocol(num_images=9), tmp_path)
    assert not (tmp_path / "manifest.json").exists()


# --- sharding across processes (gloo) ------------------------------------------------------------
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, root, out):
    import torch.distributed as dist
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        ds = build_dataset("synthetic", {"root": root, "size": SIZE, "num_train": 2,
                                         "num_val": 5}, "val")
        generate_samples(toy(ds), ds, protocol(num_images=None), out, batch_size=2,
                         dist=DistInfo(rank, world), progress=False)
    finally:
        dist.destroy_process_group()


def test_two_ranks_write_the_same_set_as_one_process(val, tmp_path):
    import torch.multiprocessing as mp
    root = str(val.records()[0].label.parents[3])
    mp.spawn(_worker, args=(2, _free_port(), root, str(tmp_path / "ddp")), nprocs=2)
    single = generate_samples(toy(val), val, protocol(num_images=None), tmp_path / "one",
                              batch_size=5, progress=False)
    sharded = load_manifest(tmp_path / "ddp")
    assert sharded["files"] == single["files"] and sharded["diversity"] == single["diversity"]
    for s in single["files"]:
        for rel in single["files"][s].values():
            assert (tmp_path / "ddp" / rel).read_bytes() == (tmp_path / "one" / rel).read_bytes()
