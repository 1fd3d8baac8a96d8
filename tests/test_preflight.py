"""Preflight: every weight file a run needs and the protocol's fit to the dataset are checked
before anything is built or trained; all problems come in one error (exit 2) with where to put
each file; --allow-missing-weights lets a run go on without a metric's file (never without a
file training needs). Offline with no weight file anywhere, as on a fresh machine."""
from __future__ import annotations

import time

import pytest

from _cli_helpers import call_main, tiny_protocol

DATA = ["--set", "dataset.size=16", "--set", "dataset.num_train=4", "--set", "dataset.num_val=4",
        "--set", "train.max_steps=2"]
VGG = "vgg19-dcbb9e9d.pth"
INCEPTION = "weights-inception-2015-12-05-6726825d.pth"
ALEXNET = "alexnet-owt-7be5be79.pth"


@pytest.fixture
def offline(tmp_path, monkeypatch):
    empty = tmp_path / "no-weights"
    empty.mkdir()
    monkeypatch.setenv("HARNESS_OFFLINE", "1")
    monkeypatch.setenv("HARNESS_WEIGHTS_DIR", str(empty))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HARNESS_ALLOW_UNVERIFIED_WEIGHTS", raising=False)
    return {"weights": empty, "runs": tmp_path / "runs", "results": tmp_path / "results",
            "proto": tiny_protocol(tmp_path)}


def run(offline, method, *extra):
    return call_main("run", "--method", method, "--dataset", "synthetic", *DATA,
                     "--protocol", str(offline["proto"]), "--runs-dir", str(offline["runs"]),
                     "--results-dir", str(offline["results"]), "--quiet", *extra)


def test_missing_files_stop_the_run_before_anything_is_built(offline):
    start = time.perf_counter()
    code, out, err = run(offline, "spade,ccfpse", "--set", "method.lambda_vgg=10",
                         "--set", "method.use_vae=true")
    seconds = time.perf_counter() - start
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert lines[0] == "error: preflight: 3 problems found before training (nothing was built " \
                       "or trained):"
    # one line per missing file, naming every configuration that needs it and where to put it
    vgg = [ln for ln in lines if VGG in ln]
    assert len(vgg) == 1 and "[spade-synthetic] VGG19 perceptual loss" in vgg[0]  # ccfpse: off
    assert "needed to train" in vgg[0] and f"{offline['weights']}" not in vgg[0]
    assert f"$HARNESS_WEIGHTS_DIR/{VGG}" in vgg[0] and "--allow-missing-weights" not in vgg[0]
    inception = [ln for ln in lines if INCEPTION in ln]
    assert len(inception) == 1 and "[spade-synthetic, ccfpse-synthetic]" in inception[0]
    assert "(fid, kid)" in inception[0]
    assert "--allow-missing-weights" in inception[0]
    # LPIPS diversity: both are multimodal with their encoders (use_vae)
    alex = [ln for ln in lines if ALEXNET in ln]
    assert len(alex) == 1 and "[spade-synthetic, ccfpse-synthetic]" in alex[0]
    assert "lpips_diversity" in alex[0]
    # nothing was written: no run directory, no checkpoint, no train_log, no leaderboard
    assert not offline["runs"].exists() and not offline["results"].exists()
    assert seconds < 60  # no training step (the 2-step runs alone take longer on 2 cores)


def test_allow_missing_weights_waives_metrics_never_training_files(offline):
    code, out, err = run(offline, "spade", "--set", "method.lambda_vgg=10",
                         "--allow-missing-weights")
    assert code == 2 and "1 problem found" in err and VGG in err and INCEPTION not in err
    assert not offline["runs"].exists()


def test_a_file_with_the_wrong_checksum_is_handled_like_a_missing_one(offline):
    # Issue 13 item 6: a wrong checksum stops the run exactly as a missing file does (exit 2,
    # --allow-missing-weights offered); with that flag the metric is skipped with the reason
    # (tests/test_protocols_named.py::test_wrong_checksum_is_skipped_like_a_missing_file).
    (offline["weights"] / INCEPTION).write_bytes(b"not the inception weights")
    code, out, err = run(offline, "example-pix2pix")
    assert code == 2 and "has sha256" in err and "expected prefix 6726825d" in err
    assert "--allow-missing-weights" in err
    assert not offline["runs"].exists()


