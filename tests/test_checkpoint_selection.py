"""No test-set selection: the 'best' checkpoint is chosen on a held-out slice of the *training*
split (train.holdout / holdout_seed / select_every / select_metric), never on the evaluation
split, and the metrics record says which checkpoint was evaluated and how it was chosen.

Real training, generation and torch-fidelity FID on the tiny synthetic dataset (the stand-in
Inception of _eval_helpers, loaded by the real loading code)."""
from __future__ import annotations

import json

import pytest

from harness.core.data import build_dataset
from harness.train import checkpoint as ckpt
from harness.train.holdout import HoldoutError, holdout_keys, split_holdout

from _cli_helpers import call_main, tiny_protocol
from _eval_helpers import eval_env, eval_weights_dir, no_weights_env  # noqa: F401 (fixtures)

PLUGIN = "example-pix2pix"
OPTIONS = {"size": 16, "num_train": 8, "num_val": 4}
DATA = [f"--set=dataset.{k}={v}" for k, v in OPTIONS.items()]


def run_args(tmp_path, *extra):
    proto = tiny_protocol(tmp_path)
    return ["run", "--method", PLUGIN, "--dataset", "synthetic", *DATA,
            "--set", "train.max_steps=2", "--set", "train.checkpoint_every=0",
            "--set", "train.sample_every=0", "--set", "eval.skip=[kid, diversity, classwise]",
            "--protocol", str(proto), "--runs-dir", str(tmp_path / "runs"),
            "--results-dir", str(tmp_path / "results"), "--quiet", "--allow-missing-weights",
            *extra]


def log_lines(run_dir):
    return [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]


# --- the held-out slice ------------------------------------------------------------------------
def test_holdout_keys_are_fixed_by_their_seed_and_independent_of_order():
    keys = [f"k{i:02d}" for i in range(20)]
    a = holdout_keys(keys, 5, seed=3)
    assert a == sorted(a) and len(set(a)) == 5 and set(a) <= set(keys)
    assert holdout_keys(list(reversed(keys)), 5, seed=3) == a      # listing order irrelevant
    assert holdout_keys(keys, 5, seed=3) == a                      # fixed by the seed
    assert holdout_keys(keys, 5, seed=4) != a                      # another seed, another slice
    assert holdout_keys(keys, 0, seed=3) == []
    with pytest.raises(HoldoutError, match="only 20 images"):
        holdout_keys(keys, 20, seed=0)


def test_split_holdout_partitions_the_training_split(tmp_path):
    full = build_dataset("synthetic", {**OPTIONS, "root": str(tmp_path / "d")}, "train")
    train, held = split_holdout(full, 3, seed=0)
    assert len(held) == 3 and len(train) == 5
    assert set(train.keys()).isdisjoint(held.keys())
    assert sorted(train.keys() + held.keys()) == full.keys()
    # the parts read the same files as the full split
    k = held.keys()[0]
    i_full, i_held = full.keys().index(k), 0
    assert (full[i_full]["label"] == held[i_held]["label"]).all()


def test_select_every_needs_a_holdout(tmp_path):
    code, _, err = call_main(*run_args(tmp_path, "--set", "train.select_every=1"))
    assert code == 2 and "train.holdout" in err


