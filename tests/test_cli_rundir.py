"""Run-directory bookkeeping: stage status and timings, --fresh safety, run discovery."""
from __future__ import annotations

import pytest

from harness.io import OutputError
from harness.rundir import RunDir, RunError, find_runs


def test_stage_timer_records_done_and_failed(tmp_path):
    rd = RunDir(tmp_path / "run")
    with rd.stage_timer("generate/p/random", images=3) as summary:
        assert rd.stage("generate/p/random")["status"] == "running"
        summary["written"] = 3
    st = rd.stage("generate/p/random")
    assert st["status"] == "done" and st["written"] == 3 and st["images"] == 3
    assert st["seconds"] >= 0 and st["error"] is None and rd.stage_done("generate/p/random")
    with pytest.raises(ZeroDivisionError):
        with rd.stage_timer("evaluate/p/random"):
            1 / 0
    st = rd.stage("evaluate/p/random")
    assert st["status"] == "failed" and st["error"].startswith("ZeroDivisionError")
    assert not rd.stage_done("evaluate/p/random")
    assert rd.status()["run_id"] == "run"


def test_clear_refuses_folders_that_are_not_runs(tmp_path):
    precious = tmp_path / "synthetic" / "spade" / "thesis"
    precious.mkdir(parents=True)
    (precious / "notes.txt").write_text("do not delete")
    with pytest.raises(OutputError, match="does not look like a run directory"):
        RunDir(precious).clear()
    assert (precious / "notes.txt").is_file()
    run = tmp_path / "synthetic" / "spade" / "r1"
    (run / "checkpoints").mkdir(parents=True)
    RunDir(run).clear()
    assert not run.exists()
    RunDir(run).clear()  # nothing to clear is fine


def test_open_and_find(tmp_path):
    with pytest.raises(RunError, match="does not exist"):
        RunDir.open(tmp_path / "nope")
    (tmp_path / "x").mkdir()
    with pytest.raises(RunError, match="is not a run directory: it has no config.yaml"):
        RunDir.open(tmp_path / "x")
    for name in ("a", "b"):
        p = tmp_path / "runs" / "synthetic" / "spade" / name
        p.mkdir(parents=True)
        (p / "config.yaml").write_text("name: x\n")
    (tmp_path / "runs" / "synthetic" / "spade" / "not-a-run").mkdir()
    assert [r.run_id for r in find_runs(tmp_path / "runs")] == ["a", "b"]
    assert find_runs(tmp_path / "missing") == []
    rd = RunDir.open(tmp_path / "runs" / "synthetic" / "spade" / "a")
    assert rd.samples_dir("p-123", "random") == rd.path / "samples" / "p-123" / "random"
    assert rd.manifest_file("p-123", "encoded").name == "manifest.json"
