"""The example plugin (tests/plugin_minimal) as a user gets it: built as a wheel (offline, with
the installed setuptools), installed into a folder of its own, then used from a fresh process with
that folder on PYTHONPATH: found by its entry point, its presets read from inside the installed
package (entry point group ``harness.configs``), the contract suite passed. Without its presets
the method is an error naming where the harness looked, not silent defaults."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from _cli_helpers import REPO

SOURCE = REPO / "tests" / "plugin_minimal"

CHECK = r"""
import json, sys
from harness.cli.results import list_rows
from harness.experiment import load_experiment
from harness_plugin_minimal import MinimalConfig, MinimalGAN
from methods.contract import check_method, random_batch
from harness.core.data.base import DatasetInfo

rows = {r["name"]: r for r in list_rows("methods")[0]}
cfg = load_experiment("minimal-gan", "synthetic")
info = DatasetInfo("toy", label_nc=4, contain_dontcare=False, has_instances=False,
                   class_names=("a", "b", "c", "d"), image_size=(16, 16))
check_method(lambda: MinimalGAN(cfg.method.config, info), lambda: random_batch(info, n=2),
             multimodal=False, other_factory=lambda: MinimalGAN(MinimalConfig(width=4), info))
print(json.dumps({"row": rows["minimal-gan"], "width": cfg.method.config.width,
                  "max_steps": cfg.train.max_steps, "sources": cfg.sources}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(site folder with the installed wheel, the wheel file)."""
    tmp = tmp_path_factory.mktemp("plugin-wheel")
    src = tmp / "src"
    shutil.copytree(SOURCE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(tmp / "wheels"), str(src)], check=True, capture_output=True,
                   timeout=300)
    wheel, = (tmp / "wheels").glob("harness_plugin_minimal-0.1.0-*.whl")
    site = tmp / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "-q", "--target", str(site),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    return site, wheel


def _python(site, *args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]),
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          cwd=site.parent, timeout=600)


def test_the_wheel_carries_the_method_its_presets_and_both_entry_points(installed):
    _, wheel = installed
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        entry_points = z.read("harness_plugin_minimal-0.1.0.dist-info/entry_points.txt").decode()
    assert {"harness_plugin_minimal/__init__.py",
            "harness_plugin_minimal/configs/methods/minimal-gan.yaml",
            "harness_plugin_minimal/configs/experiments/minimal-gan-synthetic.yaml"} <= names
    assert "[harness.methods]\nminimal-gan = harness_plugin_minimal:MinimalGAN" in entry_points
    assert "[harness.configs]\nharness-plugin-minimal = harness_plugin_minimal.configs" \
        in entry_points


def test_installed_plugin_is_listed_configured_from_its_presets_and_passes_the_contract(installed):
    site, _ = installed
    proc = _python(site, "-c", CHECK)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["row"]["source"] == "plugin harness-plugin-minimal 0.1.0"
    assert got["row"]["capabilities"] == {"multimodal": False, "encode_style": False,
                                          "import_official": False, "classwise": False}
    # width 8 and 20 steps come from experiments/minimal-gan-synthetic.yaml inside the package
    assert got["width"] == 8 and got["max_steps"] == 20
    preset = site / "harness_plugin_minimal" / "configs" / "experiments" / \
        "minimal-gan-synthetic.yaml"
    assert str(preset) in got["sources"]


def test_a_plugin_method_without_presets_is_an_error_naming_where_it_looked(installed, tmp_path):
    site, _ = installed
    bare = tmp_path / "site"
    shutil.copytree(site, bare)
    for preset in (bare / "harness_plugin_minimal" / "configs").rglob("*.yaml"):
        preset.unlink()
    proc = _python(bare, "-m", "harness", "train", "--method", "minimal-gan", "--dataset",
                   "synthetic", "--runs-dir", str(tmp_path / "runs"))
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "has no preset" in err, err
    assert "methods/minimal-gan.yaml" in err and "experiments/minimal-gan-synthetic.yaml" in err
    assert str(REPO / "configs") in err and str(bare / "harness_plugin_minimal" / "configs") in err
    assert not (tmp_path / "runs").exists()  # stopped before anything was written
