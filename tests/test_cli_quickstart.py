"""The README quick start, shortened to 2 training steps per method: every registered method
(built-in and installed plugins) runs end to end on the synthetic dataset under its real
protocol and the leaderboard gets one row per method with mIoU measured."""
from __future__ import annotations

import csv
import json

import pytest

from _cli_helpers import run_cli


@pytest.mark.slow
def test_run_all_methods_on_synthetic_fills_the_leaderboard(tmp_path):
    from methods import METHODS
    proc = run_cli("run", "--method", "all", "--dataset", "synthetic",
                   "--set", "train.max_steps=2", "--runs-dir", str(tmp_path / "runs"),
                   "--results-dir", str(tmp_path / "results"), "--quiet", "--allow-missing-weights",
                   env={"HARNESS_WEIGHTS_DIR": str(tmp_path / "no-weights")}, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = json.loads(proc.stdout)
    assert sorted(s["method"] for s in summaries) == METHODS.names()
    with open(tmp_path / "results" / "leaderboard.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["dataset"] == "synthetic"]
    reproduced = {r["method"]: r for r in rows if r["kind"] == "reproduced"}
    assert sorted(reproduced) == METHODS.names()
    for name, r in reproduced.items():
        assert r["protocol_name"] == "synthetic", name
        assert r["miou_status"] == "ok" and 0 <= float(r["miou"]) <= 100, name
        assert r["accuracy_status"] == "ok", name
        assert r["fid_status"] == "skipped" and "inception" in r["fid_note"].lower(), name
    assert any(r["kind"] == "real" for r in rows)