# --- selection end to end ------------------------------------------------------------------------
@pytest.mark.slow
def test_best_checkpoint_never_sees_evaluation_images(tmp_path, eval_env):
    code, out, err = call_main(*run_args(
        tmp_path, "--set", "train.holdout=3", "--set", "train.select_every=1",
        "--set", "train.select_metric=fid"))
    assert code == 0, err
    run_dir = tmp_path / "runs" / "synthetic" / PLUGIN / json.loads(out)["run_id"]

    # What training used and what was held out: a partition of the training split.
    hold = json.loads((run_dir / "data" / "holdout.json").read_text())
    train_split = build_dataset("synthetic", dict(OPTIONS), "train")
    val_split = build_dataset("synthetic", dict(OPTIONS), "val")
    assert len(hold["holdout_keys"]) == 3 and len(hold["train_keys"]) == 5
    assert sorted(hold["holdout_keys"] + hold["train_keys"]) == train_split.keys()

    # The keys selection read: the held-out slice only - disjoint from the evaluation split and
    # from the training keys actually used.
    sel = json.loads((run_dir / "selection.json").read_text())
    read = set(sel["keys_read"])
    assert read == set(hold["holdout_keys"])
    assert read.isdisjoint(val_split.keys())
    assert read.isdisjoint(hold["train_keys"])
    assert sel["split"] == "train" and sel["metric"] == "fid"

    # Scored at every selection point (steps 1 and 2), in train_log.jsonl too.
    steps = [e["step"] for e in sel["evaluations"]]
    assert steps == [1, 2]
    logged = [r for r in log_lines(run_dir) if "holdout_eval" in r]
    assert [r["step"] for r in logged] == [1, 2]
    for r, e in zip(logged, sel["evaluations"]):
        assert r["holdout_eval"]["images"] == 3
        assert r["holdout_eval"]["metrics"]["fid"] == pytest.approx(e["value"])
        assert e["value"] > 0

    # 'best' is the checkpoint with the lowest held-out FID (computed here from the record).
    best_step = min(sel["evaluations"], key=lambda e: e["value"])["step"]
    best = ckpt.read_pointer(run_dir / "checkpoints", ckpt.BEST)
    assert best is not None and best.name == ckpt.step_file(best_step)
    assert ckpt.best_metric(run_dir / "checkpoints") == pytest.approx(
        min(e["value"] for e in sel["evaluations"]))

    # The evaluation used that checkpoint, and its record says how it was chosen.
    rec = _only_record(json.loads((run_dir / "metrics.json").read_text()))
    assert rec["checkpoint"]["pointer"] == "best"
    assert "best" in rec["checkpoint"]["named_by"]
    assert rec["checkpoint"]["file"] == best.name == rec["samples_origin"]["checkpoint"]
    assert "lowest fid on 3 held-out training images" in rec["checkpoint"]["chosen_by"]
    assert rec["checkpoint"]["selection"]["steps_scored"] == [1, 2]


def _only_record(data):
    """The single evaluation record of a metrics.json (whatever its top-level layout)."""
    found = []

    def walk(x):
        if isinstance(x, dict):
            if "checkpoint" in x and "metrics" in x:
                found.append(x)
                return
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(data)
    assert len(found) == 1, data
    return found[0]


def test_selection_without_weights_skips_cleanly_and_keeps_the_final_checkpoint(
        tmp_path, no_weights_env):
    code, out, err = call_main(*run_args(
        tmp_path, "--set", "train.holdout=2", "--set", "train.select_every=1",
        "--set", "train.select_metric=fid"))
    assert code == 0, err
    run_dir = tmp_path / "runs" / "synthetic" / PLUGIN / json.loads(out)["run_id"]
    logged = [r for r in log_lines(run_dir) if "holdout_eval" in r]
    assert [r["step"] for r in logged] == [1, 2]
    assert all(str(r["holdout_eval"]["metrics"]["fid"]).startswith("skipped") for r in logged)
    best = ckpt.read_pointer(run_dir / "checkpoints", ckpt.BEST)
    assert best.name == ckpt.step_file(2)        # the final checkpoint
    rec = _only_record(json.loads((run_dir / "metrics.json").read_text()))
    assert rec["checkpoint"]["file"] == best.name
    assert "could not be computed" in rec["checkpoint"]["chosen_by"]
    assert rec["checkpoint"]["named_by"] == ["best", "latest"]


def test_without_selection_the_record_names_the_final_checkpoint(tmp_path, no_weights_env):
    code, out, err = call_main(*run_args(tmp_path, "--set", "eval.skip=[fid, kid, diversity]"))
    assert code == 0, err
    run_dir = tmp_path / "runs" / "synthetic" / PLUGIN / json.loads(out)["run_id"]
    rec = _only_record(json.loads((run_dir / "metrics.json").read_text()))
    assert rec["checkpoint"]["pointer"] == "latest" and rec["checkpoint"]["holdout"] == 0
    assert rec["checkpoint"]["chosen_by"].startswith("final checkpoint of training")
    assert not (run_dir / "selection.json").exists()
    hold = json.loads((run_dir / "data" / "holdout.json").read_text())
    assert hold["holdout_keys"] == [] and len(hold["train_keys"]) == 8
