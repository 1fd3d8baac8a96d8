"""The conditional-convolution residual block of CC-FPSE (official name ``DepthsepCCBlock``).

From the conditioning tensor ``cond`` (resized one-hot map ++ label-pyramid map, S + 64 channels)
four heads, each Conv3x3(cond -> 128) -> ReLU -> Conv3x3(128 -> K), predict per pixel:

- ``gen_weights1``: fin x 3x3 depthwise kernels of the first conditional convolution,
- ``gen_weights2``: fout x 3x3 depthwise kernels of the second,
- ``gen_se_weights1`` / ``gen_se_weights2``: sigmoid channel attentions (fmiddle / fout).

Main path (a depthwise-separable conv pair whose depthwise part is predicted)::

    BN -> predicted depthwise 3x3 -> 1x1 conv -> x attention1 -> LReLU(0.2)
       -> BN -> predicted depthwise 3x3 -> 1x1 conv -> x attention2 -> LReLU(0.2)

Shortcut: identity, or (when fin != fout) a SPADE-modulated SN 1x1 conv. Output = shortcut + main.
BN layers are affine BatchNorm2d (converted to SyncBatchNorm by the runner on several processes).

Like the official block, this one holds BatchNorms its forward never calls (``norm_0`` and each
depthwise conv's ``norm_layer``). They are kept frozen (``requires_grad=False``) so that parameter
counts and checkpoint keys equal the official ones; no optimiser or DDP reducer sees them.

Memory (``checkpoint_activations``): the predicted kernels (9 x C x H x W floats per conditional
convolution) and the heads' 128-channel hidden maps dominate a block's saved activations. With
the option on, each "head(s) -> conditional convolution" segment is recomputed in backward
instead of stored (torch.utils.checkpoint, non-reentrant). Only BatchNorm-free, spectral-norm-free
segments are checkpointed (the heads are plain conv/ReLU/conv, the conditional convolution has no
state), so recomputation cannot update running statistics or power iterations twice: the
gradients equal the plain path's (tests/test_ccfpse_checkpointing.py).

Speed (``batched_heads``): the heads' first convolutions (and the SPADE shortcut's shared MLP
conv, which reads the same ``cond``) run as one convolution with their weights concatenated at
forward time (:mod:`methods.ccfpse.batched_heads`); the shortcut's gamma and beta convs, which
read the same hidden map, likewise. No parameter or state-dict key changes. With checkpointing
on, each checkpointed segment batches its own two heads (the kernels head and the attention head
it uses), so the segments stay BatchNorm- and spectral-norm-free and nothing is stored twice.
Outputs and gradients equal the separate heads' up to float summation order
(tests/test_ccfpse_batched_heads.py).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from methods.blocks.normalization import SPADE
from methods.blocks.spectral import spectral
from methods.ccfpse import batched_heads as bh
from methods.ccfpse.conditional_conv import ConditionalDepthwiseConv


def predictor(cond_nc: int, out_nc: int, hidden: int = 128, *, sigmoid: bool = False) -> nn.Sequential:
    """Conv3x3 -> ReLU -> Conv3x3 (plain convs with bias, as the official heads)."""
    layers = [nn.Conv2d(cond_nc, hidden, 3, padding=1), nn.ReLU(),
              nn.Conv2d(hidden, out_nc, 3, padding=1)]
    if sigmoid:
        layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


class ConditionalConvBlock(nn.Module):
    def __init__(self, fin: int, fout: int, cond_nc: int, *, hidden: int = 128,
                 implementation: str = "lean", checkpoint_activations: bool = False,
                 batched_heads: bool = False) -> None:
        super().__init__()
        self.checkpoint_activations = checkpoint_activations
        self.batched_heads = batched_heads
        if fout > fin:
            # The second kernels head predicts fout*9 kernels for fmiddle channels.
            raise ValueError(f"a conditional-convolution block needs fout <= fin, got {fin}->{fout}")
        fmiddle = min(fin, fout)
        self.learned_shortcut = fin != fout

        self.gen_weights1 = predictor(cond_nc, fin * 9, hidden)
        self.gen_weights2 = predictor(cond_nc, fout * 9, hidden)
        self.gen_se_weights1 = predictor(cond_nc, fmiddle, hidden, sigmoid=True)
        self.gen_se_weights2 = predictor(cond_nc, fout, hidden, sigmoid=True)

        self.conv_0 = ConditionalDepthwiseConv(fin, implementation)
        self.norm_0 = nn.BatchNorm2d(fmiddle, affine=True)   # unused, kept for the official keys
        self.norm_0.requires_grad_(False)
        self.conv_1 = nn.Conv2d(fin, fmiddle, kernel_size=1)
        self.norm_1 = nn.BatchNorm2d(fin, affine=True)
        self.conv_2 = ConditionalDepthwiseConv(fmiddle, implementation)
        self.norm_2 = nn.BatchNorm2d(fmiddle, affine=True)
        self.conv_3 = nn.Conv2d(fmiddle, fout, kernel_size=1)
        if self.learned_shortcut:
            self.conv_s = spectral(nn.Conv2d(fin, fout, kernel_size=1, bias=False))
            self.norm_s = SPADE(fin, cond_nc, norm="batch", nhidden=hidden)

        if batched_heads:
            bh.check_predictors(self._predictors())
            if self.learned_shortcut:
                bh.check_batchable([self.norm_s.mlp_gamma, self.norm_s.mlp_beta])

    def _predictors(self) -> list[nn.Sequential]:
        """Every Conv -> ReLU head that reads ``cond``, in a fixed order."""
        heads = [self.gen_weights1, self.gen_se_weights1, self.gen_weights2, self.gen_se_weights2]
        return heads + ([self.norm_s.mlp_shared] if self.learned_shortcut else [])

    def _heads(self, heads: list[nn.Sequential], cond: torch.Tensor) -> list[torch.Tensor]:
        if self.batched_heads:
            return bh.predictor_outputs(heads, cond)
        return [head(cond) for head in heads]

    def _cond_conv_0(self, xn: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Predicted depthwise conv, 1x1 conv and attention of the first half (no BN inside)."""
        kernels, attention = self._heads([self.gen_weights1, self.gen_se_weights1], cond)
        return self._half_0(xn, kernels, attention)

    def _cond_conv_2(self, xn: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        kernels, attention = self._heads([self.gen_weights2, self.gen_se_weights2], cond)
        return self._half_2(xn, kernels, attention)

    def _half_0(self, xn: torch.Tensor, kernels: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        return self.conv_1(self.conv_0(xn, kernels)) * attention

    def _half_2(self, xn: torch.Tensor, kernels: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        return self.conv_3(self.conv_2(xn, kernels)) * attention

    def _segment(self, fn, xn: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if self._checkpointing(xn, cond):
            return checkpoint(fn, xn, cond, use_reentrant=False)
        return fn(xn, cond)

    def _checkpointing(self, x: torch.Tensor, cond: torch.Tensor) -> bool:
        return self.checkpoint_activations and torch.is_grad_enabled() and (
            x.requires_grad or cond.requires_grad or self.training)

    def _shortcut(self, x: torch.Tensor, actv: torch.Tensor) -> torch.Tensor:
        """SPADE(x, cond) -> SN 1x1 conv, from the shared MLP's output ``actv`` (the SPADE
        formula of methods.blocks.normalization, with gamma and beta as one convolution)."""
        norm = self.norm_s
        gamma, beta = bh.conv_outputs([norm.mlp_gamma, norm.mlp_beta], actv)
        return self.conv_s(norm.param_free_norm(x) * (1 + gamma) + beta)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        cond = F.interpolate(cond, size=x.shape[2:], mode="nearest")
        if self.batched_heads and not (self.checkpoint_activations and torch.is_grad_enabled()):
            return self._forward_batched(x, cond)
        if not self.learned_shortcut:
            x_s = x
        elif self.batched_heads:
            x_s = self._shortcut(x, self.norm_s.mlp_shared(cond))
        else:
            x_s = self.conv_s(self.norm_s(x, cond))

        dx = F.leaky_relu(self._segment(self._cond_conv_0, self.norm_1(x), cond), 0.2)
        dx = F.leaky_relu(self._segment(self._cond_conv_2, self.norm_2(dx), cond), 0.2)
        return x_s + dx

    def _forward_batched(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """All heads reading ``cond`` as one first convolution; the same maths as forward."""
        outs = bh.predictor_outputs(self._predictors(), cond)
        x_s = self._shortcut(x, outs[4]) if self.learned_shortcut else x
        dx = F.leaky_relu(self._half_0(self.norm_1(x), outs[0], outs[1]), 0.2)
        dx = F.leaky_relu(self._half_2(self.norm_2(dx), outs[2], outs[3]), 0.2)
        return x_s + dx
