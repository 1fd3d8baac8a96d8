"""Several convolutions that read the same input, run as one convolution (``batched_heads``).

A CC-FPSE block's four weight-prediction heads (and the SPADE shortcut's shared MLP) each start
with a Conv3x3 on the same conditioning map ``cond``. Running them as one convolution with their
weights concatenated along the output channels reads ``cond`` and builds its im2col buffer once
instead of four or five times; the output is split back into each layer's channels. The weights
are concatenated at every forward (a few hundred KiB), so the modules, their parameters and the
state dict stay exactly those of the separate layers (official checkpoints load unchanged) and
autograd routes each slice's gradient to its own layer. The result equals the separate
convolutions up to float summation order.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def check_batchable(convs: Sequence[nn.Conv2d]) -> None:
    """The convolutions must differ only in their output channels (one clear error otherwise)."""
    first = convs[0]
    for conv in convs:
        if type(conv) is not nn.Conv2d:  # a subclass (e.g. spectral-normed) may change the weight
            raise TypeError(f"batched_heads needs plain nn.Conv2d layers, got {type(conv).__name__}")
        same = (conv.in_channels == first.in_channels and conv.kernel_size == first.kernel_size
                and conv.stride == first.stride and conv.padding == first.padding
                and conv.dilation == first.dilation and conv.groups == 1
                and conv.padding_mode == "zeros" and (conv.bias is None) == (first.bias is None))
        if not same:
            raise ValueError(f"batched_heads: {conv} cannot share one convolution with {first}")


def joint_conv(convs: Sequence[nn.Conv2d], x: torch.Tensor) -> torch.Tensor:
    """``torch.cat([conv(x) for conv in convs], 1)``, computed as one convolution."""
    first = convs[0]
    weight = torch.cat([c.weight for c in convs])
    bias = None if first.bias is None else torch.cat([c.bias for c in convs])
    return F.conv2d(x, weight, bias, first.stride, first.padding, first.dilation)


def split_channels(y: torch.Tensor, convs: Sequence[nn.Conv2d]) -> tuple[torch.Tensor, ...]:
    # split, not slicing: its backward concatenates the pieces' gradients in one copy
    return y.split([c.out_channels for c in convs], dim=1)


def conv_outputs(convs: Sequence[nn.Conv2d], x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``tuple(conv(x) for conv in convs)``, computed as one convolution."""
    return split_channels(joint_conv(convs, x), convs)


def predictor_outputs(heads: Sequence[nn.Sequential], cond: torch.Tensor) -> list[torch.Tensor]:
    """``[head(cond) for head in heads]`` for Conv -> ReLU -> rest heads: the first convolutions
    of all heads run as one, and the ReLU once on their joint output."""
    firsts = [h[0] for h in heads]
    hidden = split_channels(torch.relu(joint_conv(firsts, cond)), firsts)
    outs = []
    for head, x in zip(heads, hidden):
        for layer in list(head)[2:]:
            x = layer(x)
        outs.append(x)
    return outs


def check_predictors(heads: Sequence[nn.Sequential]) -> None:
    """Each head must be Conv2d -> ReLU -> ..., and the first convs batchable."""
    for head in heads:
        if len(head) < 2 or not isinstance(head[1], nn.ReLU):
            raise ValueError(f"batched_heads needs Conv2d -> ReLU heads, got {head}")
    check_batchable([h[0] for h in heads])
