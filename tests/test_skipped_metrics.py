"""A requested metric that was skipped (a missing weights file) is summarised on stderr with the
file to provide; --strict turns it into exit status 3 (run and evaluate). Metrics skipped on
request are not gaps. Offline, no weight files."""
from __future__ import annotations

import json

import pytest

from _cli_helpers import call_main, tiny_protocol

DATA = ["--set", "dataset.size=16", "--set", "dataset.num_train=4", "--set", "dataset.num_val=4"]
INCEPTION = "weights-inception-2015-12-05-6726825d.pth"


@pytest.fixture
def offline(tmp_path, monkeypatch):
    empty = tmp_path / "no-weights"
    empty.mkdir()
    monkeypatch.setenv("HARNESS_OFFLINE", "1")
    monkeypatch.setenv("HARNESS_WEIGHTS_DIR", str(empty))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    return {"root": tmp_path, "proto": tiny_protocol(tmp_path)}


def _summary(err: str) -> list[str]:
    lines = err.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("warning: "))
    return lines[start:]


def test_run_summarises_skipped_metrics_and_strict_exits_3(offline):
    args = ["run", "--method", "example-pix2pix", "--dataset", "synthetic", *DATA,
            "--set", "train.max_steps=1", "--protocol", str(offline["proto"]),
            "--runs-dir", str(offline["root"] / "runs"), "--results-dir",
            str(offline["root"] / "results"), "--quiet", "--allow-missing-weights"]
    code, out, err = call_main(*args, "--strict")
    assert code == 3
    summary = json.loads(out)  # the results are still printed and recorded
    assert summary["metrics"]["fid"].startswith("skipped:")
    assert set(summary["skipped"]) == {"fid", "kid"} and INCEPTION in summary["skipped"]["fid"]
    lines = _summary(err)
    assert lines[0].startswith("warning: 2 requested metrics were not computed")
    assert len(lines) == 2 and lines[1].startswith("  example-pix2pix: fid, kid: weights file "
                                                   f"{INCEPTION}")
    assert "$HARNESS_WEIGHTS_DIR" in lines[1]  # where to put it
    # without --strict: the same warning, exit 0 (the run resumes: nothing is retrained)
    code, out, err = call_main(*args)
    assert code == 0 and _summary(err) == lines
    # metrics skipped on request are no gap
    code, out, err = call_main(*args, "--strict", "--set", "eval.skip=[fid, kid]")
    assert code == 0, err
    assert "warning:" not in err


def test_evaluate_images_summary_and_strict(offline, tmp_path):
    from harness.core.data.synthetic import SyntheticDataset, SyntheticOptions
    from PIL import Image
    root = tmp_path / "syn"
    val = SyntheticDataset(SyntheticOptions(root=str(root), num_train=4, num_val=4, size=16),
                           "val")
    folder = tmp_path / "images"
    folder.mkdir()
    for rec in val.records():
        Image.fromarray(val.read_image(rec)).save(folder / f"{rec.key}.png")
    args = ["evaluate", "--images", str(folder), "--dataset", "synthetic", "--protocol",
            str(offline["proto"]), "--set", f"dataset.root={root}", *DATA, "--quiet"]
    code, out, err = call_main(*args)
    assert code == 0, err
    lines = _summary(err)
    assert lines[0].startswith("warning: 2 requested metrics were not computed")
    assert f"images: fid, kid: weights file {INCEPTION}" in lines[1]
    code, out, err = call_main(*args, "--strict")
    assert code == 3 and json.loads(out)["metrics"]["kid"].startswith("skipped:")
    code, out, err = call_main(*args, "--strict", "--skip", "fid", "--skip", "kid")
    assert code == 0 and "warning:" not in err
