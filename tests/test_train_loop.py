"""The training loop in one process: accumulation, precision, guards, logs, resume and restore.

The method is the example plugin (tests/plugin_example) on 16 px synthetic scenes.
"""
from __future__ import annotations

import errno
import json
import os

import pytest
import torch

from _train_helpers import checkpoint_params, make_cfg, max_abs_diff, read_log
from harness.train import (CheckpointError, CheckpointMismatch, NonFiniteLossError, OutOfMemory,
                           TrainingError, restore_method, train)
from harness.train import checkpoint as ckpt


def test_grad_accum_2_of_batch_1_equals_batch_2(tmp_path):
    accum = train(make_cfg({"batch_size": 1, "grad_accum": 2, "max_steps": 3}), tmp_path / "a")
    batch = train(make_cfg({"batch_size": 2, "grad_accum": 1, "max_steps": 3}), tmp_path / "b")
    assert accum.summary["global_batch"] == batch.summary["global_batch"] == 2
    diff = max_abs_diff(checkpoint_params(accum.checkpoint), checkpoint_params(batch.checkpoint))
    assert diff < 1e-6
    # ... and both moved away from the initialisation (the test compares trained weights)
    init = make_cfg({"max_steps": 0})
    zero = train(init, tmp_path / "zero")
    assert max_abs_diff(checkpoint_params(zero.checkpoint), checkpoint_params(batch.checkpoint)) > 1e-4


def test_logs_grids_best_pointer_and_restore(tmp_path):
    run = tmp_path / "run"
    cfg = make_cfg({"max_steps": 4, "log_every": 2, "sample_every": 2, "epochs_constant": 1,
                    "epochs_decay": 1})
    result = train(cfg, run)
    assert result.step == 4 == result.total_steps and result.resumed_from is None
    log = read_log(run)
    assert [r["step"] for r in log] == [2, 4]
    assert set(log[0]["lr"]) == {"G", "D"} and log[0]["lr"]["G"] == pytest.approx(2e-4)
    assert set(log[0]["loss"]) == {"G_GAN", "G_L1", "D_fake", "D_real"}
    assert all(r["images_per_s"] > 0 and r["time_s"] >= 0 for r in log)
    from PIL import Image
    im = Image.open(run / "train_samples" / "step_00000002.png")
    from harness.train.samples import HEADER_HEIGHT
    # a header (method, step), then 4 rows of label | fake | real
    assert im.size == (3 * 16 + 2 * 2, HEADER_HEIGHT + 4 * 16 + 3 * 2)
    assert (run / "train_samples" / "step_00000004.png").is_file()
    assert (run / "config.yaml").is_file()
    assert ckpt.find_checkpoint(run / "checkpoints", "best") == result.checkpoint
    assert result.best_checkpoint == result.checkpoint

    state = torch.load(result.checkpoint, weights_only=True)
    assert state["finished"] and state["step"] == 4 and state["world_size"] == 1
    assert state["method"]["name"] == "example-pix2pix" and state["dataset"]["name"] == "synthetic"
    assert state["config_hash"] == cfg.hash() and len(state["rng"]) == 1
    assert state["sampler"] == {"epoch": 1, "step_in_epoch": 0, "steps_per_epoch": 4,
                                "global_batch": 2, "num_samples": 8, "seed": 0}

    method = restore_method(run, which="best", device="cpu")
    assert not method.nets.training
    saved = checkpoint_params(result.checkpoint)
    for k, v in method.nets["G"].state_dict().items():
        assert torch.equal(v, saved[f"G.{k}"])
    label = torch.zeros(1, 16, 16, dtype=torch.long)
    assert method.generate(label).shape == (1, 3, 16, 16)

    again = train(cfg, run)                     # finished: returns at once, nothing rewritten
    assert again.step == 4 and again.checkpoint == result.checkpoint
    assert len(read_log(run)) == 2

    with pytest.raises(CheckpointError, match=r"no checkpoint .*nothing\.pt"):
        restore_method(run, which=tmp_path / "nothing.pt")
    with pytest.raises(TrainingError, match=r"already holds checkpoints"):
        train(cfg, run, resume=False)


