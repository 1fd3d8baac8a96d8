"""CC-FPSE batched weight-prediction heads (method.batched_heads): the same parameters and state
dict keys as the separate heads, and the same outputs, gradients and BatchNorm statistics up to
float summation order, with and without activation checkpointing."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from _ccfpse_helpers import official_config, official_info, scene_batch, tiny_config, tiny_info
from harness.core.config import from_dict, identity_dict
from methods.base import Nets, frozen_except
from methods.ccfpse import batched_heads as bh
from methods.ccfpse.cc_block import ConditionalConvBlock
from methods.ccfpse.method import CCFPSE, CCFPSEConfig, build_networks


def _shapes(module: nn.Module) -> list[tuple[str, tuple[int, ...], bool]]:
    return [(n, tuple(p.shape), p.requires_grad) for n, p in module.named_parameters()]


@pytest.mark.parametrize("checkpointing", [False, True])
def test_parameters_and_state_dict_keys_are_those_of_the_separate_heads(checkpointing):
    """At the released ADE20K configuration (meta device): every parameter, its shape and
    trainability, every state-dict key (so official checkpoints and param counts are unchanged)."""
    cfg = official_config("ade20k")
    with torch.device("meta"):
        plain = build_networks(cfg, official_info("ade20k"))
        batched = build_networks(replace(cfg, batched_heads=True,
                                         checkpoint_activations=checkpointing),
                                 official_info("ade20k"))
    for name in plain:
        assert _shapes(batched[name]) == _shapes(plain[name])
        assert list(batched[name].state_dict()) == list(plain[name].state_dict())
    assert sum(p.numel() for p in batched["G"].parameters()) == 140_704_323  # param-counts.md


def _block_run(block: ConditionalConvBlock, x: torch.Tensor, cond: torch.Tensor):
    x, cond = x.clone().requires_grad_(), cond.clone().requires_grad_()
    for p in block.parameters():
        p.grad = None
    out = block(x, cond)
    # a fixed random projection: every output element gets its own gradient
    weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(7)).to(out.dtype)
    (out * weight).sum().backward()
    grads = {n: p.grad for n, p in block.named_parameters() if p.grad is not None}
    buffers = {n: b.clone() for n, b in block.named_buffers()}
    return out.detach(), x.grad, cond.grad, grads, buffers


def _seeded_block(fin, fout, dtype, **options):
    torch.manual_seed(0)
    block = ConditionalConvBlock(fin, fout, 6, hidden=16, **options)
    with torch.no_grad():  # small seeded weights: a well-conditioned, non-saturating block
        for p in block.parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape) * (1.0 / p[0].numel()) ** 0.5)
    return block.to(dtype).train()


@pytest.mark.parametrize("checkpointing", [False, True])
@pytest.mark.parametrize("fin,fout", [(8, 8), (8, 4)])  # identity / learned SPADE shortcut
def test_block_outputs_and_gradients_equal_the_separate_heads(fin, fout, checkpointing):
    x = torch.randn(2, fin, 12, 10, generator=torch.Generator().manual_seed(1))
    cond = torch.rand(2, 6, 12, 10, generator=torch.Generator().manual_seed(2))
    # the reference: the separate heads in float64
    ref = _block_run(_seeded_block(fin, fout, torch.float64), x.double(), cond.double())
    for batched in (False, True):
        got = _block_run(_seeded_block(fin, fout, torch.float32, batched_heads=batched,
                                       checkpoint_activations=checkpointing), x, cond)
        for a, b in zip(got[:3], ref[:3]):
            torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=1e-5)
        assert set(got[3]) == set(ref[3])
        for name, g in ref[3].items():
            scale = float(g.abs().max()) + 1e-3
            torch.testing.assert_close(got[3][name].double(), g, rtol=1e-4, atol=1e-5 * scale,
                                       msg=name)
        for name, b in ref[4].items():  # BatchNorm statistics, spectral-norm vectors
            torch.testing.assert_close(got[4][name].to(b.dtype), b, rtol=1e-4, atol=1e-6, msg=name)
    # and in float64 the batched block equals the separate heads to float64 rounding
    exact = _block_run(_seeded_block(fin, fout, torch.float64, batched_heads=True,
                                     checkpoint_activations=checkpointing), x.double(), cond.double())
    for a, b in zip(exact[:3], ref[:3]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    for name, g in ref[3].items():
        torch.testing.assert_close(exact[3][name], g, rtol=1e-10, atol=1e-12 * (float(g.abs().max()) + 1))


def _step_grads(init, **options):
    cfg = tiny_config(ngf=8, ndf=8, hidden=16, **options)
    method = CCFPSE(cfg, tiny_info((64, 64)))
    method.nets.load_state_dict(init)
    method.nets.train()
    batch = scene_batch(2, (64, 64), seed=3)
    out = {}
    for phase in method.phases():
        for p in method.nets.parameters():
            p.grad = None
        with frozen_except(method, phase.networks):
            torch.manual_seed(1)  # the VAE's reparameterisation noise
            total = sum(phase.loss(batch, Nets(dict(method.nets.items())), 1).values())
            total.backward()
        out[phase.name] = (float(total.detach()),
                           {n: p.grad.clone() for n, p in method.nets.named_parameters()
                            if p.grad is not None})
    buffers = {n: b.clone() for n, b in method.nets.named_buffers()}
    return out, buffers


@pytest.mark.parametrize("checkpointing", [False, True])
def test_training_step_gradients_equal_the_separate_heads(checkpointing):
    """Both phases of a training step (G/E, then D on a generated fake) through the method."""
    torch.manual_seed(0)
    init = CCFPSE(tiny_config(ngf=8, ndf=8, hidden=16), tiny_info((64, 64))).nets.state_dict()
    plain, plain_buffers = _step_grads(init, checkpoint_activations=checkpointing)
    batched, batched_buffers = _step_grads(init, checkpoint_activations=checkpointing,
                                           batched_heads=True)
    for phase, (loss_p, grads_p) in plain.items():
        loss_b, grads_b = batched[phase]
        assert loss_b == pytest.approx(loss_p, rel=1e-5)
        assert set(grads_b) == set(grads_p) and grads_p
        # gradients that should be zero (e.g. a bias before a BatchNorm) are float noise: compare
        # every tensor at the scale of its network's largest gradient
        scale = max(float(g.abs().max()) for g in grads_p.values())
        for name, g in grads_p.items():
            torch.testing.assert_close(grads_b[name], g, rtol=1e-4, atol=1e-6 * scale, msg=name)
    for name, b in plain_buffers.items():
        torch.testing.assert_close(batched_buffers[name], b, rtol=1e-5, atol=1e-7, msg=name)


def test_option_is_typed_runtime_and_checkpointed_segments_stay_two_per_block():
    cfg = from_dict(CCFPSEConfig, {"batched_heads": True, "vgg_loss": False})
    assert cfg.batched_heads is True
    assert "batched_heads" not in identity_dict(cfg)  # same maths: the run id does not change
    with pytest.raises(Exception, match="batched_heads"):
        from_dict(CCFPSEConfig, {"batched_heads": "sometimes"})
    method = CCFPSE(tiny_config(batched_heads=True, checkpoint_activations=True), tiny_info((64, 64)))
    blocks = [b for name, b in method.nets.G.named_children() if name.startswith(("head", "G_mid", "up_"))]
    assert len(blocks) == 7 and all(b.batched_heads and b.checkpoint_activations for b in blocks)
    import methods.ccfpse.cc_block as cc
    calls, original = [], cc.checkpoint
    cc.checkpoint = lambda *a, **k: calls.append(1) or original(*a, **k)
    try:
        batch = scene_batch(1, (64, 64))
        seg = method.semantics(batch.label, batch.edge, batch.instance)
        method.nets.G(seg).mean().backward()
    finally:
        cc.checkpoint = original
    assert len(calls) == 2 * 7


def test_joint_convolution_equals_separate_ones_and_refuses_unlike_layers():
    torch.manual_seed(0)
    convs = [nn.Conv2d(5, k, 3, padding=1) for k in (3, 7, 2)]
    x = torch.randn(2, 5, 9, 8)
    for got, conv in zip(bh.conv_outputs(convs, x), convs):
        torch.testing.assert_close(got, conv(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="cannot share one convolution"):
        bh.check_batchable([nn.Conv2d(5, 3, 3, padding=1), nn.Conv2d(5, 3, 3, padding=0)])
    with pytest.raises(ValueError, match="cannot share one convolution"):
        bh.check_batchable([nn.Conv2d(5, 3, 3, padding=1), nn.Conv2d(4, 3, 3, padding=1)])
    with pytest.raises(ValueError, match="Conv2d -> ReLU"):
        bh.check_predictors([nn.Sequential(nn.Conv2d(5, 3, 3), nn.Tanh())])
