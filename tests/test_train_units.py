"""Runner building blocks: LR schedule, sampler, checkpoint files, guards' messages, policy."""
from __future__ import annotations

import errno
import os
import random

import numpy as np
import pytest
import torch

from harness.train import checkpoint as ckpt
from harness.train import rng
from harness.train.guards import oom_message
from harness.train.sampler import ResumableSampler, TooFewSamples
from harness.train.schedule import apply_lr, lr_factor, total_steps


# --- LR schedule ------------------------------------------------------------------------------
def _official_lrs(lr0: float, niter: int, niter_decay: int) -> list[float]:
    """The official SPADE/pix2pixHD rule, run incrementally: train an epoch at `lr`, then at the
    end of every epoch > niter subtract lr0 / niter_decay (epochs are 1-indexed there)."""
    lrs, lr = [], lr0
    for epoch in range(1, niter + niter_decay + 1):
        lrs.append(lr)
        if epoch > niter:
            lr = lr - lr0 / niter_decay
    return lrs


@pytest.mark.parametrize("niter,niter_decay", [(3, 4), (0, 5), (2, 1), (5, 0)])
def test_lr_factor_matches_the_official_incremental_rule(niter, niter_decay):
    spe, lr0 = 3, 2e-4
    expected = _official_lrs(lr0, niter, niter_decay) if niter_decay else [lr0] * niter
    for epoch, lr in enumerate(expected):
        for s in range(epoch * spe, (epoch + 1) * spe):
            assert lr0 * lr_factor(s, spe, niter, niter_decay) == pytest.approx(lr, abs=1e-15)
    if niter_decay:  # the last epoch trains at lr0 / niter_decay, not 0
        assert expected[-1] == pytest.approx(lr0 / niter_decay)


def test_apply_lr_records_initial_lr_and_survives_rebuilt_optimisers():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([{"params": [p], "lr": 1e-4}])
    assert apply_lr(opt, 0.5) == [5e-5]
    assert apply_lr(opt, 0.25) == [2.5e-5]            # from initial_lr, not compounded
    assert opt.param_groups[0]["initial_lr"] == 1e-4
    rebuilt = torch.optim.Adam([p], lr=1e-4)           # e.g. pix2pixHD after niter_fix_global
    assert apply_lr(rebuilt, 0.25) == [2.5e-5]


def test_total_steps():
    assert total_steps(10, 2, 3, None) == 50
    assert total_steps(10, 2, 3, 7) == 7
    assert total_steps(10, 0, 0, 7) == 7


# --- sampler ----------------------------------------------------------------------------------
def test_ranks_partition_the_combined_batch_in_order():
    n, b = 23, 3
    one = ResumableSampler(n, per_rank_batch=2 * b, world_size=1, rank=0, seed=5)
    ranks = [ResumableSampler(n, per_rank_batch=b, world_size=2, rank=r, seed=5) for r in (0, 1)]
    assert one.steps_per_epoch == ranks[0].steps_per_epoch == n // (2 * b)
    for epoch in range(3):
        combined = list(one.epoch_batches(epoch))
        split = list(zip(*(list(s.epoch_batches(epoch)) for s in ranks)))
        assert [a + c for a, c in split] == combined
        flat = [i for batch in combined for i in batch]
        assert len(set(flat)) == len(flat)             # no repeats within an epoch
    assert one.permutation(0).tolist() != one.permutation(1).tolist()


def test_sampler_resumes_mid_epoch_and_pads_without_drop_last():
    s = ResumableSampler(10, per_rank_batch=3, seed=1)
    full = list(s.epoch_batches(2))
    assert list(s.epoch_batches(2, start=2)) == full[2:]
    assert s.batch_indices(2, 1) == full[1]
    assert s.position(7) == {"epoch": 2, "step_in_epoch": 1, "steps_per_epoch": 3,
                             "global_batch": 3, "num_samples": 10, "seed": 1}
    padded = ResumableSampler(10, per_rank_batch=3, seed=1, drop_last=False)
    batches = list(padded.epoch_batches(0))
    assert padded.steps_per_epoch == 4 and all(len(b) == 3 for b in batches)
    assert set(i for b in batches for i in b) == set(range(10))


def test_too_few_samples_names_the_numbers():
    with pytest.raises(TooFewSamples, match=r"has 3 images, fewer than one global batch of 4"):
        ResumableSampler(3, per_rank_batch=2, world_size=2, rank=0)


