"""`run --seeds`: one run per training seed (train.seed, not the protocol's generation seeds),
resumable one by one, and a leaderboard row with mean ± std over the seeds and their count."""
from __future__ import annotations

import csv
import json
import statistics

from pathlib import Path

import pytest

from harness.cli.training_seeds import parse_training_seeds
from harness.core.config import ConfigError
from harness.results.leaderboard import Row
from harness.results.training_seeds import seeds_label

from _cli_helpers import call_main, tiny_protocol
from _eval_helpers import eval_env, eval_weights_dir  # noqa: F401 (fixtures)

PLUGIN = "example-pix2pix"
DATA = ["--set", "dataset.size=16", "--set", "dataset.num_train=4", "--set", "dataset.num_val=4"]


@pytest.fixture
def work(tmp_path, eval_env):
    # offline, with the stand-in Inception of _eval_helpers: FID is computed for every seed
    return {"runs": tmp_path / "runs", "results": tmp_path / "results",
            "proto": tiny_protocol(tmp_path)}


def run_args(work, *extra):
    return ["run", "--method", PLUGIN, "--dataset", "synthetic", *DATA,
            "--set", "train.max_steps=1", "--set", "train.sample_every=0",
            "--set", "eval.skip=[kid, diversity, classwise]",
            "--protocol", str(work["proto"]), "--runs-dir", str(work["runs"]),
            "--results-dir", str(work["results"]), "--quiet", "--allow-missing-weights", *extra]


def test_parse_training_seeds():
    assert parse_training_seeds("0,1,2") == [0, 1, 2]
    assert parse_training_seeds(" 3 , 1 ") == [3, 1]
    for bad, why in [("", "expected training seeds"), ("0,x", "not an integer"),
                     ("1,1", "given twice"), ("-1", ">= 0")]:
        with pytest.raises(ConfigError, match=why):
            parse_training_seeds(bad)


def test_seed_counts_in_rows():
    def row(seeds, n_runs, kind="reproduced"):
        return Row(kind=kind, dataset="d", label="m", cells={}, train_seeds=tuple(seeds),
                   n_runs=n_runs)
    assert seeds_label(row([0], 1)) == "1 seed"
    assert seeds_label(row([0, 1, 2], 3)) == "3 seeds"
    assert seeds_label(row([], 1)) == "1 run"                    # an image folder: no seed
    assert seeds_label(row([0], 2)) == "2 runs (1 training seeds known)"
    assert seeds_label(row([], 0, kind="real")) == ""


def test_seeds_conflicts_are_user_errors(work):
    code, _, err = call_main(*run_args(work, "--seeds", "0,1", "--set", "train.seed=3"))
    assert code == 2 and "--seeds" in err and "train.seed" in err
    code, _, err = call_main(*run_args(work, "--seeds", "0,1", "--run-id", "x"))
    assert code == 2 and "--run-id" in err
    code, _, err = call_main(*run_args(work, "--seeds", "a"))
    assert code == 2 and "not an integer" in err


@pytest.mark.slow
def test_one_run_per_seed_resumable_and_aggregated(work):
    # Seed 0 first (as if a two-seed command had stopped after it) ...
    code, out, err = call_main(*run_args(work, "--seeds", "0"))
    assert code == 0, err
    first = json.loads(out)
    assert first["train_seed"] == 0
    seed0 = Path(first["run_dir"])
    stamps = {p.name: p.stat().st_mtime_ns for p in (seed0 / "checkpoints").iterdir()}
    # ... then the two-seed command: seed 0 is not trained again, seed 1 is.
    code, out, err = call_main(*run_args(work, "--seeds", "0,1"))
    assert code == 0, err
    runs = json.loads(out)
    assert [r["train_seed"] for r in runs] == [0, 1]
    assert runs[0]["run_dir"] == first["run_dir"] and runs[1]["run_dir"] != first["run_dir"]
    # seed 0's checkpoints untouched (not retrained), seed 1 trained to its single step
    assert {p.name: p.stat().st_mtime_ns for p in (seed0 / "checkpoints").iterdir()} == stamps
    assert (Path(runs[1]["run_dir"]) / "checkpoints" / "step_00000001.pt").is_file()

    # Each seed is its own run directory; its config and record carry the training seed, and
    # the generation seeds ("seeds") are the protocol's, unchanged.
    records = []
    for r in runs:
        run_dir = Path(r["run_dir"])
        assert f"seed: {r['train_seed']}" in (run_dir / "config.yaml").read_text()
        data = json.loads((run_dir / "metrics.json").read_text())
        (rec,) = [v for v in _records(data)]
        assert rec["train_seed"] == r["train_seed"] and rec["seeds"] == [0]
        records.append(rec)
    assert records[0]["variant_hash"] == records[1]["variant_hash"]
    assert records[0]["config_hash"] != records[1]["config_hash"]

    # The leaderboard: one row over both seeds, "2 seeds", mean ± sample std over the runs of
    # every metric both computed (compared with a direct computation on the records).
    rows = list(csv.DictReader((work["results"] / "leaderboard.csv").open()))
    (row,) = [r for r in rows if r["kind"] == "reproduced"]
    assert row["n_runs"] == "2" and row["train_seeds"] == "0;1"
    md = (work["results"] / "leaderboard.md").read_text()
    assert "| 2 seeds |" in md and "Training seeds" in md
    computed = [name for name, m in records[0]["metrics"].items()
                if isinstance(m, dict) and m.get("status", "ok") == "ok"
                and records[1]["metrics"][name].get("status", "ok") == "ok"
                and name in {"fid", "kid", "miou", "accuracy", "lpips_diversity"}]
    assert "fid" in computed
    for name in computed:
        values = [rec["metrics"][name]["value"] for rec in records]
        assert values[0] != values[1]          # two seeds, two trained generators
        assert float(row[name]) == pytest.approx(statistics.fmean(values), abs=1e-6)
        assert float(row[f"{name}_std"]) == pytest.approx(statistics.stdev(values), abs=1e-6)

    # Re-running the same command trains nothing again.
    code, out, err = call_main(*run_args(work, "--seeds", "0,1"))
    assert code == 0, err
    assert {p.name: p.stat().st_mtime_ns for p in (seed0 / "checkpoints").iterdir()} == stamps


def _records(data):
    found = []

    def walk(x):
        if isinstance(x, dict):
            if "train_seed" in x and "metrics" in x:
                found.append(x)
                return
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(data)
    return found
