"""The built-in methods through the runner, at tiny sizes: exact resume from mid-run checkpoints
(CPU, deterministic: bitwise), and pix2pixHD under DDP (torchrun, gloo) against one process.

pix2pixHD runs with the local enhancer and niter_fix_global=1 (its generator optimiser is
rebuilt over all parameters at the start of epoch 1, and the DDP wrapper with it) and with
instance features (encoder trained in the G phase, K-means clusters after training).
"""
from __future__ import annotations

import pytest
import torch

from _train_helpers import (checkpoint_params, copy_checkpoint, make_cfg, max_abs_diff,
                            norm_cancelled_biases, optimizer_state, run_worker, write_cfg)
from harness.train import restore_method, train

PIX2PIXHD = {"netG": "local", "ngf": 4, "n_downsample_global": 2, "n_blocks_global": 1,
             "n_blocks_local": 1, "niter_fix_global": 1, "ndf": 4, "num_D": 2, "lambda_vgg": 0.0,
             "instance_feat": True, "nef": 4, "n_downsample_E": 2}
SPADE = {"ngf": 2, "ndf": 4, "spade_nhidden": 8, "use_vae": True, "z_dim": 8,
         "encoder_input_size": 32, "lambda_vgg": 0.0, "num_D": 1}
CCFPSE = {"ngf": 2, "ndf": 2, "z_dim": 8, "hidden": 4, "encoder_input_size": 16, "use_vae": True,
          "vgg_loss": False}
# method, its tiny config, image size, steps whose checkpoint a resumed run starts from
CASES = [("pix2pixhd", PIX2PIXHD, 16, (2, 6)), ("spade", SPADE, 32, (2,)),
         ("ccfpse", CCFPSE, 64, (4,))]
TRAIN = {"epochs_constant": 2, "checkpoint_every": 2, "keep_last": 10}


def _require(name):
    from methods import METHODS
    if name not in METHODS:
        pytest.skip(f"method {name} is not available")


@pytest.mark.parametrize("name,method,size,resume_at", CASES, ids=[c[0] for c in CASES])
def test_resumed_runs_equal_the_straight_run_bitwise(tmp_path, name, method, size, resume_at):
    _require(name)
    cfg = make_cfg(TRAIN, method, method_name=name, size=size)
    straight = train(cfg, tmp_path / "straight")
    assert straight.step == 8
    final = checkpoint_params(straight.checkpoint)
    for k in resume_at:
        run = tmp_path / f"from{k}"
        copy_checkpoint(straight.checkpoint.parent / f"step_{k:08d}.pt", run)
        resumed = train(cfg, run)
        assert resumed.resumed_from == k and resumed.step == 8
        assert max_abs_diff(final, checkpoint_params(resumed.checkpoint)) == 0.0, (name, k)
        a, b = optimizer_state(straight.checkpoint), optimizer_state(resumed.checkpoint)
        for opt in a:
            assert a[opt]["param_groups"][0]["lr"] == b[opt]["param_groups"][0]["lr"]
            for pid, st in a[opt]["state"].items():
                for key, value in st.items():
                    assert torch.equal(value, b[opt]["state"][pid][key]), (name, k, opt, key)
        assert resumed.summary["after_training"] == straight.summary["after_training"]


def test_pix2pixhd_rebuilt_optimiser_and_clusters_survive_the_checkpoint(tmp_path):
    _require("pix2pixhd")
    result = train(make_cfg(TRAIN, PIX2PIXHD, method_name="pix2pixhd"), tmp_path / "run")
    assert result.summary["after_training"]["feature_clusters"]
    method = restore_method(tmp_path / "run", device="cpu")
    assert not method.global_fixed and method.clusters
    # after niter_fix_global the G optimiser covers all of G and E
    n_params = len(list(method.nets["G"].parameters())) + len(list(method.nets["E"].parameters()))
    assert len(method.optimizers()["G"].param_groups[0]["params"]) == n_params


@pytest.mark.slow
def test_pix2pixhd_two_processes_equal_one_process_with_the_combined_batch(tmp_path):
    _require("pix2pixhd")
    ddp_cfg = make_cfg({"epochs_constant": 2, "batch_size": 1}, PIX2PIXHD, method_name="pix2pixhd")
    run = tmp_path / "ddp"
    done = run_worker(write_cfg(ddp_cfg, tmp_path / "ddp.yaml"), run, nproc=2, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    one = train(make_cfg({"epochs_constant": 2, "batch_size": 2}, PIX2PIXHD,
                         method_name="pix2pixhd"), tmp_path / "one")
    ddp_final = run / "checkpoints" / "step_00000008.pt"
    skip = norm_cancelled_biases(restore_method(tmp_path / "one", device="cpu"))
    assert skip  # conv biases before InstanceNorm: gradient is rounding noise (see helper)
    diff = max_abs_diff(checkpoint_params(one.checkpoint), checkpoint_params(ddp_final), skip)
    assert diff < 1e-5
