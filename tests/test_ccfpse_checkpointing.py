"""CC-FPSE activation checkpointing (method.checkpoint_activations): the same loss, the same
gradients for every parameter of G, E and D, and the same BatchNorm running statistics as the
plain path, on the same weights and batch; the option is a typed runtime field of the config."""
from __future__ import annotations

import pytest
import torch

from _ccfpse_helpers import scene_batch, tiny_config, tiny_info
from harness.core.config import from_dict, identity_dict
from methods.base import Nets, frozen_except
from methods.ccfpse.method import CCFPSE, CCFPSEConfig


def _grads(checkpointing: bool, state=None):
    cfg = tiny_config(ngf=8, ndf=8, hidden=16, checkpoint_activations=checkpointing)
    torch.manual_seed(0)
    method = CCFPSE(cfg, tiny_info((64, 64)))
    if state is not None:
        method.nets.load_state_dict(state)
    method.nets.train()
    batch = scene_batch(2, (64, 64), seed=3)
    out = {}
    for phase in method.phases():
        for p in method.nets.parameters():
            p.grad = None
        with frozen_except(method, phase.networks):
            torch.manual_seed(1)  # the VAE's reparameterisation noise
            terms = phase.loss(batch, Nets(dict(method.nets.items())), 1)
            total = sum(terms.values())
            total.backward()
        out[phase.name] = (float(total.detach()), {n: p.grad.clone() for n, p in method.nets.named_parameters()
                                          if p.grad is not None})
    buffers = {n: b.clone() for n, b in method.nets.named_buffers() if "running" in n}
    return method.nets.state_dict(), out, buffers


def test_checkpointed_gradients_equal_the_plain_path():
    # both paths start from the same initial weights and buffers
    torch.manual_seed(0)
    init = CCFPSE(tiny_config(ngf=8, ndf=8, hidden=16), tiny_info((64, 64))).nets.state_dict()
    _, plain, plain_buffers = _grads(False, init)
    _, ckpt, ckpt_buffers = _grads(True, init)
    for phase in plain:
        loss_p, grads_p = plain[phase]
        loss_c, grads_c = ckpt[phase]
        assert loss_c == pytest.approx(loss_p, rel=1e-5)
        assert set(grads_c) == set(grads_p) and grads_p
        for name, g in grads_p.items():
            torch.testing.assert_close(grads_c[name], g, rtol=1e-4, atol=1e-6, msg=name)
    # recomputation must not update BatchNorm running statistics a second time
    for name, b in plain_buffers.items():
        torch.testing.assert_close(ckpt_buffers[name], b, rtol=1e-5, atol=1e-7, msg=name)


def test_checkpointing_is_used_and_typed():
    cfg = from_dict(CCFPSEConfig, {"checkpoint_activations": True, "vgg_loss": False})
    assert cfg.checkpoint_activations is True
    # a runtime choice: same maths, so it does not change the method's identity hash
    assert "checkpoint_activations" not in identity_dict(cfg)
    with pytest.raises(Exception, match="checkpoint_activations"):
        from_dict(CCFPSEConfig, {"checkpoint_activations": "maybe"})
    method = CCFPSE(tiny_config(checkpoint_activations=True), tiny_info((64, 64)))
    assert all(b.checkpoint_activations for name, b in method.nets.G.named_children()
               if name.startswith(("head", "G_middle", "up_")))
    # in eval / no_grad the plain path runs (nothing to save)
    calls = []
    import methods.ccfpse.cc_block as cc
    original = cc.checkpoint
    cc.checkpoint = lambda *a, **k: calls.append(1) or original(*a, **k)
    try:
        batch = scene_batch(1, (64, 64))
        seg = method.semantics(batch.label, batch.edge, batch.instance)
        with torch.no_grad():
            method.nets.G(seg)
        assert calls == []
        method.nets.G(seg).mean().backward()
        assert len(calls) == 2 * 7
    finally:
        cc.checkpoint = original