# --- RNG state --------------------------------------------------------------------------------
def test_rng_capture_restore_round_trip_through_a_weights_only_file(tmp_path):
    rng.seed_all(3)
    random.random(), np.random.rand(), torch.rand(1), np.random.randn()
    state = rng.capture()
    torch.save(state, tmp_path / "rng.pt")
    expected = (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist())
    rng.seed_all(99)
    rng.restore(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist()) == expected


# --- checkpoint files -------------------------------------------------------------------------
def _state(step: int, method: str = "m", dataset: str = "d") -> dict:
    return {"format": ckpt.FORMAT, "format_version": ckpt.FORMAT_VERSION, "step": step,
            "method": {"name": method, "state": {"w": torch.full((3,), float(step))}},
            "dataset": {"name": dataset, "info": {}}}


def test_write_keeps_last_k_plus_best_and_points_latest(tmp_path):
    d = tmp_path / "checkpoints"
    first = ckpt.write(d, _state(1), keep_last=2)
    ckpt.set_best(d, first, 0.5)
    for s in (2, 3, 4):
        ckpt.write(d, _state(s), keep_last=2)
    assert [s for s, _ in ckpt.list_checkpoints(d)] == [1, 3, 4]   # 1 is 'best', kept
    assert (d / "latest").read_text().strip() == "step_00000004.pt"
    assert ckpt.find_checkpoint(d, "best") == first
    assert ckpt.best_metric(d) == 0.5
    assert ckpt.find_checkpoint(d, "latest") == d / "step_00000004.pt"
    assert not (d / "step_00000002.pt.sha256").exists()
    sha = (d / "step_00000004.pt.sha256").read_text().split()[0]
    assert sha == ckpt.file_sha256(d / "step_00000004.pt")
    assert not [p for p in d.iterdir() if p.name.endswith(".tmp")]


def test_truncated_latest_falls_back_to_the_previous_one_and_says_so(tmp_path, caplog):
    d = tmp_path / "checkpoints"
    ckpt.write(d, _state(1), keep_last=3)
    newest = ckpt.write(d, _state(2), keep_last=3)
    newest.write_bytes(newest.read_bytes()[:100])
    with caplog.at_level("WARNING", logger="harness.train"):
        path, state = ckpt.read_latest(d)
    assert path == d / "step_00000001.pt" and state["step"] == 1
    text = caplog.text
    assert f"checkpoint {newest} is corrupted" in text
    assert f"falling back to the previous checkpoint {d / 'step_00000001.pt'}" in text


def test_unreadable_files_without_hash_and_foreign_files_are_named(tmp_path):
    d = tmp_path / "checkpoints"
    bad = ckpt.write(d, _state(1))
    (d / (bad.name + ".sha256")).unlink()            # e.g. a file copied without its hash
    bad.write_bytes(bad.read_bytes()[:-200])
    with pytest.raises(ckpt.CheckpointError, match=rf"checkpoint {bad} is unreadable \(truncated"):
        ckpt.read(bad)
    with pytest.raises(ckpt.CheckpointError, match=r"no readable checkpoint in .*step_00000001.pt"):
        ckpt.read_latest(d)
    foreign = tmp_path / "latest_net_G.pth"
    torch.save({"conv.weight": torch.zeros(1)}, foreign)
    with pytest.raises(ckpt.CheckpointError, match=rf"{foreign} is not a harness training checkpoint"):
        ckpt.read(foreign)
    with pytest.raises(ckpt.CheckpointError, match=r"checkpoint .*nothing.pt does not exist"):
        ckpt.read(tmp_path / "nothing.pt")