def test_truncated_latest_checkpoint_falls_back_and_still_resumes_exactly(tmp_path, caplog):
    cfg = make_cfg({"max_steps": 6, "epochs_constant": 2, "checkpoint_every": 2, "keep_last": 3})
    straight = train(cfg, tmp_path / "straight")
    run = tmp_path / "run"
    first = train(cfg, run)
    # the final checkpoint gets truncated (e.g. copied off a full disk)
    first.checkpoint.write_bytes(first.checkpoint.read_bytes()[:1000])
    (run / "checkpoints" / "step_00000006.pt.sha256").unlink()
    with caplog.at_level("WARNING", logger="harness.train"):
        again = train(cfg, run)
    assert f"checkpoint {first.checkpoint} is unreadable" in caplog.text
    assert f"falling back to the previous checkpoint {run / 'checkpoints' / 'step_00000004.pt'}" \
        in caplog.text
    assert again.resumed_from == 4 and again.step == 6
    assert max_abs_diff(checkpoint_params(straight.checkpoint),
                        checkpoint_params(again.checkpoint)) == 0.0
    assert [r["step"] for r in read_log(run)] == [1, 2, 3, 4, 5, 6]


def test_nan_loss_stops_with_step_terms_and_last_good_checkpoint(tmp_path):
    run = tmp_path / "run"
    cfg = make_cfg({"max_steps": 8, "checkpoint_every": 2}, {"debug_nan_at_step": 3})
    with pytest.raises(NonFiniteLossError) as info:
        train(cfg, run)
    msg = str(info.value)
    good = run / "checkpoints" / "step_00000002.pt"
    assert msg.startswith("training stopped: non-finite loss in phase 'generator' at step 3 "
                          "(epoch 0): G_GAN=")
    assert "G_L1=nan" in msg and "(non-finite: G_L1)" in msg
    assert f"last good checkpoint: {good} (step 2)" in msg
    assert info.value.step == 3 and info.value.checkpoint == good
    assert [s for s, _ in ckpt.list_checkpoints(run / "checkpoints")] == [2]


def test_out_of_memory_message(tmp_path, monkeypatch):
    from harness_plugin_example.method import ExamplePix2Pix

    def oom(self, batch, nets, step):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(ExamplePix2Pix, "discriminator_loss", oom)
    with pytest.raises(OutOfMemory) as info:
        train(make_cfg({"max_steps": 2}), tmp_path / "run")
    msg = str(info.value)
    assert msg.startswith("out of GPU memory at step 0 on cpu.")
    assert ("2 image(s) of 16x16 (W x H) per micro-batch, grad_accum 1; world size 1; effective "
            "batch 2; precision fp32") in msg
    assert "train.batch_size=1 train.grad_accum=2" in msg and "train.precision=bf16" in msg
    assert isinstance(info.value.__cause__, torch.OutOfMemoryError)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_on_cpu_trains_and_checkpoints_scalers(tmp_path, precision):
    result = train(make_cfg({"max_steps": 2, "precision": precision}), tmp_path / "run")
    state = torch.load(result.checkpoint, weights_only=True)
    assert all(torch.isfinite(v).all() for v in checkpoint_params(result.checkpoint).values())
    if precision == "fp16":
        assert set(state["scalers"]) == {"G", "D"} and state["scalers"]["G"]["scale"] > 0
    else:
        assert state["scalers"] == {}


def test_channels_last_gives_the_same_training(tmp_path):
    a = train(make_cfg({"max_steps": 2, "channels_last": True}), tmp_path / "a")
    b = train(make_cfg({"max_steps": 2}), tmp_path / "b")
    assert max_abs_diff(checkpoint_params(a.checkpoint), checkpoint_params(b.checkpoint)) < 1e-5


def test_compile_in_place_keeps_state_dict_keys():
    from harness.train.placement import compile_in_place

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    keys = list(net.state_dict())
    compile_in_place(net)
    assert list(net.state_dict()) == keys and net._compiled_call_impl is not None


