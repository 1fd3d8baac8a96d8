"""Every registered method (built-in and installed plugins) passes the Method contract suite
(methods/contract.py) at the tiny sizes of its synthetic preset, on real synthetic data."""
from __future__ import annotations

import copy

import pytest
import torch

from harness.core.config import CONFIGS_ROOT
from harness.experiment import load_experiment
from harness.core.data import build_dataset_from_config, collate
from methods import METHODS
from methods.base import Runtime
from methods import contract

CHECKS = ("structure", "generate", "seeds", "style_encoding", "train_step", "state_round_trip",
          "rejects_foreign_state")
SMALL_DATA = ["dataset.num_train=4", "dataset.num_val=2"]


def _setup(name: str):
    entry = METHODS.entry(name)
    preset = CONFIGS_ROOT / "experiments" / f"{name}-synthetic.yaml"
    if not preset.is_file() and entry.source.startswith("builtin"):
        pytest.skip(f"method {name!r} has no tiny preset {preset.relative_to(CONFIGS_ROOT.parent)} "
                    "yet (the contract runs at the preset's sizes)")
    cfg = load_experiment(name, "synthetic", overrides=SMALL_DATA)
    ds = build_dataset_from_config(cfg, "train", train=False)
    batch = collate([ds[0], ds[1]])
    info = ds.info

    def factory():
        return entry.obj.build(copy.deepcopy(cfg.method.config), info, Runtime())
    return factory, batch


_CACHE: dict[str, tuple] = {}


def setup_for(name: str):
    if name not in _CACHE:
        _CACHE[name] = _setup(name)
    return _CACHE[name]


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("name", METHODS.names())
def test_method_contract(name, check):
    factory, batch = setup_for(name)
    torch.manual_seed(0)
    if check == "structure":
        contract.check_structure(factory())
    elif check == "generate":
        contract.check_generate(factory(), batch)
    elif check == "seeds":
        contract.check_seeds(factory(), batch)
    elif check == "style_encoding":
        method = factory()
        if not method.supports_style_encoding:
            pytest.skip(f"{name} cannot encode a style from an image")
        contract.check_style_encoding(method, batch)
    elif check == "train_step":
        contract.check_train_step(factory(), batch)
    elif check == "state_round_trip":
        contract.check_state_round_trip(factory, batch)
    elif check == "rejects_foreign_state":
        contract.check_rejects_foreign_state(factory)


def test_the_installed_plugin_is_among_the_checked_methods():
    from importlib.metadata import PackageNotFoundError, version
    try:
        version("harness-plugin-example")
    except PackageNotFoundError:
        pytest.skip("harness-plugin-example is not installed")
    assert "example-pix2pix" in METHODS.names()
