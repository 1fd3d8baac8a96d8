"""Checkpoint files on disk: corruption with and without the sha256 sidecar, fallback to the
previous valid checkpoint, stale temporary files from a killed write. Real training runs of the
example plugin (tests/plugin_example) at 16 px."""
from __future__ import annotations

import struct
import zipfile

import pytest

from _train_helpers import checkpoint_params, make_cfg, max_abs_diff
from harness.train import CheckpointError, train
from harness.train import checkpoint as ckpt

TRAIN = {"epochs_constant": 2, "checkpoint_every": 2, "keep_last": 5}


def flip_a_tensor_byte(path):
    """Flip one bit in the middle of the largest tensor's bytes: the archive stays complete and
    torch.load reads it without complaint (it does not check the zip CRC-32s)."""
    with zipfile.ZipFile(path) as archive:
        member = max((m for m in archive.infolist() if "/data/" in m.filename),
                     key=lambda m: m.file_size)
    raw = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", raw[member.header_offset + 26:
                                                   member.header_offset + 30])
    start = member.header_offset + 30 + name_len + extra_len
    raw[start + member.file_size // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    return member.filename


@pytest.mark.parametrize("sidecar", [False, True], ids=["no-sidecar", "sidecar"])
def test_a_flipped_byte_is_detected_and_resume_falls_back_to_the_previous_checkpoint(
        tmp_path, caplog, sidecar):
    run = tmp_path / "run"
    d = run / "checkpoints"
    train(make_cfg({**TRAIN, "max_steps": 4}), run)
    newest = d / "step_00000004.pt"
    member = flip_a_tensor_byte(newest)
    if not sidecar:
        (d / "step_00000004.pt.sha256").unlink()   # e.g. copied without its sidecar
    with caplog.at_level("WARNING", logger="harness.train"):
        resumed = train(make_cfg({**TRAIN, "max_steps": 6}), run)
    if sidecar:
        assert f"checkpoint {newest} is corrupted: its sha256" in caplog.text
    else:
        assert (f"checkpoint {newest} is corrupted: its member {member!r} fails its CRC-32 check "
                "(and it has no step_00000004.pt.sha256 sidecar to compare with)") in caplog.text
    assert f"falling back to the previous checkpoint {d / 'step_00000002.pt'}" in caplog.text
    assert resumed.resumed_from == 2 and resumed.step == 6
    # the run continued from the valid state: the same weights as an uninterrupted run
    straight = train(make_cfg({**TRAIN, "max_steps": 6}), tmp_path / "straight")
    assert max_abs_diff(checkpoint_params(straight.checkpoint),
                        checkpoint_params(resumed.checkpoint)) == 0.0


def test_no_valid_checkpoint_is_one_clear_error_naming_each_file(tmp_path):
    run = tmp_path / "run"
    d = run / "checkpoints"
    train(make_cfg({**TRAIN, "max_steps": 4}), run)
    for _, p in ckpt.list_checkpoints(d):
        flip_a_tensor_byte(p)
        (d / (p.name + ".sha256")).unlink()
    with pytest.raises(CheckpointError) as info:
        train(make_cfg({**TRAIN, "max_steps": 6}), run)
    msg = str(info.value)
    assert msg.startswith(f"no readable checkpoint in {d}: ")
    assert msg.count("fails its CRC-32 check") == 2
    assert "step_00000004.pt" in msg and "step_00000002.pt" in msg
    assert "to train from the start" in msg


def test_stale_temporary_files_of_a_killed_write_are_removed_at_start(tmp_path, caplog):
    run = tmp_path / "run"
    d = run / "checkpoints"
    train(make_cfg({**TRAIN, "max_steps": 2}), run)
    ours = [".step_00000004.pt.k3j2_x9a.tmp", ".step_00000004.pt.sha256.a8d7f6s5.tmp",
            ".latest.q1w2e3r4.tmp", ".best.zz00yy11.tmp"]
    others = ["notes.tmp", ".my-editor-swap.tmp", "step_00000004.pt.tmp"]
    for name in ours + others:
        (d / name).write_bytes(b"half a file")
    with caplog.at_level("WARNING", logger="harness.train"):
        resumed = train(make_cfg({**TRAIN, "max_steps": 4}), run)
    assert resumed.resumed_from == 2 and resumed.step == 4
    assert not any((d / name).exists() for name in ours)
    assert all((d / name).read_bytes() == b"half a file" for name in others)
    assert f"removed 4 temporary file(s) left by an interrupted checkpoint write in {d}" \
        in caplog.text


def test_write_refuses_a_non_finite_state_and_leaves_latest_alone(tmp_path):
    import torch

    d = tmp_path / "checkpoints"
    state = {"format": ckpt.FORMAT, "format_version": ckpt.FORMAT_VERSION, "step": 1,
             "method": {"name": "m", "state": {"networks": {"G": {"w": torch.ones(3)}}}},
             "dataset": {"name": "d", "info": {}}}
    first = ckpt.write(d, state)
    state["step"] = 2
    state["method"]["state"]["networks"]["G"]["w"] = torch.tensor([1.0, float("nan"), 2.0])
    with pytest.raises(ckpt.NonFiniteCheckpoint, match=r"refusing to write checkpoint .*"
                       r"step_00000002\.pt: the state holds non-finite values: G\.w \(shape \[3\]: "
                       r"1 NaN of 3 values\); 'latest' \(step_00000001\.pt\) is unchanged"):
        ckpt.write(d, state)
    assert sorted(p.name for p in d.iterdir()) == ["latest", first.name, first.name + ".sha256"]
    assert ckpt.read_pointer(d) == first
