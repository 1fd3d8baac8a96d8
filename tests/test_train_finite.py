"""No checkpoint holds a non-finite state: checked before every write and on every read.

The method is the example plugin with a BatchNorm in front of its generator, registered for
these tests; ``poison_at_step`` sets that BatchNorm's running_var to inf right after a training
step (train-mode BatchNorm uses the batch's statistics, so the losses stay finite: the case the
loss guard cannot see).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from _cli_helpers import call_main
from _train_helpers import DATASET_OVERRIDES, checkpoint_params, make_cfg, read_log
from harness.train import (CheckpointError, NonFiniteCheckpoint, NonFiniteStateError,
                           restore_method, train)
from harness.train import checkpoint as ckpt
from harness_plugin_example.method import ExampleConfig, ExamplePix2Pix

NAME = "example-batchnorm"
TRAIN = {"max_steps": 6, "epochs_constant": 2, "checkpoint_every": 2, "keep_last": 5}


@dataclass
class PoisonConfig(ExampleConfig):
    poison_at_step: int | None = None     # 0-indexed step after which running_var becomes inf


class ExampleWithBatchNorm(ExamplePix2Pix):
    Config = PoisonConfig

    def __init__(self, cfg, info, runtime=None):
        super().__init__(cfg, info, runtime)
        self.nets["G"] = nn.Sequential(nn.BatchNorm2d(self.in_channels), self.nets["G"])
        self._optimizers["G"] = torch.optim.Adam(self.nets["G"].parameters(), lr=cfg.lr,
                                                 betas=(cfg.beta1, cfg.beta2))

    def train_step(self, batch, step):
        losses = super().train_step(batch, step)
        if step == self.cfg.poison_at_step:
            self.nets["G"][0].running_var.fill_(float("inf"))
        return losses


@pytest.fixture(autouse=True, scope="module")
def registered():
    from methods import METHODS
    METHODS.add(NAME, ExampleWithBatchNorm, "test (tests/test_train_finite.py)")
    yield
    METHODS.reload()


def cfg_of(poison=None, **train):
    return make_cfg({**TRAIN, **train}, {"poison_at_step": poison}, method_name=NAME)


def test_an_inf_buffer_stops_training_and_latest_best_keep_the_finite_checkpoint(tmp_path):
    run = tmp_path / "run"
    d = run / "checkpoints"
    with pytest.raises(NonFiniteStateError) as info:
        # 'best' by a metric: the lowest value would be the poisoned state's
        train(cfg_of(poison=2), run, best_metric=lambda method, step: -float(step))
    msg, good = str(info.value), d / "step_00000002.pt"
    assert "\n" not in msg
    assert msg.startswith("training stopped: the model state is not finite at step 4, so it was "
                          "not saved: first non-finite tensor G.0.running_var (shape [10]: 10 inf "
                          "of 10 values)")
    assert f"the newest finite checkpoint {good} (step 2) stays 'latest'" in msg
    assert info.value.step == 4 and info.value.tensor == "G.0.running_var"
    assert info.value.checkpoint == good
    assert [s for s, _ in ckpt.list_checkpoints(d)] == [2]
    assert ckpt.read_pointer(d, "latest") == good == ckpt.read_pointer(d, "best")
    assert torch.isfinite(checkpoint_params(good)["G.0.running_var"]).all()
    # running again resumes from the finite state (here without the fault) and finishes
    again = train(cfg_of(), run)
    assert again.resumed_from == 2 and again.step == 6
    assert [r["step"] for r in read_log(run)] == [1, 2, 3, 4, 5, 6]
    assert all(torch.isfinite(v).all() for v in checkpoint_params(again.checkpoint).values()
               if v.is_floating_point())


def test_the_command_line_reports_it_in_one_line(tmp_path):
    sets = [a for o in DATASET_OVERRIDES + [f"train.{k}={v}" for k, v in TRAIN.items()] +
            ["train.device=cpu", "train.progress=false", "method.poison_at_step=2",
             "method.ngf=8", "method.ndf=8"] for a in ("--set", o)]
    code, out, err = call_main("train", "--method", NAME, "--dataset", "synthetic", *sets,
                               "--runs-dir", str(tmp_path / "runs"), "--quiet")
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: training stopped: the model state is not finite at step 4")
    assert "G.0.running_var" in lines[0]
    (status,) = (tmp_path / "runs").glob("synthetic/*/*/run.json")
    assert json.loads(status.read_text())["stages"]["train"]["status"] == "failed"


def _poisoned_copy(src, dst, key="G.0.running_var"):
    """``src`` saved again with one tensor set to inf, with a valid sha256 sidecar: a checkpoint
    as an older harness (without the check) could have written it."""
    state = torch.load(src, map_location="cpu", weights_only=True)
    net, name = key.split(".", 1)
    state["method"]["state"]["networks"][net][name][1] = float("inf")
    torch.save(state, dst)
    (dst.parent / (dst.name + ".sha256")).write_text(f"{ckpt.file_sha256(dst)}  {dst.name}\n")


def test_a_non_finite_checkpoint_on_disk_is_refused_and_resume_falls_back(tmp_path, caplog):
    run = tmp_path / "run"
    d = run / "checkpoints"
    first = train(cfg_of(max_steps=4), run)
    newest = d / "step_00000004.pt"
    assert first.checkpoint == newest
    _poisoned_copy(newest, newest)
    with pytest.raises(NonFiniteCheckpoint, match=r"step_00000004\.pt \(step 4\) holds non-finite "
                                                  r"values: G\.0\.running_var \(shape \[10\]: 1 "
                                                  r"inf of 10 values\)"):
        restore_method(run, which=newest)
    with caplog.at_level("WARNING", logger="harness.train"):
        method = restore_method(run)                  # 'latest' falls back, saying why
    assert "holds non-finite values" in caplog.text and "falling back" in caplog.text
    assert torch.isfinite(method.nets["G"][0].running_var).all()
    again = train(cfg_of(), run)                      # resume from step 2, the finite one
    assert again.resumed_from == 2 and again.step == 6
    # nothing finite left: one clear error
    for _, p in ckpt.list_checkpoints(d):
        _poisoned_copy(p, p)
    with pytest.raises(CheckpointError, match=r"no readable checkpoint in .*holds non-finite"):
        train(cfg_of(), run)
