"""A method from a separately installed package (tests/plugin_example, entry point group
``harness.methods``) is listed with its distribution and runs by name; a plugin that reuses a
built-in name fails naming both sources. Real entry points, real subprocesses."""
from __future__ import annotations

import csv
import json
import os

import pytest

from _cli_helpers import call_main, run_cli, tiny_protocol

PLUGIN = "example-pix2pix"


def _require_plugin():
    from importlib.metadata import PackageNotFoundError, version
    try:
        version("harness-plugin-example")
    except PackageNotFoundError:
        pytest.skip("harness-plugin-example is not installed (pip install --no-deps "
                    "tests/plugin_example; tox does this)")


def test_list_methods_shows_the_plugin_with_its_distribution():
    _require_plugin()
    proc = run_cli("list", "methods", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    row = rows[PLUGIN]
    assert row["source"] == "plugin harness-plugin-example 0.1.0"
    assert row["distribution"] == "harness-plugin-example" and row["version"] == "0.1.0"
    assert row["target"] == "harness_plugin_example.method:ExamplePix2Pix"
    assert row["description"].startswith("Tiny pix2pix-style conditional GAN")
    assert row["capabilities"] == {"encode_style": False, "import_official": False,
                                   "multimodal": False, "classwise": False}
    assert rows["spade"]["source"] == "builtin"
    code, table, _ = call_main("list", "methods")
    assert code == 0 and any(line.startswith(PLUGIN) and "plugin harness-plugin-example 0.1.0" in line
               for line in table.splitlines())


def _listed(*args):
    code, out, err = call_main("list", "methods", "--json", *args)
    assert code == 0, err
    return {r["name"]: r for r in json.loads(out)}


def _built_capabilities(name, config_files):
    """The capabilities the method built from that configuration reports (independent of
    Method.capabilities_for, which never builds it)."""
    from harness.core.data import build_dataset
    from harness.experiment import load_experiment
    from methods import METHODS

    cfg = load_experiment(name, "synthetic", config_files=config_files)
    info = build_dataset("synthetic", cfg.dataset.options, "val").info
    return METHODS.get(name).build(cfg.method.config, info).capabilities()


@pytest.mark.parametrize("name,layer,multimodal,encode_style", [
    ("spade", None, False, False),                        # the synthetic preset: no encoder
    ("spade", {"use_vae": True}, True, True),              # with the encoder
    ("ccfpse", {"use_vae": False}, False, False),
    ("groupdnet", None, True, True),                       # classwise, always multimodal
])
def test_list_methods_reports_capabilities_of_the_configuration(tmp_path, name, layer,
                                                                multimodal, encode_style):
    files = []
    if layer is not None:
        path = tmp_path / "layer.yaml"
        path.write_text(json.dumps({"method": {"name": name, **layer}}))  # JSON is YAML
        files = [str(path)]
    rows = _listed(*[a for f in files for a in ("--config", f)])
    if files:
        assert set(rows) == {name}  # a file naming method.name lists that method only
    caps = rows[name]["capabilities"]
    assert caps["multimodal"] is multimodal and caps["encode_style"] is encode_style
    assert caps["classwise"] is (name == "groupdnet")
    assert rows[name]["config"]["name"] == f"{name}-synthetic"
    assert caps == _built_capabilities(name, files)


def test_pix2pixhd_is_multimodal_only_with_instance_features(tmp_path):
    """The built pix2pixHD becomes multimodal once its feature clusters exist (after training);
    per configuration that is instance_feat."""
    assert _listed()["pix2pixhd"]["capabilities"]["multimodal"] is False
    path = tmp_path / "feat.yaml"
    path.write_text("method:\n  name: pix2pixhd\n  instance_feat: true\n")
    assert _listed("--config", str(path))["pix2pixhd"]["capabilities"]["multimodal"] is True
    rows = _listed("--dataset", "nope")
    assert "unknown dataset" in rows["spade"]["config"]["error"].lower() or \
        "nope" in rows["spade"]["config"]["error"]


def test_the_plugin_runs_end_to_end_by_name(tmp_path):
    _require_plugin()
    proto = tiny_protocol(tmp_path)
    proc = run_cli("run", "--method", PLUGIN, "--dataset", "synthetic",
                   "--set", "train.max_steps=2", "--set", "dataset.size=16",
                   "--set", "dataset.num_train=4", "--set", "dataset.num_val=4",
                   "--protocol", str(proto), "--runs-dir", str(tmp_path / "runs"),
                   "--results-dir", str(tmp_path / "results"), "--quiet",
                   "--allow-missing-weights")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["method"] == PLUGIN and summary["seconds"]["train"] > 0
    with open(tmp_path / "results" / "leaderboard.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] == "reproduced"]
    assert [(r["dataset"], r["method"]) for r in rows] == [("synthetic", PLUGIN)]


def test_a_plugin_reusing_a_builtin_name_fails_naming_both(tmp_path):
    site = tmp_path / "site"
    info = site / "dup_methods-9.9.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dup-methods\nVersion: 9.9\n")
    (info / "entry_points.txt").write_text(
        "[harness.methods]\nspade = harness_plugin_example.method:ExamplePix2Pix\n")
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    proc = run_cli("list", "methods", env=env)
    assert proc.returncode == 2 and proc.stdout == ""
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert "duplicate method name 'spade'" in err
    assert "builtin (methods.spade" in err
    assert "plugin dup-methods 9.9 (harness_plugin_example.method:ExamplePix2Pix)" in err


def test_duplicate_detection_in_process_with_reload(tmp_path, monkeypatch):
    from harness.core.registry import RegistryError
    from methods import METHODS

    site = tmp_path / "site"
    info = site / "dup_two-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dup-two\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[harness.methods]\nccfpse = harness_plugin_example.method:ExamplePix2Pix\n")
    monkeypatch.syspath_prepend(str(site))
    try:
        with pytest.raises(RegistryError, match=r"duplicate method name 'ccfpse': registered by "
                           r"builtin \(methods\.ccfpse.*and again by plugin dup-two 1\.0"):
            METHODS.reload()
    finally:
        monkeypatch.undo()
        METHODS.reload()
    assert "ccfpse" in METHODS.names()
