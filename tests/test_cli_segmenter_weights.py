"""`--segmenter-weights FILE` on `evaluate` and `run`: the user's own segmenter checkpoint scores
mIoU / accuracy (no training), the record names it by sha256, another file never reuses a recorded
number, and a bad file is one error naming it (exit status 2)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from _cli_helpers import call_main, tiny_protocol
from evaluators.segmenters.trained import (load_trained_segmenter, score_on_real_images,
                                           train_segmenter)
from harness.core.data import build_dataset
from harness.core.io import read_json
from harness.core.weights import file_sha256

PLUGIN = "example-pix2pix"
OPTIONS = {"size": 16, "num_train": 4, "num_val": 4}
DATA = [f"--set=dataset.{k}={v}" for k, v in OPTIONS.items()]
QUIET = ["--quiet", "--no-leaderboard"]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("segw")
    with pytest.MonkeyPatch.context() as mp:
        # A private cache: its segmenters/ folder shows whether anything was trained. No
        # Inception / LPIPS files: FID / KID are skipped, as in a fresh offline install.
        mp.setenv("HARNESS_CACHE", str(root / "cache"))
        mp.delenv("HARNESS_WEIGHTS_DIR", raising=False)
        mp.setenv("TORCH_HOME", str(root / "torch-home"))
        mp.setenv("HARNESS_OFFLINE", "1")
        # Two checkpoints of the tiny synthetic data (different seeds: different weights),
        # written by train_segmenter; then the cache is emptied.
        files = {}
        for seed, name in ((0, "a.pt"), (1, "b.pt")):
            files[name] = train_segmenter("synthetic", OPTIONS, steps=3, batch_size=2, seed=seed,
                                          out_path=root / name, progress=False).checkpoint
        shutil.rmtree(root / "cache" / "segmenters")
        proto = tiny_protocol(root, name="seg16", size=16, segmenter="synthetic-unet",
                              label_space="synthetic")
        yield {"root": root, "proto": proto, **files}


def trained_anything(work) -> bool:
    """Whether a segmenter of the synthetic data was trained (into the private cache)."""
    return (work["root"] / "cache" / "segmenters" / "synthetic").exists()


def real_score(checkpoint: Path) -> dict:
    """mIoU / accuracy of the checkpoint on the real val images, by the trainer's own scorer
    (not the evaluation pipeline)."""
    val = build_dataset("synthetic", OPTIONS, "val")
    return score_on_real_images(load_trained_segmenter(checkpoint), val)


def test_evaluate_images_uses_the_given_checkpoint_and_names_it(work, tmp_path):
    # "Generated" images = the real val images: mIoU on them equals the real-image upper bound.
    val = build_dataset("synthetic", OPTIONS, "val")
    folder = tmp_path / "imgs"
    folder.mkdir()
    for rec in val.records():
        shutil.copy(rec.image, folder / f"{rec.key}.png")
    records = {}
    for name in ("a.pt", "b.pt"):
        out = tmp_path / f"out-{name}"
        code, stdout, err = call_main("evaluate", "--images", str(folder), "--dataset",
                                      "synthetic", "--protocol", str(work["proto"]), "--out",
                                      str(out), "--segmenter-weights", str(work[name]),
                                      "--skip", "fid", "--skip", "kid", *DATA, *QUIET)
        assert code == 0, err
        rec = next(iter(read_json(out / "metrics.json")["evaluations"].values()))
        records[name] = rec
        sha = file_sha256(work[name])
        assert rec["segmenter_weights"] == {"segmenter": "synthetic-unet", "file": name,
                                            "path": str(work[name].resolve()), "sha256": sha}
        used = [w for w in rec["weights"].values() if w["sha256"] == sha]
        assert len(used) == 1 and used[0]["origin"] == "explicit"
        assert rec["protocol"]["identity"] == f"{rec['protocol']['id']}+segmenter-{sha[:8]}"
        assert any(name in n and sha[:12] in n for n in rec["notes"])
        expected = real_score(work[name])
        for metric in ("real_miou", "miou"):
            assert rec["metrics"][metric]["value"] == pytest.approx(expected["miou"], abs=1e-6)
        assert rec["metrics"]["real_accuracy"]["value"] == pytest.approx(expected["accuracy"],
                                                                         abs=1e-6)
    assert not trained_anything(work)                 # the given files were used, none trained
    a, b = records["a.pt"], records["b.pt"]
    assert a["protocol"]["id"] == b["protocol"]["id"]
    assert a["protocol"]["identity"] != b["protocol"]["identity"]   # never one table


def test_bad_files_are_one_error_naming_them(work, tmp_path):
    def evaluate(path: Path) -> tuple[int, str, str]:
        return call_main("evaluate", "--images", str(tmp_path), "--dataset", "synthetic",
                         "--protocol", str(work["proto"]), "--segmenter-weights", str(path),
                         *DATA, *QUIET)

    missing = tmp_path / "nothing.pt"
    code, out, err = evaluate(missing)
    assert code == 2 and out == "" and "Traceback" not in err
    assert f"--segmenter-weights {missing}: file does not exist" in err
    foreign = tmp_path / "foreign.pt"
    torch.save({"seg.weight": torch.zeros(1)}, foreign)
    code, out, err = evaluate(foreign)
    assert code == 2 and "Traceback" not in err
    assert str(foreign) in err and "not a checkpoint written by train_segmenter" in err
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    code, _, err = evaluate(garbage)
    assert code == 2 and str(garbage) in err and "could not load it" in err
    # A checkpoint of another label space (a folder dataset with two classes).
    from _data_helpers import make_folder
    make_folder(tmp_path / "duo", "train", n=2, classes=("red", "blue"))
    make_folder(tmp_path / "duo", "val", n=1, classes=("red", "blue"))
    other = train_segmenter("folder", {"root": str(tmp_path / "duo"), "preprocess": "none"},
                            steps=1, batch_size=2, out_path=tmp_path / "duo.pt",
                            progress=False).checkpoint
    code, _, err = evaluate(other)
    assert code == 2 and str(other.resolve()) in err and "label space 'folder'" in err


def test_run_then_evaluate_with_another_file_recomputes(work):
    runs = work["root"] / "runs"
    # FID / KID skipped on request (eval.skip): a record that skipped them for a missing file
    # would be evaluated again on every call, and the reuse below could not be seen.
    common = ["--protocol", str(work["proto"]), "--segmenter-weights"]
    code, out, err = call_main("run", "--method", PLUGIN, "--dataset", "synthetic",
                               "--set", "train.max_steps=2", "--set", "eval.skip=[fid,kid]",
                               *DATA, "--runs-dir", str(runs),
                               "--results-dir", str(work["root"] / "results"),
                               "--allow-missing-weights", *common, str(work["a.pt"]), "--quiet")
    assert code == 0, err
    summary = json.loads(out)
    rd = Path(summary["run_dir"])
    key = f"{summary['protocol']}/random"

    def recorded() -> dict:
        return read_json(rd / "metrics.json")["evaluations"][key]

    first = recorded()
    assert first["segmenter_weights"]["sha256"] == file_sha256(work["a.pt"])
    assert not trained_anything(work)

    def evaluate(*extra: str) -> tuple[int, str]:
        code, _, err = call_main("evaluate", "--run", str(rd), "--protocol",
                                 str(work["proto"]), *extra, "--no-leaderboard")
        assert code == 0, err
        return code, err

    # Another file: computed again with it (never the number recorded with a.pt).
    _, err = evaluate("--segmenter-weights", str(work["b.pt"]))
    assert "computing" in err and "a.pt" in err and "b.pt" in err
    second = recorded()
    assert second["segmenter_weights"]["sha256"] == file_sha256(work["b.pt"])
    assert second["protocol"]["identity"] != first["protocol"]["identity"]
    # The same file again: the record is reused.
    _, err = evaluate("--segmenter-weights", str(work["b.pt"]))
    assert "already in" in err
    assert recorded() == second
    # A bad file stops before anything is generated or recorded.
    code, _, err = call_main("evaluate", "--run", str(rd), "--protocol", str(work["proto"]),
                             "--segmenter-weights", str(work["root"] / "nope.pt"), "--quiet")
    assert code == 2 and "nope.pt: file does not exist" in err
    assert recorded() == second
    assert not trained_anything(work)


def test_first_use_training_announces_itself_and_shows_progress(tmp_path, monkeypatch, caplog,
                                                                 capfd):
    import logging
    from types import SimpleNamespace

    from evaluators.evaluate import _build_options
    from evaluators.segmenters import SEGMENTERS
    from harness.cli import build_parser
    from harness.cli.common import show_progress

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    with caplog.at_level(logging.INFO, logger="harness"):
        result = train_segmenter("synthetic", OPTIONS, steps=8, batch_size=2, progress=True)
    lines = [r.getMessage() for r in caplog.records]
    announce = [m for m in lines if m.startswith("training the harness segmenter for synthetic")]
    assert len(announce) == 1
    assert "8 steps x batch 2 on 4 train images at 16x16" in announce[0]
    assert str(result.directory) in announce[0] and "--segmenter-weights" in announce[0]
    assert any("s/step, about" in m and "remaining 2 steps" in m for m in lines)
    assert any(m.startswith("segmenter for synthetic trained in") for m in lines)
    bar = capfd.readouterr().err                     # tqdm on stderr, with its rate and ETA
    assert "[segmenter] train on synthetic" in bar and "8/8" in bar and "step" in bar
    # A cache hit trains nothing and announces nothing.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="harness"):
        assert train_segmenter("synthetic", OPTIONS, steps=8, batch_size=2).cached
    assert not any("training the harness segmenter" in r.getMessage() for r in caplog.records)
    # An estimate above LONG_TRAINING_S is a warning that says how to avoid the wait.
    import evaluators.segmenters.trained as trained
    monkeypatch.setattr(trained, "LONG_TRAINING_S", 0.0)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="harness"):
        train_segmenter("synthetic", OPTIONS, steps=8, batch_size=2, seed=3, progress=False)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "train-segmenter" in warned[0]
    assert "--segmenter-weights" in warned[0] and "dataset.crop_size" in warned[0]
    # `evaluate` / `run` show progress unless --quiet, and hand it to the segmenter's build.
    for argv in (["evaluate", "--run", "x"], ["run", "--method", "spade"]):
        assert show_progress(build_parser().parse_args(argv))
        assert not show_progress(build_parser().parse_args([*argv, "--quiet"]))
    run = SimpleNamespace(dataset=build_dataset("synthetic", OPTIONS, "val"), progress=True)
    assert _build_options(SEGMENTERS.get("synthetic-unet"), run)["progress"] is True