# --- bad input ----------------------------------------------------------------------------------
def test_checkpoint_of_another_dataset_shape_or_method_is_refused(tmp_path):
    run = tmp_path / "run"
    cfg = make_cfg({"max_steps": 2})
    result = train(cfg, run)
    bigger = make_cfg({"max_steps": 4}, dataset=["dataset.size=24", "dataset.load_size=24",
                                                 "dataset.crop_size=24"])
    with pytest.raises(CheckpointMismatch) as info:
        train(bigger, run)
    assert str(info.value).startswith(f"checkpoint {result.checkpoint} was trained on dataset "
                                      "'synthetic' with different label semantics")
    assert "image_size=[16, 16] (checkpoint) vs [24, 24] (now)" in str(info.value)

    state = ckpt.read(result.checkpoint)
    state["method"]["name"] = "spade"
    state["step"] = 3
    foreign = ckpt.write(run / "checkpoints", state)
    with pytest.raises(CheckpointMismatch) as info:
        train(make_cfg({"max_steps": 4}), run)
    assert str(info.value).startswith(
        f"checkpoint {foreign} was trained with method 'spade' on dataset 'synthetic', but this "
        "run is method 'example-pix2pix' on dataset 'synthetic'")


def test_changed_hyper_parameters_name_the_checkpoint(tmp_path):
    run = tmp_path / "run"
    result = train(make_cfg({"max_steps": 2}), run)
    with pytest.raises(CheckpointMismatch, match=rf"checkpoint {result.checkpoint} does not fit "
                       r"method 'example-pix2pix' as configured now"):
        restore_method(run, make_cfg({"max_steps": 2}, {"ngf": 4}), device="cpu")


def test_run_dir_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(TrainingError, match=rf"the run directory {blocker / 'run'} is not "
                       r"writable: cannot create files in"):
        train(make_cfg({"max_steps": 2}), blocker / "run")


def test_full_disk_during_training_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / "run"
    real_replace = os.replace

    def replace(src, dst, *a, **k):
        if str(dst).endswith("step_00000004.pt"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(CheckpointError) as info:
        train(make_cfg({"max_steps": 6, "epochs_constant": 2, "checkpoint_every": 2}), run)
    d = run / "checkpoints"
    assert str(info.value).startswith(f"cannot write checkpoint {d / 'step_00000004.pt'}: No space "
                                      f"left on device; the previous checkpoint "
                                      f"{d / 'step_00000002.pt'} and the 'latest' pointer are "
                                      "unchanged")
    assert (d / "latest").read_text().strip() == "step_00000002.pt"
    assert ckpt.read(d / "step_00000002.pt")["step"] == 2
    assert not [p for p in d.iterdir() if p.name.endswith(".tmp")]


def test_log_lines_after_the_resumed_checkpoint_are_dropped(tmp_path):
    run = tmp_path / "run"
    train(make_cfg({"max_steps": 2}), run)
    with open(run / "train_log.jsonl", "a") as f:   # logged by a run killed after its checkpoint
        f.write(json.dumps({"step": 3}) + "\n" + '{"step": 4, "lo')
    train(make_cfg({"max_steps": 3}), run)
    assert [r["step"] for r in read_log(run)] == [1, 2, 3]


def test_best_metric_picks_the_lowest_checkpoint_and_protects_it_from_pruning(tmp_path):
    values = {2: 0.5, 4: 0.2, 6: 0.7, 8: 0.9}
    seen = []

    def metric(method, step):
        seen.append(step)
        return values[step]

    run = tmp_path / "run"
    result = train(make_cfg({"epochs_constant": 2, "checkpoint_every": 2, "keep_last": 1}), run,
                   best_metric=metric)
    d = run / "checkpoints"
    assert seen == [2, 4, 6, 8]
    assert result.best_checkpoint == d / "step_00000004.pt"
    assert ckpt.find_checkpoint(d, "best") == d / "step_00000004.pt" and ckpt.best_metric(d) == 0.2
    assert [s for s, _ in ckpt.list_checkpoints(d)] == [4, 8]      # keep_last 1 + best
    best = restore_method(run, which="best", device="cpu")
    saved = checkpoint_params(d / "step_00000004.pt")
    assert all(torch.equal(v, saved[f"D.{k}"]) for k, v in best.nets["D"].state_dict().items())
