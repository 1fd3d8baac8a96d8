"""Dataset identity: split fingerprints (fast and content), the reference-statistics cache keyed
by content, and the leaderboard flag for rows evaluated on other data. Real folder datasets
with identical file names and different contents; real Inception (seeded stand-in weights)."""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from _cli_helpers import call_main, tiny_protocol
from _data_helpers import make_folder, write_png
from _eval_helpers import eval_env, eval_weights_dir  # noqa: F401
from harness.core.data import build_dataset
from harness.core.data.fingerprint import compare, split_fingerprint

N = 4


def dataset(root: Path, split: str = "val", **options):
    return build_dataset("folder", {"root": str(root), "load_size": 16, "crop_size": 16,
                                    **options}, split)


def stored_png(array: np.ndarray) -> bytes:
    """An uncompressed PNG: its byte size depends on the image size only."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=0)
    return buf.getvalue()


def replace_keeping_size_and_mtime(path: Path, array: np.ndarray) -> None:
    st = path.stat()
    data = stored_png(array)
    assert len(data) == st.st_size
    path.write_bytes(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def make_stored_folder(root: Path, seed: int, n: int = N) -> Path:
    make_folder(root, "val", n=n, classes=("a", "b", "c", "d"), seed=seed)
    rng = np.random.default_rng(100 + seed)
    for p in sorted((root / "val" / "images").glob("*.png")):
        p.write_bytes(stored_png(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)))
    return root


def test_fingerprint_of_two_folders_with_the_same_names(tmp_path):
    a = make_stored_folder(tmp_path / "A", 1)
    b = make_stored_folder(tmp_path / "B", 2)
    fa, fb = split_fingerprint(dataset(a)), split_fingerprint(dataset(b))
    assert fa.mode == "fast" and set(fa.files) == set(fb.files) == {
        "classes.yaml", *(f"val/{kind}/img{i:03d}.png" for kind in ("images", "labels")
                          for i in range(N))}
    assert fa.digest != fb.digest
    # By content, only the images differ (labels and classes.yaml are byte-identical).
    ca, cb = split_fingerprint(dataset(a), "content"), split_fingerprint(dataset(b), "content")
    change = compare(ca, cb)
    assert change.counts() == {"changed": N, "added": 0, "removed": 0}
    assert all(p.startswith("val/images/") for p in change.changed)
    # Content fingerprints do not depend on where or when the files were written.
    assert split_fingerprint(dataset(a, verify_content=True)).digest == ca.digest
    # An edit that keeps size and mtime: invisible to the fast listing, not to the content one.
    replace_keeping_size_and_mtime(a / "val/images/img002.png", np.zeros((16, 16, 3), np.uint8))
    assert split_fingerprint(dataset(a)).digest == fa.digest
    after = split_fingerprint(dataset(a), "content")
    assert compare(ca, after).changed == ("val/images/img002.png",)
    # added / removed files, and max_images, are counted too
    (a / "val/labels/img003.png").unlink()
    (a / "val/images/img003.png").unlink()
    assert compare(fa, split_fingerprint(dataset(a))).counts()["removed"] == 2
    assert compare(fa, split_fingerprint(dataset(b, max_images=2))).counts()["removed"] == 4


@pytest.fixture
def folder_fid_protocol(tmp_path):
    data = {"name": "tiny-folder-fid", "dataset": "folder", "split": "val",
            "resolution": [16, 16], "seeds": [0],
            "fid": {"bootstrap_resamples": 0, "kid": False},
            "segmentation": {"segmenter": None}, "diversity": {"enabled": False}}
    path = tmp_path / "tiny-folder-fid.yaml"
    path.write_text(yaml.safe_dump(data))
    from evaluators.protocol import load_protocol
    return load_protocol(path)


def test_reference_statistics_follow_the_content_of_the_real_images(
        tmp_path, eval_env, folder_fid_protocol):  # noqa: F811
    import torch

    from evaluators.evaluate import evaluate_images
    from evaluators.fid import ImageFilesDataset, build_extractor, extract_features
    from evaluators.reference_cache import reference_dir
    from harness.core.weights import INCEPTION_V3_COMPAT

    root = make_stored_folder(tmp_path / "A", 1, n=2)   # Inception on CPU: few images
    gen_dir = tmp_path / "generated"
    rng = np.random.default_rng(7)
    for i in range(2):
        write_png(gen_dir / f"img{i:03d}.png",
                  rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    kw = dict(multimodal=False, batch_size=2, progress=False, method="m", seed=0)
    first = evaluate_images(gen_dir, dataset(root), folder_fid_protocol, **kw)
    assert first["metrics"]["fid"]["status"] == "ok"
    old_dir = reference_dir(folder_fid_protocol, dataset(root))
    # One real image replaced by another of the same byte size (and the same mtime).
    replace_keeping_size_and_mtime(root / "val/images/img001.png",
                                   np.full((16, 16, 3), 200, np.uint8))
    second = evaluate_images(gen_dir, dataset(root), folder_fid_protocol, **kw)
    new_dir = reference_dir(folder_fid_protocol, dataset(root))
    assert new_dir != old_dir
    assert second["data"]["content"] == new_dir.name != first["data"]["content"]
    assert second["data"]["tables_by_fingerprint"] is True

    # The statistics used now are those of the files as they are now (independent extraction,
    # no cache involved); the old entry holds other features and was not read.
    (entry,) = new_dir.glob("fid-real-*.pt")
    used = torch.load(entry, weights_only=True)["features"]
    extractor = build_extractor(eval_env / INCEPTION_V3_COMPAT.filename)
    real = extract_features(ImageFilesDataset(sorted((root / "val/images").glob("*.png"))),
                            extractor, batch_size=4)
    torch.testing.assert_close(used, real, rtol=1e-5, atol=1e-5)
    (old_entry,) = old_dir.glob("fid-real-*.pt")
    stale = torch.load(old_entry, weights_only=True)["features"]
    assert not torch.allclose(stale[1], real[1], atol=1e-3)
    torch.testing.assert_close(stale[0], real[0], rtol=1e-5, atol=1e-5)
    assert second["metrics"]["fid"]["value"] != pytest.approx(first["metrics"]["fid"]["value"])


def test_leaderboard_flags_a_row_evaluated_on_other_data(tmp_path, monkeypatch):
    """Named datasets keep one table per protocol; a row whose val data differs is flagged."""
    monkeypatch.delenv("HARNESS_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    proto = tiny_protocol(tmp_path, size=16)
    runs, results = tmp_path / "runs", tmp_path / "results"
    outs = []
    for gen_seed in (0, 0, 5):   # two runs on the usual data, one on other scenes
        args = ["run", "--method", "example-pix2pix", "--dataset", "synthetic",
                "--set", "dataset.size=16", "--set", "dataset.num_train=2",
                "--set", "dataset.num_val=3", "--set", f"dataset.generation_seed={gen_seed}",
                "--set", "train.max_steps=1", "--set", "eval.skip=[fid, kid, lpips_diversity]",
                "--protocol", str(proto), "--runs-dir", str(runs), "--results-dir",
                str(results), "--quiet", "--run-id", f"g{gen_seed}-{len(outs)}"]
        code, out, err = call_main(*args)
        assert code == 0, err
        outs.append(json.loads(out))
    table = (results / "leaderboard.md").read_text()
    heads = [line for line in table.splitlines() if line.startswith("### Protocol")]
    assert heads == [f"### Protocol `{outs[0]['protocol']}` · N = 3"]
    other = json.loads((Path(outs[2]["run_dir"]) / "metrics.json").read_text())
    fp = next(iter(other["evaluations"].values()))["data"]["content"]
    assert f"evaluated on other data than the rest of this table (val fingerprint {fp[:12]}" \
        in table
    assert table.count("evaluated on other data") == 1
