"""DDP through real torchrun (gloo, CPU): N processes take the step one process takes with the
combined batch - also across a SIGTERM (checkpoint of every rank's RNG) and a resume, and with
gradient accumulation (no_sync).

The example plugin method has no batch-statistics layers and no randomness, so the results must
agree to float tolerance (the gradients are averaged in a different order).
"""
from __future__ import annotations

import os
import signal

import pytest
import torch

from _train_helpers import (Worker, checkpoint_params, make_cfg, max_abs_diff, read_log,
                            run_worker, write_cfg)
from harness.train import train

TOL = 1e-6


@pytest.mark.slow
def test_two_processes_stopped_and_resumed_equal_one_process_with_the_combined_batch(tmp_path):
    # 8 images, 1 per process -> 4 steps per epoch, the same 4 global batches of 2 as below
    ddp_cfg = make_cfg({"batch_size": 1})
    cfg_file = write_cfg(ddp_cfg, tmp_path / "ddp.yaml")
    run = tmp_path / "ddp"
    worker = Worker(cfg_file, run, nproc=2, HARNESS_TEST_PAUSE_AT_STEP="3")
    try:
        worker.wait_for("HARNESS_TEST_PAUSED step=3", count=2)
        os.kill(worker.proc.pid, signal.SIGTERM)   # to torchrun, which forwards it to the ranks
        assert worker.wait(timeout=90) != 0
    finally:
        worker.cleanup()
    path = run / "checkpoints" / "step_00000003.pt"
    assert f"training interrupted by SIGTERM at step 3 of 4; checkpoint saved: {path}" in worker.stderr
    state = torch.load(path, weights_only=True)
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])  # seed + rank

    done = run_worker(cfg_file, run, nproc=2)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming from" in done.stderr and "step 3 of 4" in done.stderr

    one = train(make_cfg({"batch_size": 2}), tmp_path / "one")
    ddp_final = run / "checkpoints" / "step_00000004.pt"
    assert max_abs_diff(checkpoint_params(one.checkpoint), checkpoint_params(ddp_final)) < TOL
    # the logged losses are means over all ranks: the same numbers as one process logs
    for a, b in zip(read_log(run), read_log(tmp_path / "one"), strict=True):
        assert a["step"] == b["step"] and a["loss"] == pytest.approx(b["loss"], rel=1e-5)


def test_two_processes_with_gradient_accumulation_equal_one_process(tmp_path):
    # per process 2 micro-batches of 1 image (DDP no_sync on the first) -> global batch 4
    ddp_cfg = make_cfg({"batch_size": 1, "grad_accum": 2})
    run = tmp_path / "ddp"
    done = run_worker(write_cfg(ddp_cfg, tmp_path / "ddp.yaml"), run, nproc=2)
    assert done.returncode == 0, done.stderr[-3000:]
    one = train(make_cfg({"batch_size": 4}), tmp_path / "one")
    assert one.step == 2
    ddp_final = run / "checkpoints" / "step_00000002.pt"
    assert max_abs_diff(checkpoint_params(one.checkpoint), checkpoint_params(ddp_final)) < TOL
