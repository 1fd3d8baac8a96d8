"""Shared foundation pieces: atomic writes, instance edges, semantic input, phase execution."""
import os

import pytest
import torch
from torch import nn

from harness.core.data.base import Batch
from harness.core.data.edges import instance_edges
from harness.core.io import OutputError, atomic_write_json, atomic_write_text, read_json
from methods.base import (Method, NonFiniteLoss, Phase, StepPolicy, frozen_except, run_phases,
                          semantic_input, to_uint8)


def test_atomic_write_replaces_whole_file_and_keeps_old_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "a" / "m.json"
    atomic_write_json(p, {"v": 1})
    assert read_json(p) == {"v": 1}

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OutputError, match="m.json"):
        atomic_write_json(p, {"v": 2})
    monkeypatch.undo()
    assert read_json(p) == {"v": 1}
    assert [f.name for f in p.parent.iterdir()] == ["m.json"]  # no temp file left behind


def test_atomic_write_into_unwritable_place_names_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="file/out.txt"):
        atomic_write_text(blocker / "out.txt", "hello")


def test_instance_edges_two_pixel_boundaries():
    inst = torch.tensor([[1, 1, 2, 2],
                         [1, 1, 2, 2],
                         [3, 3, 3, 3]])
    expected = torch.tensor([[0, 1, 1, 0],
                             [1, 1, 1, 1],
                             [1, 1, 1, 1]], dtype=torch.float32)
    edge = instance_edges(inst)
    assert edge.shape == (1, 3, 4)
    assert torch.equal(edge[0], expected)
    batched = instance_edges(inst.unsqueeze(0).repeat(2, 1, 1))
    assert batched.shape == (2, 1, 3, 4) and torch.equal(batched[1, 0], expected)


def test_semantic_input_onehot_and_edge_last():
    label = torch.tensor([[[0, 2], [1, 2]]])
    inst = torch.tensor([[[5, 6], [5, 6]]])
    x = semantic_input(label, 3, instance=inst, use_edge=True)
    assert x.shape == (1, 4, 2, 2)
    assert torch.equal(x[0, :3].argmax(0), label[0]) and torch.equal(x[0, :3].sum(0), torch.ones(2, 2))
    assert torch.equal(x[0, 3], instance_edges(inst)[0, 0])
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        semantic_input(torch.tensor([[[3]]]), 3)


def test_to_uint8_rounds_and_clamps():
    x = torch.tensor([-2.0, -1.0, 0.0, 1.0, 0.999])
    assert to_uint8(x).tolist() == [0, 0, 128, 255, 255]


class _Tiny(Method):
    """Two linear 'networks' trained by two phases; enough to check run_phases."""
    from dataclasses import dataclass as _dc

    @_dc
    class Config:
        nan_at: int = -1

    def __init__(self, cfg, info=None, runtime=None):
        super().__init__(cfg, info, runtime)
        torch.manual_seed(0)
        self.nets = nn.ModuleDict({"G": nn.Linear(2, 2), "D": nn.Linear(2, 1)})
        self._optimizers = {"G": torch.optim.SGD(self.nets.G.parameters(), lr=0.1),
                            "D": torch.optim.SGD(self.nets.D.parameters(), lr=0.1)}
        self.seen = []

    def phases(self):
        return [Phase("generator", "G", ("G",), self.g_loss), Phase("discriminator", "D", ("D",), self.d_loss)]

    def g_loss(self, batch, nets, step):
        self.seen.append(("G", [p.requires_grad for p in nets.D.parameters()]))
        out = nets.D(nets.G(batch.image)).mean()
        if step == self.cfg.nan_at:
            out = out * float("nan")
        return {"G_adv": out}

    def d_loss(self, batch, nets, step):
        self.seen.append(("D", [p.requires_grad for p in nets.G.parameters()]))
        return {"D_adv": -nets.D(nets.G(batch.image).detach()).mean()}


def _batch(n=4):
    return Batch(label=torch.zeros(n, 1, 1, dtype=torch.long), image=torch.randn(n, 2), key=[str(i) for i in range(n)])


def test_run_phases_freezes_others_and_restores_flags():
    m = _Tiny(_Tiny.Config())
    d_before = [p.clone() for p in m.nets.D.parameters()]
    g_before = [p.clone() for p in m.nets.G.parameters()]
    logs = m.train_step(_batch(), 0)
    assert set(logs) == {"G_adv", "D_adv"}
    assert m.seen == [("G", [False, False]), ("D", [False, False])]
    assert all(p.requires_grad for p in m.nets.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(g_before, m.nets.G.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(d_before, m.nets.D.parameters()))


def test_grad_accumulation_equals_full_batch():
    a, b = _Tiny(_Tiny.Config()), _Tiny(_Tiny.Config())
    batch = _batch(4)

    class Accum(StepPolicy):
        grad_accum = 2
    b.policy = Accum()
    a.train_step(batch, 0)
    b.train_step(batch, 0)
    for pa, pb in zip(a.nets.parameters(), b.nets.parameters()):
        assert torch.allclose(pa, pb, atol=1e-7)


def test_non_finite_loss_names_phase_step_terms():
    m = _Tiny(_Tiny.Config(nan_at=3))
    with pytest.raises(NonFiniteLoss) as exc:
        m.train_step(_batch(), 3)
    assert exc.value.phase == "generator" and exc.value.step == 3
    assert "G_adv=nan" in str(exc.value)
    assert all(p.requires_grad for p in m.nets.parameters())  # flags restored after the error


def test_frozen_except_keeps_intentionally_frozen_params():
    m = _Tiny(_Tiny.Config())
    m.nets.D.bias.requires_grad_(False)
    with frozen_except(m, ("G",)):
        assert not m.nets.D.weight.requires_grad
    assert m.nets.D.weight.requires_grad and not m.nets.D.bias.requires_grad