def test_protocol_that_does_not_fit_the_dataset_is_reported_with_the_files(offline, tmp_path):
    proto = tiny_protocol(tmp_path, name="big", size=32, num_images=9, segmenter="synthetic-unet",
                          label_space="cityscapes-trainid")
    code, out, err = call_main("run", "--method", "example-pix2pix", "--dataset", "synthetic",
                               *DATA, "--protocol", str(proto), "--runs-dir",
                               str(offline["runs"]), "--quiet")
    assert code == 2
    assert "5 problems found" in err and INCEPTION in err
    assert ALEXNET not in err  # the plugin does not declare multimodal_for: only a warning
    assert "evaluates 32x32 (H x W) images but the configuration" in err and "16x16" in err
    assert "scores in label space 'cityscapes-trainid', but synthetic provides 'synthetic'" in err
    assert "scores 9 images but synthetic/val has only 4" in err
    assert "segmenter synthetic-unet predicts label space 'synthetic'" in err
    assert not offline["runs"].exists()


def test_train_checks_the_files_training_needs_before_building(offline):
    code, out, err = call_main("train", "--method", "spade", "--dataset", "synthetic", *DATA,
                               "--set", "method.lambda_vgg=10", "--runs-dir",
                               str(offline["runs"]), "--quiet")
    assert code == 2 and VGG in err and INCEPTION not in err  # train evaluates nothing
    assert not offline["runs"].exists()
    # the synthetic presets train without VGG19: train needs no file at all
    code, out, err = call_main("train", "--method", "spade", "--dataset", "synthetic",
                               "--set", "dataset.num_train=4", "--set", "train.max_steps=1",
                               "--runs-dir", str(offline["runs"]), "--quiet")
    assert code == 0, err
    assert (offline["runs"] / "synthetic" / "spade").is_dir()


def test_declared_needs_of_methods_and_protocols():
    from evaluators.protocol import load_protocol
    from evaluators.requirements import protocol_weight_needs
    from harness.experiment import load_experiment
    from methods import METHODS

    def needs(method, *sets):
        cfg = load_experiment(method, "synthetic", overrides=list(sets)).method.config
        cls = METHODS.get(method)
        return [n.spec.filename for n in cls.required_weights(cfg)], cls.multimodal_for(cfg)

    # the synthetic presets turn the perceptual loss off; the official recipes need VGG19
    assert needs("spade") == ([], False)
    assert needs("spade", "method.lambda_vgg=10", "method.use_vae=true") == ([VGG], True)
    assert needs("pix2pixhd", "method.instance_feat=true") == ([], True)
    assert needs("ccfpse") == ([], True)
    assert needs("ccfpse", "method.vgg_loss=true") == ([VGG], True)
    assert needs("example-pix2pix") == ([], None)  # a plugin that declares nothing

    def files(protocol, **kw):
        return {n.spec.filename: n.metrics for n in protocol_weight_needs(protocol, **kw)}

    synthetic = load_protocol("synthetic")  # its segmenter is trained by the harness: no file
    assert files(synthetic, multimodal=True) == {INCEPTION: ("fid", "kid"),
                                                 ALEXNET: ("lpips_diversity",)}
    assert files(synthetic, multimodal=False, skip=["kid"]) == {INCEPTION: ("fid",)}
    assert files(synthetic, skip=["fid", "kid", "lpips"]) == {}
    cityscapes = load_protocol("cityscapes-paper")
    assert files(cityscapes, multimodal=False)["drn-d-105_ms_cityscapes.pth"] == \
        ("miou", "accuracy", "real_miou", "real_accuracy")
    assert "drn-d-105_ms_cityscapes.pth" not in files(cityscapes, skip=["segmentation"])


def test_a_warning_shared_by_several_runs_is_said_once():
    # three training seeds of one method and a second method, all without the Inception file
    from harness.preflight import PreflightReport, warning_lines
    reason = f"no {INCEPTION} (allowed by --allow-missing-weights)"
    reports = [PreflightReport("spade-synthetic", will_skip={"fid": reason, "kid": reason})
               for _ in range(3)]
    reports.append(PreflightReport("ccfpse-synthetic", will_skip={"fid": reason, "kid": reason},
                                   maybe_missing=[f"{VGG} if method.vgg_loss is switched on"]))
    assert warning_lines(reports) == [
        f"preflight: spade-synthetic, ccfpse-synthetic: fid, kid will be recorded as skipped: "
        f"{reason}",
        f"preflight: ccfpse-synthetic: {VGG} if method.vgg_loss is switched on"]
