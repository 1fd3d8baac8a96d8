"""What a run cost (harness/cost.py -> <run>/cost.json) and the leaderboard's cost columns
(`leaderboard --columns +cost`, harness/results/cost_table.py), from a real tiny training run
and a checkpoint-only run (import-official), in process, offline."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from harness.core.io import read_json
from methods.base import ImportReport

from _cli_helpers import ToyMethod, call_main, tiny_protocol

TRAINED, IMPORTED = "toy-cost", "toy-imported"
DATA = ["--set", "dataset.size=16", "--set", "dataset.num_train=4", "--set", "dataset.num_val=4"]


class ImportableToy(ToyMethod):
    """A toy method whose 'official' G file imports (a checkpoint-only method)."""

    def import_official(self, paths):
        state = torch.load(paths["G"], map_location="cpu", weights_only=True)
        self.nets["G"].load_state_dict(state)
        return ImportReport(loaded={"G": len(state)})


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    from methods import METHODS

    root = tmp_path_factory.mktemp("cost")
    METHODS.add(TRAINED, ToyMethod, "test (tests/test_cost.py)")
    METHODS.add(IMPORTED, ImportableToy, "test (tests/test_cost.py)")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("HARNESS_WEIGHTS_DIR", raising=False)
        mp.setenv("TORCH_HOME", str(root / "torch-home"))
        mp.setenv("HARNESS_OFFLINE", "1")
        yield {"root": root, "runs": root / "runs", "results": root / "results",
               "proto": tiny_protocol(root)}
    METHODS.reload()


@pytest.fixture(scope="module")
def trained(work):
    code, out, err = call_main("run", "--method", TRAINED, "--dataset", "synthetic",
                               "--set", "train.max_steps=2", "--set", "train.batch_size=2", *DATA,
                               "--protocol", str(work["proto"]), "--runs-dir", str(work["runs"]),
                               "--results-dir", str(work["results"]), "--quiet",
                               "--allow-missing-weights")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def imported(work):
    g = ToyMethod(ToyMethod.Config(), _synthetic_info()).nets["G"]
    torch.manual_seed(3)
    for p in g.parameters():
        torch.nn.init.normal_(p)
    ck = work["root"] / "official_G.pth"
    torch.save(g.state_dict(), ck)
    code, out, err = call_main("import-official", "--method", IMPORTED, "--dataset", "synthetic",
                               "--checkpoint", f"G={ck}", *DATA, "--runs-dir", str(work["runs"]))
    assert code == 0, err
    rd = json.loads(out)["run_dir"]
    for verb in ("generate", "evaluate"):
        code, out, err = call_main(verb, "--run", rd, "--protocol", str(work["proto"]), "--quiet")
        assert code == 0, err
    return Path(rd)


def _synthetic_info():
    from harness.core.data import build_dataset

    return build_dataset("synthetic", None, "val", train=False).info


def _param_count_in_checkpoint(run_dir: Path, net: str) -> int:
    """Independent count: the tensors of the saved state dict (the toy nets have no buffers)."""
    from harness.train import checkpoint as ckpt

    _, state = ckpt.read_latest(ckpt.checkpoint_dir(run_dir))
    return sum(t.numel() for t in state["method"]["state"]["networks"][net].values())


def _peak_rss_now() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_training_run_records_its_cost(trained):
    rd = Path(trained["run_dir"])
    cost = read_json(rd / "cost.json")
    assert cost["schema"] == 1
    assert cost["params"] == {"G": _param_count_in_checkpoint(rd, "G"),
                              "D": _param_count_in_checkpoint(rd, "D")}
    train = cost["train"]
    status = read_json(rd / "run.json")["stages"]
    assert train["steps"] == 2 and train["global_batch"] == 2 and train["images_seen"] == 4
    assert train["sessions"] == 1 and train["devices"] == 1
    assert 0 < train["wall_seconds"] <= status["train"]["seconds"]
    assert train["device_hours"] == pytest.approx(train["wall_seconds"] / 3600, abs=1e-6)
    assert train["peak_memory_kind"] == "cpu_peak_rss" and train["device"].startswith("cpu")
    assert 50 * 2**20 < train["peak_memory_bytes"] <= _peak_rss_now()
    (key, gen), = cost["generate"].items()
    assert key == f"{trained['protocol']}/random"
    manifest = read_json(rd / "samples" / trained["protocol"] / "random" / "manifest.json")
    assert gen["images"] == manifest["generated_now"] == 4
    assert gen["seconds"] <= status[f"generate/{key}"]["seconds"]
    assert gen["seconds_per_image"] == pytest.approx(gen["seconds"] / 4, abs=1e-3)
    assert gen["peak_memory_bytes"] >= train["peak_memory_bytes"]  # ru_maxrss never goes down


def test_checkpoint_only_run_has_inference_cost_only(imported):
    cost = read_json(imported / "cost.json")
    assert "train" not in cost
    assert cost["params"]["G"] == _param_count_in_checkpoint(imported, "G")
    (gen,) = cost["generate"].values()
    assert gen["images"] == 4 and gen["seconds_per_image"] > 0


def test_resumed_training_adds_its_sessions(tmp_path):
    from harness.cost import PeakMemory, record_interrupted, record_training

    summary = {"steps": 10, "world_size": 4, "global_batch": 8, "device": "cpu"}
    with PeakMemory("cpu") as peak:
        pass
    record_training(tmp_path, summary, 1800.0, peak)
    cost = record_interrupted(tmp_path, 900.0, 4)  # a session killed before it finished
    assert cost["train"]["finished"] is False and cost["train"]["wall_seconds"] == 2700.0
    cost = record_training(tmp_path, {**summary, "steps": 30, "world_size": 2}, 1800.0, peak)
    t = cost["train"]
    assert (t["steps"], t["images_seen"], t["sessions"]) == (30, 240, 3)
    assert t["wall_seconds"] == 4500.0 and t["finished"] is True
    assert t["device_hours"] == pytest.approx((1800 * 4 + 900 * 4 + 1800 * 2) / 3600)


def test_leaderboard_cost_columns_for_every_method(trained, imported, work):
    out_dir = work["root"] / "board"
    code, out, err = call_main("leaderboard", "--runs-dir", str(work["runs"]), "--results-dir",
                               str(out_dir), "--no-published", "--columns", "+cost")
    assert code == 0, err
    with open(out_dir / "leaderboard.csv", newline="") as f:
        methods = {r["method"] for r in csv.DictReader(f) if r["kind"] == "reproduced"}
    with open(out_dir / "leaderboard_cost.csv", newline="") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert methods == set(rows) == {TRAINED, IMPORTED}
    t, i = rows[TRAINED], rows[IMPORTED]
    cost = read_json(Path(trained["run_dir"]) / "cost.json")
    assert int(t["params_G"]) == cost["params"]["G"] and int(t["train_steps"]) == 2
    assert int(t["train_images"]) == 4
    assert float(t["gen_s_per_image"]) == pytest.approx(
        next(iter(cost["generate"].values()))["seconds_per_image"])
    assert float(t["device_hours"]) == pytest.approx(cost["train"]["device_hours"])
    # imported weights: inference columns only
    assert i["train_steps"] == i["train_images"] == i["device_hours"] == ""
    assert int(i["params_G"]) > 0 and float(i["gen_s_per_image"]) > 0
    md = (out_dir / "leaderboard.md").read_text()
    assert "## Cost" in md and "| method | inference | params G |" in md
    cost_md = md.split("## Cost", 1)[1]
    line = next(ln for ln in cost_md.splitlines() if ln.startswith(f"| {IMPORTED} "))
    assert "–" in line  # the training columns are empty
    tex = (out_dir / "leaderboard.tex").read_text()
    assert r"\caption{Cost on synthetic" in tex and "toy-imported" in tex
    # without --columns the files are as before
    code, out, err = call_main("leaderboard", "--runs-dir", str(work["runs"]), "--results-dir",
                               str(out_dir / "plain"), "--no-published")
    assert code == 0 and "## Cost" not in (out_dir / "plain" / "leaderboard.md").read_text()
    code, _, err = call_main("leaderboard", "--runs-dir", str(work["runs"]), "--results-dir",
                             str(out_dir), "--columns", "+speed")
    assert code == 2 and "unknown column set '+speed'" in err


@pytest.mark.slow
def test_cost_columns_for_every_registered_method(tmp_path):
    """Every built-in and installed method, trained one step on the synthetic dataset, has a
    cost row with parameters, training and inference columns."""
    from methods import METHODS

    runs, results = tmp_path / "runs", tmp_path / "results"
    proto = tiny_protocol(tmp_path, size=64)  # the presets' size; 4 images, no segmenter
    code, out, err = call_main("run", "--method", "all", "--dataset", "synthetic",
                               "--set", "train.max_steps=1", "--set", "dataset.num_train=4",
                               "--set", "dataset.num_val=4", "--protocol", str(proto),
                               "--runs-dir", str(runs), "--results-dir", str(results),
                               "--quiet", "--allow-missing-weights")
    assert code == 0, err[-3000:]
    code, _, err = call_main("leaderboard", "--runs-dir", str(runs), "--results-dir",
                             str(results), "--columns", "+cost", "--format", "csv")
    assert code == 0, err
    with open(results / "leaderboard_cost.csv", newline="") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert sorted(rows) == METHODS.names()
    for name, r in rows.items():
        assert int(r["params_G"]) > 0 and int(r["train_steps"]) == 1, name
        assert float(r["gen_s_per_image"]) > 0 and float(r["device_hours"]) > 0, name


def test_weights_for_a_run_lists_what_it_needs(trained):
    """`weights --for RUN`: the toy method trains without pretrained files; its protocol's FID
    needs Inception, and LPIPS its AlexNet (the toy method does not declare whether it is
    multimodal, so the preflight checks it too); no segmenter."""
    from methods import METHODS
    from harness.preflight import weight_needs
    from harness.rundir import RunDir

    code, out, err = call_main("weights", "--for", trained["run_dir"], "--json")
    assert code == 0, err
    files = json.loads(out)["files"]
    assert [f["key"] for f in files] == ["inception-v3-compat", "alexnet-imagenet"]
    assert all(f["status"] == "missing" for f in files)
    assert files[0]["used_by"] == ["Inception for FID/KID (torch-fidelity) (fid, kid)"]
    # the same files the preflight of this run checks
    cfg = RunDir.open(trained["run_dir"]).load_config()
    assert METHODS.get(TRAINED).multimodal_for(cfg.method.config) is None
    assert weight_needs(cfg, None) == []  # training itself needs nothing
