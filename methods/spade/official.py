"""Reading and writing checkpoints in the key layout of the official code bases.

The networks of ``methods.spade`` and ``methods.pix2pixhd`` use the official attribute names, so an
official ``latest_net_G.pth`` maps onto them key for key. Loading is strict: any missing or
unexpected key, or a shape that differs, is one error naming the file and listing the keys.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from harness.core.config import ConfigError
from harness.core.errors import describe
from harness.core.io import atomic_torch_save
from methods import base

# Keys the official files may lack without changing any computation: old PyTorch versions did
# not store BatchNorm's step counter (PyTorch fills it with 0, as on a fresh network).
TOLERATED_MISSING_SUFFIXES = ("num_batches_tracked",)


class OfficialCheckpointError(base.OfficialCheckpointError, ConfigError):
    """An official checkpoint does not match the network built from the configuration (a user
    error: the CLI reports it in one line, exit status 2)."""


def read_state_dict(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"official {what} checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise OfficialCheckpointError(f"official {what} checkpoint {path} could not be read as a "
                                      f"state_dict: {describe(exc)}") from exc
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise OfficialCheckpointError(f"official {what} checkpoint {path} is not a mapping of "
                                      "parameter names to tensors")
    keys = list(state)
    if keys and all(k.startswith("module.") for k in keys):  # saved from a DataParallel wrapper
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def _listing(keys: list[str], limit: int = 40) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def check_keys(net: nn.Module, state: Mapping[str, torch.Tensor], path: str | Path, what: str,
               hint: str = "") -> list[str]:
    """Raise one OfficialCheckpointError listing every mismatch; return tolerated missing keys."""
    expected = net.state_dict()
    missing = sorted(k for k in expected if k not in state)
    tolerated = [k for k in missing if k.endswith(TOLERATED_MISSING_SUFFIXES)]
    missing = [k for k in missing if k not in tolerated]
    unexpected = sorted(k for k in state if k not in expected)
    shapes = sorted(f"{k}: file {tuple(state[k].shape)} vs network {tuple(expected[k].shape)}"
                    for k in state if k in expected and state[k].shape != expected[k].shape)
    if missing or unexpected or shapes:
        parts = [f"official {what} checkpoint {path} does not match the {what} network built from "
                 f"the configuration ({len(expected)} keys expected, {len(state)} in the file)"]
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_listing(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches ({len(shapes)}): {_listing(shapes, 10)}")
        if hint:
            parts.append(hint)
        raise OfficialCheckpointError("; ".join(parts))
    return tolerated


def load_official(net: nn.Module, path: str | Path, what: str, hint: str = "") -> tuple[int, list[str]]:
    """Strictly load an official state_dict into ``net``; returns (tensors loaded, tolerated keys)."""
    state = read_state_dict(path, what)
    tolerated = check_keys(net, state, path, what, hint)
    net.load_state_dict(state, strict=not tolerated)
    return len(state), tolerated


def save_official(net: nn.Module, path: str | Path) -> Path:
    """Write ``net``'s state_dict (CPU tensors) the way the official code saves it, atomically."""
    return atomic_torch_save(path, {k: v.detach().cpu().clone() for k, v in net.state_dict().items()})