def test_full_disk_leaves_previous_checkpoint_and_pointer_intact(tmp_path, monkeypatch):
    d = tmp_path / "checkpoints"
    first = ckpt.write(d, _state(1))
    real_replace = os.replace

    def replace(src, dst, *a, **k):
        if str(dst).endswith("step_00000002.pt"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(ckpt.CheckpointError) as info:
        ckpt.write(d, _state(2))
    msg = str(info.value)
    assert f"cannot write checkpoint {d / 'step_00000002.pt'}: No space left on device" in msg
    assert f"the previous checkpoint {first} and the 'latest' pointer are unchanged" in msg
    monkeypatch.setattr(os, "replace", real_replace)
    assert ckpt.read_latest(d)[0] == first
    assert sorted(p.name for p in d.iterdir()) == ["latest", "step_00000001.pt",
                                                   "step_00000001.pt.sha256"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_checkpoint_dir_is_one_clear_error(tmp_path):
    d = tmp_path / "checkpoints"
    first = ckpt.write(d, _state(1))
    d.chmod(0o555)
    try:
        with pytest.raises(ckpt.CheckpointError, match=rf"cannot write checkpoint {d}"):
            ckpt.write(d, _state(2))
    finally:
        d.chmod(0o755)
    assert ckpt.read_latest(d)[0] == first


def test_mismatched_method_dataset_and_label_space(tmp_path):
    from harness.core.data.base import DatasetInfo

    info = DatasetInfo("d", 2, False, False, ("a", "b"), (16, 16))
    state = _state(1, method="spade", dataset="cityscapes")
    state["dataset"]["info"] = ckpt._info_dict(info)
    p = tmp_path / "x.pt"
    with pytest.raises(ckpt.CheckpointMismatch) as e:
        ckpt.check_compatible(state, p, method="pix2pixhd", dataset="ade20k", info=info)
    assert str(e.value).startswith(f"checkpoint {p} was trained with method 'spade' on dataset "
                                   "'cityscapes', but this run is method 'pix2pixhd' on dataset "
                                   "'ade20k'")
    other = DatasetInfo("d", 2, True, False, ("a", "b"), (16, 32))
    with pytest.raises(ckpt.CheckpointMismatch, match=r"contain_dontcare=False \(checkpoint\) vs "
                       r"True \(now\); image_size=\[16, 16\] \(checkpoint\) vs \[16, 32\] \(now\)"):
        ckpt.check_compatible(state, p, method="spade", dataset="cityscapes", info=other)
    ckpt.check_compatible(state, p, method="spade", dataset="cityscapes", info=info)


# --- guards -----------------------------------------------------------------------------------
def test_oom_message_names_the_setting_and_keeps_the_effective_batch():
    msg = oom_message(step=7, batch_size=4, grad_accum=2, image_size=(256, 512), world_size=2,
                      precision="fp32", device="cuda:1", peak_gib=30.5, total_gib=31.7)
    assert msg.splitlines()[0] == ("out of GPU memory at step 7 on cuda:1 (31.7 GiB, 30.5 GiB "
                                   "allocated at peak).")
    assert "4 image(s) of 512x256 (W x H) per micro-batch, grad_accum 2; world size 2; " \
           "effective batch 16; precision fp32" in msg
    assert "train.batch_size=1 train.grad_accum=8" in msg
    assert "train.precision=bf16" in msg
    bf16 = oom_message(step=0, batch_size=1, grad_accum=1, image_size=(64, 64), world_size=1,
                       precision="bf16", device="cuda:0")
    assert "train.precision=bf16" not in bf16 and "train.batch_size=1 " not in bf16
    assert "already one image per GPU" in bf16


# --- policy -----------------------------------------------------------------------------------
def test_fp16_policy_has_one_grad_scaler_per_optimiser_and_round_trips_them():
    from harness.train.policy import RunnerPolicy
    from methods.base import Phase

    pol = RunnerPolicy(device=torch.device("cpu"), precision="fp16", optimizer_names=("G", "D"))
    assert set(pol.scalers) == {"G", "D"} and pol.scalers["G"] is not pol.scalers["D"]
    # An overflowing D step: the update is skipped and only D's scale backs off.
    w = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([w], lr=1.0)
    phase = Phase("discriminator", "D", ("D",), None)
    pol.backward(phase, (w * float("inf")).sum())
    pol.step(phase, opt)
    assert w.tolist() == [1.0, 1.0]
    assert pol.scalers["D"].get_scale() == 32768.0 and pol.scalers["G"].get_scale() == 65536.0
    other = RunnerPolicy(device=torch.device("cpu"), precision="fp16", optimizer_names=("G", "D"))
    other.load_scaler_states(pol.scaler_states())
    assert other.scalers["D"].get_scale() == 32768.0 and other.scalers["G"].get_scale() == 65536.0
    assert RunnerPolicy(device=torch.device("cpu"), precision="bf16").scalers == {}
    with RunnerPolicy(device=torch.device("cpu"), precision="bf16").autocast():
        y = torch.nn.functional.linear(torch.ones(1, 2), torch.ones(3, 2))
    assert y.dtype == torch.bfloat16
