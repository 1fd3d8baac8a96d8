"""No stale result is reused: the real CLI on two real folder datasets with identical file names
but different contents (train, resume, generate, evaluate, --force, cross-protocol reuse, the
leaderboard's tables). Offline: FID / LPIPS weights are missing, so those metrics are
'skipped' and the tests look at what was regenerated, recomputed or refused."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from harness.core.io import read_json

from _cli_helpers import call_main
from _data_helpers import block_labels, make_folder, write_png

METHOD = "example-pix2pix"
N = 4


def folder_protocol(folder: Path, name: str = "tiny-folder", **fid) -> Path:
    data = {"name": name, "dataset": "folder", "split": "val", "resolution": [16, 16],
            "num_images": None, "seeds": [0],
            "fid": {"bootstrap_resamples": 0, "kid_subsets": 2, "kid_subset_size": 2, **fid},
            "segmentation": {"segmenter": None},
            "diversity": {"enabled": False}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def make_dataset(root: Path, seed: int) -> Path:
    """A folder dataset (4 classes, 16 px); same file names for every seed, other pixels."""
    for split in ("train", "val"):
        make_folder(root, split, n=N, classes=("a", "b", "c", "d"),
                    seed=seed * 10 + (split == "val"))
    return root


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.delenv("HARNESS_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("HARNESS_OFFLINE", "1")
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    return {"A": make_dataset(tmp_path / "A", 1), "B": make_dataset(tmp_path / "B", 2),
            "runs": tmp_path / "runs", "results": tmp_path / "results",
            "proto": folder_protocol(tmp_path), "tmp": tmp_path}


def data_args(root: Path) -> list[str]:
    return ["--dataset", "folder", "--set", f"dataset.root={root}", "--set", "dataset.load_size=16",
            "--set", "dataset.crop_size=16", "--set", "train.max_steps=2",
            # offline, FID/KID would be 'skipped: weights missing' and retried on every evaluate
            "--set", "eval.skip=[fid, kid]"]


def run(env, root: Path, *extra: str) -> tuple[int, str, str]:
    return call_main("run", "--method", METHOD, *data_args(root), "--protocol", str(env["proto"]),
                     "--runs-dir", str(env["runs"]), "--results-dir", str(env["results"]),
                     "--quiet", *extra)


def ok_run(env, root: Path, *extra: str) -> dict:
    code, out, err = run(env, root, *extra)
    assert code == 0, err
    return json.loads(out)


def gen(env, rd: Path, *extra: str) -> tuple[int, str, str]:
    return call_main("generate", "--run", str(rd), "--protocol", str(env["proto"]), "--quiet",
                     *extra)


def evaluate(env, rd: Path, *extra: str) -> tuple[int, str, str]:
    return call_main("evaluate", "--run", str(rd), "--protocol", str(env["proto"]), "--quiet",
                     *extra)


def pngs(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.relative_to(folder).as_posix(): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob("*.png"))}


def test_resume_on_other_data_is_one_error_with_counts(env):
    first = ok_run(env, env["A"], "--verify-content")
    rd = Path(first["run_dir"])
    listing = read_json(rd / "data" / "train.json")
    assert len(listing["files"]) == 2 * N + 1   # images, labels, classes.yaml
    status = read_json(rd / "run.json")
    assert status["data"]["train"]["fingerprint"] == listing["digest"]
    metrics_before = (rd / "metrics.json").read_bytes()

    # Same configuration, same run directory, another folder with the same file names.
    code, out, err = run(env, env["B"], "--verify-content")
    assert code == 2 and out == ""
    assert "'train' split of dataset folder is not the data this run recorded" in err
    # B differs in every image (random pixels), not in the label maps (same block pattern) nor
    # in classes.yaml: exactly N of 2N+1 files changed.
    assert f"{N} changed, 0 added, 0 removed (e.g. train/images/img000.png) of {2 * N + 1} " \
           "files (compared by content)" in err
    assert "--fresh" in err and "--allow-data-change" in err
    assert len(err.strip().splitlines()) == 1
    # nothing was reused or replaced
    assert (rd / "metrics.json").read_bytes() == metrics_before
    assert read_json(rd / "data" / "train.json") == listing
    # Without --verify-content the files are compared by size and mtime; the run recorded
    # content hashes, so B's equal label maps (other mtimes) are hashed and found unchanged.
    code, out, err = run(env, env["B"])
    assert code == 2 and f"{N} changed, 0 added, 0 removed" in err


def test_allow_data_change_continues_and_is_recorded(env):
    first = ok_run(env, env["A"])
    rd = Path(first["run_dir"])
    pid = first["protocol"]
    old_manifest = read_json(rd / "samples" / pid / "random" / "manifest.json")
    second = ok_run(env, env["B"], "--allow-data-change")
    assert second["run_dir"] == first["run_dir"]
    status = read_json(rd / "run.json")
    changes = status["data_changes"]
    assert [(c["split"], c["changed"], c["added"], c["removed"]) for c in changes] == \
        [("train", 2 * N + 1, 0, 0), ("val", 2 * N + 1, 0, 0)]
    assert status["data"]["train"]["fingerprint"] == changes[0]["new"] != changes[0]["old"]
    # The samples and the record were made again from B's val split.
    manifest = read_json(rd / "samples" / pid / "random" / "manifest.json")
    assert manifest["origin"]["inputs"] == status["data"]["val"]["fingerprint"]
    assert manifest["origin"]["inputs"] != old_manifest["origin"]["inputs"]
    assert manifest["generated_now"] == N
    record = read_json(rd / "metrics.json")["evaluations"][f"{pid}/random"]
    assert record["data"]["fingerprint"] == status["data"]["val"]["fingerprint"]
    # The val listing now matches B: a plain re-run is accepted and skips everything.
    code, _, err = run(env, env["B"])
    assert code == 0, err


def test_samples_regenerate_when_label_maps_change(env):
    first = ok_run(env, env["A"])
    rd = Path(first["run_dir"])
    samples = rd / "samples" / first["protocol"] / "random"
    before = pngs(samples)
    # Edit two val label maps in place (same names): other classes in every block.
    for key in ("img000", "img002"):
        write_png(env["A"] / "val" / "labels" / f"{key}.png", block_labels(16, 16, [3, 2, 1, 0]))
    code, out, err = gen(env, rd)
    assert code == 2 and "2 changed, 0 added, 0 removed" in err and out == ""
    assert pngs(samples) == before            # refused: nothing touched
    code, out, err = evaluate(env, rd)
    assert code == 2 and "2 changed" in err

    code, out, err = gen(env, rd, "--allow-data-change")
    assert code == 0, err
    after = pngs(samples)
    assert set(after) == set(before)
    assert all(after[k][0] != before[k][0] for k in before)     # every image written again
    changed = [k for k in before if after[k][1] != before[k][1]]
    assert sorted(changed) == ["seed0/img000.png", "seed0/img002.png"]
    manifest = read_json(samples / "manifest.json")
    assert manifest["generated_now"] == N and manifest["inputs"]["mode"] == "fast"
    # ... and the metrics are recomputed for the new samples.
    old = read_json(rd / "metrics.json")["evaluations"]
    code, out, err = evaluate(env, rd)
    assert code == 0, err
    new = read_json(rd / "metrics.json")["evaluations"]
    key = f"{first['protocol']}/random"
    assert new[key]["samples_origin"] == manifest["origin"] != old[key]["samples_origin"]


def test_same_size_same_mtime_edit_needs_verify_content(env):
    first = ok_run(env, env["A"], "--verify-content")
    rd = Path(first["run_dir"])
    assert read_json(rd / "run.json")["data"]["val"]["mode"] == "content"
    path = env["A"] / "val" / "images" / "img001.png"
    st = path.stat()
    data = bytearray(path.read_bytes())
    write_png(path, np.full((16, 16, 3), 7, np.uint8))
    new = path.read_bytes()
    path.write_bytes(new[:len(data)].ljust(len(data), b"\0"))   # same byte size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))        # same mtime
    assert path.stat().st_size == st.st_size and path.read_bytes() != bytes(data)
    # the fast listing cannot see it; the content listing of this run can
    code, _, err = gen(env, rd, "--verify-content")
    assert code == 2 and "1 changed, 0 added, 0 removed (e.g. val/images/img001.png)" in err


def test_force_regenerates_and_recomputes_and_says_so(env):
    first = ok_run(env, env["A"])
    rd = Path(first["run_dir"])
    samples = rd / "samples" / first["protocol"] / "random"
    before = pngs(samples)
    metrics = rd / "metrics.json"
    m_before = metrics.stat().st_mtime_ns

    code, out, err = gen(env, rd)   # complete: skipped
    assert code == 0 and pngs(samples) == before
    code, out, err = gen(env, rd, "--force")
    assert code == 0, err
    assert f"generate --force: replacing {N} images in {samples}" in err
    after = pngs(samples)
    assert set(after) == set(before)
    assert all(after[k][0] != before[k][0] for k in before)        # written again ...
    assert all(after[k][1] == before[k][1] for k in before)        # ... identically
    assert read_json(samples / "manifest.json")["generated_now"] == N

    code, out, err = evaluate(env, rd)   # recorded: skipped
    assert code == 0 and metrics.stat().st_mtime_ns == m_before
    code, out, err = evaluate(env, rd, "--force")
    assert code == 0, err
    assert f"evaluate --force: replacing the record {first['protocol']}/random" in err
    assert metrics.stat().st_mtime_ns != m_before


def test_other_protocol_at_the_same_size_reuses_the_images(env):
    first = ok_run(env, env["A"])
    rd = Path(first["run_dir"])
    samples = rd / "samples" / first["protocol"] / "random"
    # Same split, size and seeds, scored differently (what *-full-res is to *-paper).
    other = folder_protocol(env["tmp"], "tiny-folder-full", resize_filter="bilinear")
    code, out, err = call_main("generate", "--run", str(rd), "--protocol", str(other),
                               "--quiet")
    assert code == 0, err
    out_dir = Path(json.loads(out)["samples"])
    assert out_dir != samples
    manifest = read_json(out_dir / "manifest.json")
    assert manifest["generated_now"] == 0
    assert manifest["reused_from"] == {first["protocol"]: N}
    assert f"{N} images of {out_dir} linked from identical samples" in err
    for rel in read_json(samples / "manifest.json")["files"]["0"].values():
        assert (out_dir / rel).read_bytes() == (samples / rel).read_bytes()

    # Samples of other input data are never taken: after a val label map changes, the first
    # protocol's set (made from the old labels) is no donor, so the images are generated.
    write_png(env["A"] / "val" / "labels" / "img001.png", block_labels(16, 16, [3, 2, 1, 0]))
    code, out, err = call_main("generate", "--run", str(rd), "--protocol", str(other),
                               "--quiet", "--allow-data-change")
    assert code == 0, err
    again = read_json(out_dir / "manifest.json")
    assert again["origin"]["inputs"] != manifest["origin"]["inputs"]
    assert again["generated_now"] == N and again["reused_from"] == {}
    assert "linked from identical samples" not in err


def test_two_folders_land_in_two_tables(env):
    a = ok_run(env, env["A"], "--run-id", "on-a")
    b = ok_run(env, env["B"], "--run-id", "on-b")
    assert a["protocol"] == b["protocol"]      # one protocol ...
    table = (env["results"] / "leaderboard.md").read_text()
    heads = [line for line in table.splitlines() if line.startswith("### Protocol")]
    assert len(heads) == 2                     # ... two tables, keyed by the data
    fa = read_json(Path(a["run_dir"]) / "metrics.json")["evaluations"]
    fb = read_json(Path(b["run_dir"]) / "metrics.json")["evaluations"]
    ca = next(iter(fa.values()))["data"]["content"]
    cb = next(iter(fb.values()))["data"]["content"]
    assert ca != cb
    assert {f"`{a['protocol']}@data-{ca[:12]}`", f"`{b['protocol']}@data-{cb[:12]}`"} == \
        {h.split()[2] for h in heads}
