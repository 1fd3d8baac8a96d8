"""Checkpoints of the official CC-FPSE code (``latest_net_G.pth``, ``_D``, ``_E``) <-> this
implementation.

The modules here carry the official attribute names, so the mapping is the identity except for
the label feature pyramid, which lives in ``G.label_pyramid`` here and at the top level of the
official generator (``labelenc1.0.0.weight_orig`` <-> ``label_pyramid.labelenc1.0.0.weight_orig``).
The BatchNorms the official forward never calls (``norm_0``, ``conv_*.norm_layer``) exist here
too, so every official key has a home and nothing is dropped.

Loading is strict: a missing or unexpected key, or a shape that differs, is one
:class:`OfficialCheckpointError` naming the file and listing the keys. Tolerated: a ``module.``
prefix on every key (checkpoints saved from a DDP wrapper) and absent BatchNorm
``num_batches_tracked`` counters (checkpoints from PyTorch < 0.4.1; they are set to 0).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from harness.core.errors import describe
from methods.base import OfficialCheckpointError  # re-exported: the importer raises it

PYRAMID_PREFIXES = ("labelenc", "labellat", "labeldec")
PYRAMID_ATTRIBUTE = "label_pyramid"
NETWORKS = ("G", "D", "E")


def official_to_ours(net: str, key: str) -> str:
    if net == "G" and key.startswith(PYRAMID_PREFIXES):
        return f"{PYRAMID_ATTRIBUTE}.{key}"
    return key


def ours_to_official(net: str, key: str) -> str:
    prefix = PYRAMID_ATTRIBUTE + "."
    if net == "G" and key.startswith(prefix):
        return key[len(prefix):]
    return key


def export_official(net: str, module: nn.Module) -> dict[str, torch.Tensor]:
    """This implementation's state_dict under the official key names (what the official code saves)."""
    return {ours_to_official(net, k): v.detach().cpu().clone() for k, v in module.state_dict().items()}


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise OfficialCheckpointError(f"official checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated / non-torch file
        raise OfficialCheckpointError(f"{path}: cannot be read as a PyTorch state_dict "
                                      f"({describe(exc)})") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise OfficialCheckpointError(f"{path}: expected a state_dict (key -> tensor), got "
                                      f"{type(state).__name__}")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def _listing(keys: list[str], limit: int = 20) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def prepare_official(net: str, module: nn.Module, path: str | Path
                     ) -> tuple[dict[str, torch.Tensor], int, list[str]]:
    """Read one official checkpoint and check it against ``module`` without changing the module.

    Returns the state_dict under this implementation's keys, the number of tensors read from the
    file, and notes on what was tolerated.
    """
    official = read_checkpoint(path)
    mapped = {official_to_ours(net, k): v for k, v in official.items()}
    expected = module.state_dict()
    notes: list[str] = []
    missing = sorted(set(expected) - set(mapped))
    counters = [k for k in missing if k.endswith("num_batches_tracked")]
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    unexpected = sorted(set(mapped) - set(expected))
    if missing or unexpected:
        raise OfficialCheckpointError(
            f"{path}: official {net} checkpoint does not match the configured CC-FPSE {net} "
            f"(dataset label channels, use_vae, num_upsampling_layers, ngf?): "
            f"{len(missing)} missing key(s) [{_listing([ours_to_official(net, k) for k in missing])}]; "
            f"{len(unexpected)} unexpected key(s) "
            f"[{_listing([ours_to_official(net, k) for k in unexpected])}]")
    wrong = [f"{ours_to_official(net, k)}: checkpoint {tuple(mapped[k].shape)} vs model "
             f"{tuple(expected[k].shape)}" for k in expected if k in mapped
             and tuple(mapped[k].shape) != tuple(expected[k].shape)]
    if wrong:
        raise OfficialCheckpointError(f"{path}: official {net} checkpoint has {len(wrong)} "
                                      f"tensor(s) of another shape than the configured model: "
                                      f"{_listing(wrong, 10)}")
    for k in counters:
        mapped[k] = torch.zeros((), dtype=torch.long)
    if counters:
        notes.append(f"{net}: {len(counters)} BatchNorm num_batches_tracked counters absent from "
                     f"{path} were set to 0")
    return mapped, len(official), notes


def check_paths(paths: Mapping[str, str | Path], use_vae: bool) -> None:
    unknown = sorted(set(paths) - set(NETWORKS))
    if unknown:
        raise OfficialCheckpointError(f"unknown network(s) {unknown} in the official checkpoints; "
                                      f"expected some of {list(NETWORKS)} (e.g. {{'G': "
                                      f"'latest_net_G.pth'}})")
    if "G" not in paths:
        raise OfficialCheckpointError("the official generator checkpoint ('G': latest_net_G.pth) "
                                      "is required")
    if "E" in paths and not use_vae:
        raise OfficialCheckpointError(f"an encoder checkpoint ({paths['E']}) was given but the "
                                      "configuration has use_vae: false; the released CC-FPSE "
                                      "models are VAE models (set method.use_vae: true)")
