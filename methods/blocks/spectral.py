"""Spectral normalisation in the form the official SPADE-family checkpoints store it.

``torch.nn.utils.spectral_norm`` keeps ``weight_orig`` (parameter) and ``weight_u`` /
``weight_v`` (buffers): the key names of the released checkpoints, so they load strictly.
"""
from __future__ import annotations

from torch import nn


def spectral(module: nn.Module, enabled: bool = True) -> nn.Module:
    return nn.utils.spectral_norm(module) if enabled else module


def drop_bias(conv: nn.Module) -> nn.Module:
    """Remove a conv's bias (the official code deletes it before a normalisation layer)."""
    if getattr(conv, "bias", None) is not None:
        del conv.bias
        conv.register_parameter("bias", None)
    return conv
