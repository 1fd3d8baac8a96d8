"""Conditional depthwise 3x3 convolution: a different 3x3 kernel for every pixel and channel.

CC-FPSE predicts, for each sample n, channel c and pixel (h, w), a 3x3 kernel ``K[n, c, :, h, w]``
from the semantic layout and convolves the feature map with it (zero padding 1, stride 1, no bias):

    out[n, c, h, w] = sum_{i,j in 0..2} K[n, c*9 + 3*i + j, h, w] * x[n, c, h + i - 1, w + j - 1]

The kernels arrive as ``[N, C*9, H, W]`` in the channel-major order of ``nn.Unfold`` (index
``c*9 + tap``), as the official weight-prediction heads produce them.

The official code computes this by unfolding ``x`` into ``[N, C*9, H, W]`` and multiplying: the
unfolded input and the product each cost as much memory as the kernels themselves (and autograd
keeps the unfolded input for the backward pass). At 256x512 one such tensor of the last block is
151 M floats per image, which is why the official model trains one image per GPU.

:func:`conditional_depthwise_conv3x3` instead visits the 9 taps one at a time: a zero-padded copy
of ``x`` gives each shifted input as a strided view, and the products are accumulated into the
output. Its backward recomputes the shifted views instead of storing them::

    grad_x      = sum_tap shift_back(grad_out * K_tap)
    grad_K_tap  = grad_out * x_shift(tap)

Beyond the inputs, the kernels and their gradient (unavoidable), the extra memory is O(C*H*W).

Precision: the output has the promoted dtype of ``x`` and ``kernels`` (what the unfold version
gives). For float16 / bfloat16 inputs (autocast) the 9-term sum is accumulated in float32 and
rounded once at the end, which is at least as accurate as the unfold version's reduction; each
kernel-gradient entry is a single product, computed in the kernels' dtype.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

TAPS = tuple(divmod(t, 3) for t in range(9))  # tap index -> (row offset, column offset) + 1


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _as_taps(kernels: torch.Tensor, n: int, c: int, h: int, w: int) -> torch.Tensor:
    """[N, C*9, H, W] -> [N, C, 9, H, W] without copying when the layout allows it."""
    try:
        return kernels.view(n, c, 9, h, w)
    except RuntimeError:  # an exotic stride pattern: one copy of the kernels
        return kernels.reshape(n, c, 9, h, w)


def _check(x: torch.Tensor, kernels: torch.Tensor) -> tuple[int, int, int, int]:
    if x.dim() != 4 or kernels.dim() != 4:
        raise ValueError(f"expected x [N,C,H,W] and kernels [N,C*9,H,W], got {tuple(x.shape)} "
                         f"and {tuple(kernels.shape)}")
    n, c, h, w = x.shape
    if tuple(kernels.shape) != (n, c * 9, h, w):
        raise ValueError(f"kernels must have shape {(n, c * 9, h, w)} for x {tuple(x.shape)}, "
                         f"got {tuple(kernels.shape)}")
    return n, c, h, w


class _ConditionalDepthwise3x3(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        taps = _as_taps(kernels, n, c, h, w)
        out_dtype = torch.result_type(x, kernels)
        padded = F.pad(x, (1, 1, 1, 1))
        out = torch.zeros((n, c, h, w), dtype=_accumulation_dtype(out_dtype), device=x.device)
        for t, (i, j) in enumerate(TAPS):
            out.addcmul_(padded[:, :, i:i + h, j:j + w], taps[:, :, t])
        ctx.save_for_backward(x, kernels)
        return out.to(out_dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        x, kernels = ctx.saved_tensors
        n, c, h, w = x.shape
        taps = _as_taps(kernels, n, c, h, w)
        grad_x = grad_kernels = None
        if ctx.needs_input_grad[0]:
            grad_padded = torch.zeros((n, c, h + 2, w + 2), dtype=_accumulation_dtype(x.dtype),
                                      device=x.device)
            for t, (i, j) in enumerate(TAPS):
                grad_padded[:, :, i:i + h, j:j + w].addcmul_(grad_out, taps[:, :, t])
            grad_x = grad_padded[:, :, 1:h + 1, 1:w + 1].to(x.dtype,
                                                          memory_format=torch.contiguous_format)
        if ctx.needs_input_grad[1]:
            padded = F.pad(x, (1, 1, 1, 1))
            grad_taps = torch.empty((n, c, 9, h, w), dtype=kernels.dtype, device=kernels.device)
            for t, (i, j) in enumerate(TAPS):
                torch.mul(grad_out, padded[:, :, i:i + h, j:j + w], out=grad_taps[:, :, t])
            grad_kernels = grad_taps.view(n, c * 9, h, w)
        return grad_x, grad_kernels


def conditional_depthwise_conv3x3(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Memory-lean per-pixel depthwise 3x3 convolution (see the module docstring)."""
    _check(x, kernels)
    return _ConditionalDepthwise3x3.apply(x, kernels)


def conditional_depthwise_conv3x3_unfold(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """The official formulation (unfold, multiply, sum): the reference and the benchmark baseline."""
    n, c, h, w = _check(x, kernels)
    columns = F.unfold(x, kernel_size=3, padding=1).view(n, c, 9, h, w)
    return (columns * kernels.view(n, c, 9, h, w)).sum(dim=2)


IMPLEMENTATIONS = {"lean": conditional_depthwise_conv3x3, "unfold": conditional_depthwise_conv3x3_unfold}


class ConditionalDepthwiseConv(nn.Module):
    """The official ``DepthConv``: applies predicted per-pixel kernels to ``x``.

    ``norm_layer`` mirrors an affine BatchNorm the official module creates but never calls. It is
    kept (frozen: ``requires_grad=False``) so that parameter counts and checkpoint keys equal the
    official ones; it takes no part in the computation and no optimiser or DDP reducer sees it.
    """

    def __init__(self, channels: int, implementation: str = "lean") -> None:
        super().__init__()
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"unknown conditional convolution {implementation!r}; "
                             f"choose one of {sorted(IMPLEMENTATIONS)}")
        self.channels = channels
        self.implementation = implementation
        self.norm_layer = nn.BatchNorm2d(channels, affine=True)
        self.norm_layer.requires_grad_(False)

    def forward(self, x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
        return IMPLEMENTATIONS[self.implementation](x, kernels)

    def extra_repr(self) -> str:
        return f"{self.channels}, implementation={self.implementation!r}, norm_layer unused"
