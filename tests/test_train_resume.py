"""Exact resume across real process deaths: SIGKILL after a durable checkpoint, SIGTERM/SIGINT.

A straight run of 8 steps (2 epochs, checkpoint every 4) is the reference. The interrupted runs
are separate processes (tests/_train_helpers.py as a script); the resumed half runs here. CPU,
deterministic mode: the final parameters and optimiser states must be bitwise equal.
"""
from __future__ import annotations

import signal

import pytest
import torch

from _train_helpers import (Worker, checkpoint_params, kill_pids, make_cfg, max_abs_diff,
                            optimizer_state, paused_pids, read_log, write_cfg)
from harness.train import checkpoint as ckpt
from harness.train import train

# 2 epochs of 4 steps, the second one at half the learning rate (linear decay over 2 epochs)
TRAIN = {"epochs_constant": 0, "epochs_decay": 2, "checkpoint_every": 4, "keep_last": 5}


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    run = tmp_path_factory.mktemp("straight")
    result = train(make_cfg(TRAIN), run)
    assert result.step == 8
    return result


def _assert_same_training(a, b):
    assert max_abs_diff(checkpoint_params(a), checkpoint_params(b)) == 0.0
    oa, ob = optimizer_state(a), optimizer_state(b)
    for name in ("G", "D"):
        for pid, st in oa[name]["state"].items():
            for key, value in st.items():
                assert torch.equal(value, ob[name]["state"][pid][key]), (name, pid, key)
        assert oa[name]["param_groups"][0]["lr"] == ob[name]["param_groups"][0]["lr"]


def test_sigkill_after_a_durable_checkpoint_then_resume_is_exact(tmp_path, straight):
    run = tmp_path / "run"
    cfg = make_cfg(TRAIN)
    worker = Worker(write_cfg(cfg, tmp_path / "cfg.yaml"), run, HARNESS_TEST_PAUSE_AT_STEP="4")
    try:
        worker.wait_for("HARNESS_TEST_PAUSED step=4")
        worker.kill(signal.SIGKILL)
    finally:
        worker.cleanup()
    assert worker.returncode == -signal.SIGKILL
    d = run / "checkpoints"
    assert (d / "latest").read_text().strip() == "step_00000004.pt"
    resumed = train(cfg, run)
    assert resumed.resumed_from == 4 and resumed.step == 8
    _assert_same_training(straight.checkpoint, resumed.checkpoint)
    # the schedule continued where it was (the SPADE-family code restarts at lr0 on resume)
    log = read_log(run)
    assert [r["step"] for r in log] == list(range(1, 9))
    assert [r["lr"]["G"] for r in log] == [2e-4] * 4 + [1e-4] * 4


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_saves_at_the_step_boundary_and_resumes_exactly(tmp_path, straight, sig):
    run = tmp_path / "run"
    cfg = make_cfg(TRAIN)
    worker = Worker(write_cfg(cfg, tmp_path / "cfg.yaml"), run, HARNESS_TEST_PAUSE_AT_STEP="3")
    try:
        kill_pids(paused_pids(worker.wait_for("HARNESS_TEST_PAUSED step=3")), sig)
        worker.wait(timeout=60)
    finally:
        worker.cleanup()
    err = worker.stderr
    path = run / "checkpoints" / "step_00000003.pt"
    assert worker.returncode == 128 + sig, err
    name = signal.Signals(sig).name
    assert (f"training interrupted by {name} at step 3 of 8; checkpoint saved: {path}. Run the "
            "same command again (same run directory) to resume from it exactly.") in err
    assert "Traceback" not in err
    assert ckpt.read(path)["step"] == 3 and not ckpt.read(path)["finished"]
    resumed = train(cfg, run)
    assert resumed.resumed_from == 3
    _assert_same_training(straight.checkpoint, resumed.checkpoint)
