"""`python -m harness run` and the run-directory verbs, in process (real training, generation,
evaluation and leaderboard on a tiny synthetic dataset; offline, so Inception / LPIPS weights are
missing and those metrics come back 'skipped' with the reason, as in a fresh offline install)."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from harness.core.io import read_json
from harness.rundir import find_runs

from _cli_helpers import ToyMethod, call_main, tiny_protocol

PLUGIN = "example-pix2pix"
TOY = "toy-multimodal"
DATA = ["--set", "dataset.size=16", "--set", "dataset.num_train=4", "--set", "dataset.num_val=4"]


class MultimodalToy(ToyMethod):
    """Toy conditional GAN with noise channels (multimodal), for the CLI tests."""

    def __init__(self, cfg, info, runtime=None):
        cfg.z_dim = max(cfg.z_dim, 2)
        super().__init__(cfg, info, runtime)


@pytest.fixture(scope="module")
def registered_toy():
    from methods import METHODS
    METHODS.add(TOY, MultimodalToy, "test (tests/test_cli_run.py)")
    yield TOY
    METHODS.reload()  # forgets non-builtin registrations, rediscovers installed plugins


@pytest.fixture(scope="module", autouse=True)
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    with pytest.MonkeyPatch.context() as mp:
        # no pretrained weights: FID/KID/LPIPS are 'skipped' as in a fresh offline install
        mp.delenv("HARNESS_WEIGHTS_DIR", raising=False)
        mp.setenv("TORCH_HOME", str(root / "torch-home"))
        mp.setenv("HARNESS_OFFLINE", "1")
        yield {"root": root, "runs": root / "runs", "results": root / "results",
               "proto": tiny_protocol(root, seeds=(0, 1))}


def run_args(work, method, *extra):
    return ["run", "--method", method, "--dataset", "synthetic", "--set", "train.max_steps=2",
            *DATA, "--protocol", str(work["proto"]), "--runs-dir", str(work["runs"]),
            "--results-dir", str(work["results"]), "--quiet", "--allow-missing-weights", *extra]


@pytest.fixture(scope="module")
def plugin_run(work):
    code, out, err = call_main(*run_args(work, PLUGIN))
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def toy_run(work, registered_toy):
    code, out, err = call_main(*run_args(work, TOY))
    assert code == 0, err
    return json.loads(out)


def test_run_directory_layout_and_records(plugin_run, work):
    rd = Path(plugin_run["run_dir"])
    from harness.experiment import load_resolved
    cfg = load_resolved(rd / "config.yaml")
    assert rd == work["runs"] / "synthetic" / PLUGIN / f"{PLUGIN}-synthetic-{cfg.hash()[:10]}"
    assert plugin_run["run_id"] == rd.name
    assert (rd / "checkpoints" / "latest").is_file() and (rd / "train_log.jsonl").is_file()
    pid = plugin_run["protocol"]
    samples = rd / "samples" / pid / "random"
    manifest = read_json(samples / "manifest.json")
    # unimodal: one seed generated although the protocol has two; no diversity samples
    assert manifest["seeds"] == [0] and manifest["protocol_seeds"] == [0, 1]
    assert sorted(p.name for p in (samples / "seed0").iterdir()) == \
        [f"val_{i:05d}.png" for i in range(4)]
    assert not (samples / "diversity").exists()
    metrics = read_json(rd / "metrics.json")
    assert metrics["schema"] == 1 and list(metrics["evaluations"]) == [f"{pid}/random"]
    rec = metrics["evaluations"][f"{pid}/random"]
    assert (rec["method"], rec["variant"], rec["run_id"]) == (PLUGIN, cfg.name, rd.name)
    assert rec["config_hash"] == cfg.hash() and rec["train_seed"] == 0
    assert rec["variant_hash"] == cfg.variant_hash()
    assert rec["inference"] == "random" and rec["n_images"] == 4 and rec["seeds"] == [0]
    assert rec["metrics"]["fid"]["status"] == "skipped"
    assert "inception" in rec["metrics"]["fid"]["reason"]
    assert rec["metrics"]["lpips_diversity"]["status"] == "n/a"
    status = read_json(rd / "run.json")
    assert {k: v["status"] for k, v in status["stages"].items()} == {
        "train": "done", f"generate/{pid}/random": "done", f"evaluate/{pid}/random": "done"}
    with open(work["results"] / "leaderboard.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] == "reproduced"]
    assert any(r["method"] == PLUGIN and r["protocol_id"] == pid for r in rows)
    assert (work["results"] / "leaderboard.md").is_file()
    assert (work["results"] / "leaderboard.tex").is_file()


def test_rerunning_resumes_and_skips_finished_stages(plugin_run, work):
    rd = Path(plugin_run["run_dir"])
    pngs = sorted(rd.glob("samples/*/random/seed0/*.png"))
    before = {p: p.stat().st_mtime_ns for p in pngs}
    ckpts = sorted(p.name for p in (rd / "checkpoints").iterdir())
    code, out, err = call_main(*[a for a in run_args(work, PLUGIN) if a != "--quiet"])  # logs
    assert code == 0, err
    assert "train: already finished" in err and "is complete (skipped)" in err
    # FID/KID were skipped for a missing weights file: the evaluation is retried (the weights
    # may have been added since), the samples and checkpoints are not touched
    assert "evaluate: retrying" in err and "fid, kid" in err
    assert {p: p.stat().st_mtime_ns for p in pngs} == before
    assert sorted(p.name for p in (rd / "checkpoints").iterdir()) == ckpts
    assert json.loads(out)["run_dir"] == str(rd)


def test_a_complete_evaluation_is_not_repeated(work):
    args = run_args(work, PLUGIN, "--set", "eval.skip=[fid, kid]")
    code, out, err = call_main(*args)
    assert code == 0, err
    rd = Path(json.loads(out)["run_dir"])
    metrics = (rd / "metrics.json").read_bytes()
    code, out, err = call_main(*[a for a in args if a != "--quiet"])
    assert code == 0, err
    assert "already in" in err and "retrying" not in err
    assert (rd / "metrics.json").read_bytes() == metrics


def test_interrupted_generation_is_completed_exactly(plugin_run, work):
    rd = Path(plugin_run["run_dir"])
    samples = next(rd.glob("samples/*/random"))
    victim = samples / "seed0" / "val_00002.png"
    original = victim.read_bytes()
    victim.unlink()
    (samples / "manifest.json").unlink()
    code, out, err = call_main("generate", "--run", str(rd), "--protocol", str(work["proto"]))
    assert code == 0, err
    assert json.loads(out)["images"] == 4
    assert read_json(samples / "manifest.json")["generated_now"] == 1
    assert victim.read_bytes() == original


def test_multimodal_run_writes_seeds_and_diversity(toy_run):
    rd = Path(toy_run["run_dir"])
    samples = next(rd.glob("samples/*/random"))
    manifest = read_json(samples / "manifest.json")
    assert manifest["seeds"] == [0, 1] and manifest["multimodal"] is True
    assert sorted(manifest["diversity"]) == ["val_00000", "val_00001"]
    assert all(len(v) == 3 for v in manifest["diversity"].values())
    assert (samples / "seed0" / "val_00000.png").read_bytes() != \
        (samples / "seed1" / "val_00000.png").read_bytes()
    rec = next(iter(read_json(rd / "metrics.json")["evaluations"].values()))
    assert rec["seeds"] == [0, 1] and rec["method"] == TOY
    # LPIPS needs the AlexNet trunk, not available offline: recorded as skipped with the reason
    assert rec["metrics"]["lpips_diversity"]["status"] == "skipped"
    assert "alexnet" in rec["metrics"]["lpips_diversity"]["reason"].lower()


def test_method_all_runs_every_registered_method(work, monkeypatch, registered_toy):
    import harness.cli as cli
    calls = []

    def fake_run(cfg, **kw):  # only the dispatch is tested here; each run is tested above
        calls.append(cfg.method.name)
        from harness.stages.pipeline import RunSummary
        return RunSummary("d", "r", cfg.method.name, "synthetic", "p", "random")

    monkeypatch.setattr("harness.stages.pipeline.run_experiment", fake_run)
    from methods import METHODS
    code, out, err = call_main("run", "--method", "all", "--dataset", "synthetic",
                               "--set", "train.max_steps=1", "--runs-dir", str(work["runs"]),
                               "--allow-missing-weights")
    assert code == 0, err
    assert calls == METHODS.names() and TOY in calls and PLUGIN in calls
    assert [s["method"] for s in json.loads(out)] == calls


def test_fresh_starts_over(work, registered_toy):
    args = run_args(work, PLUGIN, "--set", "train.seed=7")
    code, out, err = call_main(*args)
    assert code == 0, err
    rd = Path(json.loads(out)["run_dir"])
    marker = rd / "checkpoints" / "marker"
    marker.write_text("old")
    code, out, err = call_main(*args, "--fresh")
    assert code == 0, err
    assert Path(json.loads(out)["run_dir"]) == rd and not marker.exists()
    assert read_json(rd / "run.json")["stages"]["train"]["status"] == "done"


def test_evaluate_run_and_folder(plugin_run, work, tmp_path):
    rd = Path(plugin_run["run_dir"])
    code, out, err = call_main("evaluate", "--run", str(rd), "--protocol", str(work["proto"]))
    assert code == 0, err
    assert json.loads(out)["key"] == f"{plugin_run['protocol']}/random"
    # a bare folder of images named after the keys
    folder = tmp_path / "official-outputs"
    shutil.copytree(next(rd.glob("samples/*/random/seed0")), folder)
    code, out, err = call_main("evaluate", "--images", str(folder), "--dataset", "synthetic",
                               "--split", "val", "--protocol", str(work["proto"]),
                               "--label", "theirs", *DATA)
    assert code == 0, err
    res = json.loads(out)
    assert res["metrics_file"] == str(folder / "metrics.json")
    rec = read_json(folder / "metrics.json")["evaluations"][f"{plugin_run['protocol']}/none"]
    assert rec["method"] == "theirs" and rec["n_images"] == 4
    # unpaired files are listed in one error, nothing written
    (folder / "metrics.json").unlink()
    (folder / "stray.png").write_bytes((folder / "val_00000.png").read_bytes())
    (folder / "val_00003.png").unlink()
    code, out, err = call_main("evaluate", "--images", str(folder), "--dataset", "synthetic",
                               "--protocol", str(work["proto"]), *DATA)
    assert code == 2 and out == "" and "Traceback" not in err
    assert "stray.png" in err and "val_00003" in err
    assert not (folder / "metrics.json").exists()
    code, _, err = call_main("evaluate", "--images", str(folder), "--dataset", "synthetic",
                             "--split", "train", "--protocol", str(work["proto"]), *DATA)
    assert code == 2 and "scores split 'val'" in err


def test_cluster_features_writes_a_new_checkpoint(plugin_run):
    rd = Path(plugin_run["run_dir"])
    code, out, err = call_main("cluster-features", "--run", str(rd))
    assert code == 0, err
    res = json.loads(out)
    assert Path(res["checkpoint"]).is_file()
    assert read_json(rd / "run.json")["stages"]["cluster_features"]["status"] == "done"


def test_import_official_needs_an_importer(work):
    ck = work["root"] / "latest_net_G.pth"
    ck.write_bytes(b"not really")
    code, out, err = call_main("import-official", "--method", PLUGIN, "--dataset", "synthetic",
                               "--checkpoint", f"G={ck}", *DATA, "--runs-dir", str(work["runs"]))
    assert code == 2 and "has no importer for official checkpoints" in err
    code, _, err = call_main("import-official", "--method", PLUGIN, "--dataset", "synthetic",
                             "--checkpoint", "G", "--runs-dir", str(work["runs"]))
    assert code == 2 and "expected NAME=PATH" in err


def test_check_data_reports_every_broken_file(tmp_path):
    root = tmp_path / "syn"
    code, out, err = call_main("check-data", "--dataset", "synthetic", *DATA,
                               "--set", f"dataset.root={root}")
    assert code == 0, err
    assert out.splitlines() == ["synthetic train: 4 samples, ok", "synthetic val: 4 samples, ok"]
    labels = next(root.glob("*/val/labels"))
    (labels / "val_00001.png").write_bytes(b"garbage")
    args = ["check-data", "--dataset", "synthetic", "--split", "val", *DATA,
            "--set", f"dataset.root={root}", "--json"]
    code, out, err = call_main(*args)
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False and report["splits"][0]["samples"] == 4
    [problem] = report["splits"][0]["problems"]
    assert problem.startswith("val_00001: ") and str(labels / "val_00001.png") in problem
    (next(root.glob("*/val/images")) / "val_00003.png").unlink()
    code, out, err = call_main(*args)
    assert code == 1
    [problem] = json.loads(out)["splits"][0]["problems"]
    assert "without an image" in problem and "val_00003" in problem


def test_list_json_outputs(work):
    code, out, _ = call_main("list", "datasets", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and rows["synthetic"]["source"] == "builtin"
    assert rows["cityscapes"]["default_protocol"] == "cityscapes-paper"
    code, out, _ = call_main("list", "protocols", "--json")
    protos = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and protos["cityscapes-paper"]["id"].startswith("cityscapes-paper-")
    assert len(protos["cityscapes-paper"]["hash"]) == 64
    code, out, _ = call_main("list", "segmenters", "--json")
    segs = {r["name"]: r for r in json.loads(out)}
    assert segs["drn-d-105-cityscapes"]["label_space"] == "cityscapes-trainid"


def test_leaderboard_verb(plugin_run, work):
    code, out, err = call_main("leaderboard", "--runs-dir", str(work["runs"]), "--results-dir",
                               str(work["root"] / "lb"), "--format", "csv", "--print", "csv",
                               "--no-published")
    assert code == 0, err
    assert out.startswith("kind,dataset,protocol_id")
    assert PLUGIN in out and "published," not in out
    assert sorted(p.name for p in (work["root"] / "lb").iterdir()) == ["leaderboard.csv"]
    code, _, err = call_main("leaderboard", "--format", "pdf")
    assert code == 2 and "pdf" in err


def test_find_runs_lists_the_run_directories(plugin_run, work):
    assert Path(plugin_run["run_dir"]) in [r.path for r in find_runs(work["runs"])]


def test_protocol_resolution_must_match_the_generation_size(plugin_run, work):
    other = tiny_protocol(work["root"], name="p32", size=32)
    code, out, err = call_main("generate", "--run", plugin_run["run_dir"], "--protocol", str(other))
    assert code == 2 and out == ""
    assert "evaluates 32x32 (H x W) images" in err and "generates 16x16" in err


def test_user_errors_are_one_line_and_debug_shows_the_exception(work):
    code, out, err = call_main("train", "--method", "nope", "--dataset", "synthetic")
    assert code == 2 and out == ""
    assert err.strip().startswith("error: --method: unknown method 'nope'; known methods:")
    assert len(err.strip().splitlines()) == 1
    from harness.core.config import ConfigError
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        call_main("--debug", "train", "--method", "nope", "--dataset", "synthetic")
    code, _, err = call_main("evaluate", "--dataset", "synthetic")
    assert code == 2 and "pass either --run RUN or --images DIR" in err
    code, _, err = call_main("generate", "--run", str(work["root"] / "missing"))
    assert code == 2 and "does not exist" in err
    code, _, err = call_main("run", "--dataset", "synthetic")
    assert code == 2 and "missing 'method.name'" in err


def test_train_segmenter_trains_once_then_uses_the_cache(tmp_path):
    args = ["train-segmenter", "--dataset", "synthetic", *DATA,
            "--set", f"dataset.root={tmp_path / 'syn'}", "--set", "segmenter.steps=2",
            "--set", "segmenter.batch_size=2", "--device", "cpu", "--quiet"]
    code, out, err = call_main(*args)
    assert code == 0, err
    first = json.loads(out)
    assert first["cached"] is False and Path(first["checkpoint"]).is_file()
    assert 0 <= first["miou"] <= 100 and first["record"]["recipe"]["steps"] == 2
    code, out, err = call_main(*args)
    assert code == 0 and json.loads(out)["cached"] is True
    code, _, err = call_main("train-segmenter", "--dataset", "synthetic", "--set", "train.seed=1")
    assert code == 2 and "train-segmenter takes dataset.* keys" in err


def test_import_official_round_trip_scores_the_released_weights(tmp_path):
    """SPADE exported in the official key layout -> import-official -> generate --run gives
    exactly the images of the exported model."""
    import numpy as np
    import torch
    from PIL import Image

    from harness.experiment import load_experiment
    from harness.core.data import build_dataset_from_config
    from harness.generate import image_generator
    from methods import METHODS
    from methods.base import Runtime

    sets = ["dataset.num_train=2", "dataset.num_val=2", f"dataset.root={tmp_path / 'syn'}"]
    cfg = load_experiment("spade", "synthetic", overrides=sets)
    val = build_dataset_from_config(cfg, "val", train=False)
    torch.manual_seed(3)
    method = METHODS.get("spade").build(cfg.method.config, val.info, Runtime()).eval()
    files = method.export_official(tmp_path / "released")
    proto = tiny_protocol(tmp_path, name="p64", size=64, num_images=2)
    cli_sets = [a for s in sets for a in ("--set", s)]
    code, out, err = call_main("import-official", "--method", "spade", "--dataset", "synthetic",
                               "--checkpoint", f"G={files['G']}", f"D={files['D']}",
                               *cli_sets, "--runs-dir", str(tmp_path / "runs"), "--quiet")
    assert code == 0, err
    res = json.loads(out)
    rd = Path(res["run_dir"])
    assert rd == tmp_path / "runs" / "synthetic" / "spade" / "official"
    assert res["files"]["G"]["sha256"] and str(files["G"]) in res["loaded"]
    assert read_json(rd / "run.json")["stages"]["train"]["imported"] is True
    code, out, err = call_main("generate", "--run", str(rd), "--protocol", str(proto), "--quiet")
    assert code == 0, err
    samples = Path(json.loads(out)["samples"])
    for i, key in enumerate(val.keys()[:2]):
        s = val[i]
        want = method.generate(s["label"][None], s["instance"][None], edge=s["edge"][None],
                               generator=[image_generator(0, key)])[0].permute(1, 2, 0).numpy()
        got = np.asarray(Image.open(samples / "seed0" / f"{key}.png").convert("RGB"))
        assert np.array_equal(got, want)
    # a second import into the same run id needs --force
    code, _, err = call_main("import-official", "--method", "spade", "--dataset", "synthetic",
                             "--checkpoint", f"G={files['G']}", *cli_sets,
                             "--runs-dir", str(tmp_path / "runs"))
    assert code == 2 and "--force" in err


def test_cluster_features_refreshes_pix2pixhd_clusters_and_samples(tmp_path):
    sets = ["--set", "method.instance_feat=true", "--set", "method.n_clusters=2",
            "--set", "train.max_steps=1", "--set", "train.batch_size=2",
            "--set", "dataset.num_train=4", "--set", "dataset.num_val=2",
            "--set", f"dataset.root={tmp_path / 'syn'}"]
    proto = tiny_protocol(tmp_path, name="p64", size=64, num_images=2)
    code, out, err = call_main("run", "--method", "pix2pixhd", "--dataset", "synthetic", *sets,
                               "--protocol", str(proto), "--runs-dir", str(tmp_path / "runs"),
                               "--results-dir", str(tmp_path / "results"), "--quiet",
                               "--allow-missing-weights")
    assert code == 0, err
    rd = Path(json.loads(out)["run_dir"])
    trained = read_json(rd / "run.json")["stages"]["train"]["result"]["summary"]
    assert "feature_clusters" in trained["after_training"]  # the runner ran the hook
    samples = next(rd.glob("samples/*/random"))
    old_origin = read_json(samples / "manifest.json")["origin"]
    code, out, err = call_main("cluster-features", "--run", str(rd), "--batch-size", "2")
    assert code == 0, err
    res = json.loads(out)
    assert set(res["summary"]["feature_clusters"]) <= {str(c) for c in range(10)}
    code, out, err = call_main("generate", "--run", str(rd), "--protocol", str(proto), "--quiet")
    assert code == 0, err
    manifest = read_json(samples / "manifest.json")
    import hashlib
    latest = Path(res["checkpoint"])
    assert (rd / "checkpoints" / "latest").read_text().strip() == latest.name
    sha = hashlib.sha256(latest.read_bytes()).hexdigest()
    assert manifest["origin"]["checkpoint_sha256"] == sha
    if sha != old_origin["checkpoint_sha256"]:  # samples of the old checkpoint were all replaced
        total = sum(len(v) for v in manifest["files"].values()) + \
            sum(len(v) for v in manifest["diversity"].values())
        assert manifest["generated_now"] == total


def test_every_verb_has_help_with_an_example():
    import argparse

    from harness.cli import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == {"run", "train", "generate", "evaluate", "leaderboard", "list",
                                "train-segmenter", "import-official", "cluster-features",
                                "check-data", "edit", "figure", "report"}
    for name, p in sub.choices.items():
        text = p.format_help()
        assert "\nexample:\n  python -m harness " + name in text or \
            ("\nexample:\n  torchrun" in text), name
        code, out, _ = call_main(name, "--help")
        assert code == 0 and "example:" in out, name
