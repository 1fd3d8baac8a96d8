"""Run-directory bookkeeping: stage status and timings, --fresh safety, run discovery."""
from __future__ import annotations

import pytest

from harness.core.io import OutputError
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


def test_stage_timer_records_a_stop_signal_as_interrupted(tmp_path):
    """SIGTERM inside a stage raises (instead of ending the process unrecorded) and is recorded
    as 'interrupted'; the previous SIGTERM handler is back afterwards."""
    import os
    import signal
    import time

    from harness.interrupt import Interrupted

    rd = RunDir(tmp_path / "run")
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as info:
        with rd.stage_timer("cluster_features"):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)  # the handler raises at once; never reached
    assert info.value.exit_code == 128 + signal.SIGTERM
    st = rd.stage("cluster_features")
    assert st["status"] == "interrupted" and st["error"] == "Interrupted: interrupted by SIGTERM"
    assert signal.getsignal(signal.SIGTERM) == before


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


def test_sigterm_during_generate_leaves_run_json_saying_interrupted(tmp_path):
    """A real `python -m harness generate` process, SIGTERMed once its first PNG exists: it exits
    128 + 15 with one line, and run.json says 'interrupted' (not a stale 'running')."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from _cli_helpers import REPO, call_main, tiny_protocol

    size = 64  # 30 images of a deep, wide generator: seconds of work left at the signal
    sets = [f"dataset.root={tmp_path / 'syn'}", f"dataset.size={size}", "dataset.num_train=2",
            "dataset.num_val=30", f"dataset.load_size={size}", f"dataset.crop_size={size}",
            "train.max_steps=0", "train.device=cpu", "method.ngf=64", "method.g_layers=10"]
    code, out, err = call_main("train", "--method", "example-pix2pix", "--dataset", "synthetic",
                               *[a for s in sets for a in ("--set", s)],
                               "--runs-dir", str(tmp_path / "runs"), "--quiet")
    assert code == 0, err
    run = Path(json.loads(out)["run_dir"])
    proto = tiny_protocol(tmp_path, size=size, seeds=(0,))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "harness", "generate", "--run", str(run),
                             "--protocol", str(proto), "--batch-size", "1", "--quiet"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(run.glob("samples/*/*/seed0/*.png")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no PNG within 120 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines() == ["interrupted by SIGTERM"], err
    stages = json.loads((run / "run.json").read_text())["stages"]
    (name,) = [k for k in stages if k.startswith("generate/")]
    assert stages[name]["status"] == "interrupted"
    assert "interrupted by SIGTERM" in stages[name]["error"]
    done = len(list(run.glob("samples/*/*/seed0/*.png")))
    assert 1 <= done < 30
