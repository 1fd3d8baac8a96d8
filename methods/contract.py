"""The Method contract test suite, reusable by any method (built-in or plugin).

Two ways to use it:

1. Call the checks from your own test::

       from methods.contract import check_method, random_batch

       def test_my_method_contract():
           info = DatasetInfo("toy", label_nc=4, contain_dontcare=False, has_instances=False,
                              class_names=("a", "b", "c", "d"), image_size=(32, 32))
           check_method(lambda: MyMethod(MyMethod.Config(ngf=8), info),
                        lambda: random_batch(info, n=2))

2. Subclass :class:`MethodContract` in a pytest file; every check becomes one test::

       class TestMyMethod(MethodContract):
           def make_method(self):
               return MyMethod(MyMethod.Config(ngf=8), INFO)

           def make_batch(self):
               return random_batch(INFO, n=2)

What is checked (each a function of this module, see their docstrings): networks / optimisers /
phases are consistent; ``generate`` returns uint8 [N,3,H,W] at the label size, is deterministic
for identical per-image generators and independent of the batch it is in; a multimodal method
gives different images for different seeds and a unimodal one does not depend on them; a state
survives ``torch.save`` -> fresh instance -> ``load_state_dict`` (same outputs, and the same
parameters after one more training step from the same RNG state); a training step returns
finite floats and leaves every parameter finite; ``load_state_dict`` rejects a state of another
architecture.
"""
from __future__ import annotations

import copy
import io
import math
import random
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from harness.core.data.base import Batch, DatasetInfo
from harness.core.data.edges import instance_edges
from methods.base import Method

MethodFactory = Callable[[], Method]

# Convolution kernels may round differently for another batch size (CPU oneDNN blocking, cuDNN
# algorithm choice): a batch-independent method can still differ by 1 (of 255) in a few values.
# More than that, or larger differences, mean real batch dependence.
BATCH_ROUNDING_SHARE = 0.005
BatchFactory = Callable[[], Batch]


class ContractViolation(AssertionError):
    """A method breaks the Method contract; the message says which rule and where."""


def _fail(method: Method, rule: str, detail: str) -> ContractViolation:
    return ContractViolation(f"method {getattr(method, 'name', '') or type(method).__name__!r}: "
                             f"{rule}: {detail}")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def generators(seeds: Sequence[int]) -> list[torch.Generator]:
    out = []
    for s in seeds:
        g = torch.Generator()
        g.manual_seed(int(s))
        out.append(g)
    return out


def random_batch(info: DatasetInfo, n: int = 2, size: tuple[int, int] | None = None,
                 seed: int = 0) -> Batch:
    """A batch of random label maps (blocky, so they look like segments), instances and images."""
    h, w = size or info.image_size
    g = torch.Generator()
    g.manual_seed(seed)
    classes = info.num_label_channels
    coarse = torch.randint(0, classes, (n, max(1, h // 4), max(1, w // 4)), generator=g)
    label = torch.nn.functional.interpolate(coarse[:, None].float(), size=(h, w),
                                            mode="nearest")[:, 0].long()
    instance = label * 1000 + torch.randint(0, 2, (n, 1, 1), generator=g)
    image = torch.rand((n, 3, h, w), generator=g) * 2 - 1
    edge = instance_edges(instance) if info.has_instances else None
    return Batch(label=label, image=image, key=[f"k{i}" for i in range(n)],
                 instance=instance if info.has_instances else None, edge=edge,
                 index=torch.arange(n))


def _generate(method: Method, batch: Batch, gens, rows: Sequence[int] | None = None,
              style: bool = False) -> torch.Tensor:
    rows = list(range(len(batch))) if rows is None else list(rows)
    idx = torch.tensor(rows)

    def pick(t):
        return None if t is None else t.index_select(0, idx.to(t.device))
    kwargs = {"instance": pick(batch.instance), "edge": pick(batch.edge), "generator": gens}
    if style:
        kwargs["style_image"] = pick(batch.image)
    with torch.no_grad():
        return method.generate(pick(batch.label), **kwargs)


def calibrate_running_statistics(method: Method, batch: Batch, gens=None) -> int:
    """Set the running mean of every norm layer that keeps running statistics to the mean of its
    own input on ``batch``, and its running variance to that input's variance + 1, in one
    eval-mode generation pass; returns how many layers were set.

    Why: a freshly built network still has running statistics (0, 1), so in eval mode nothing
    normalises its activations; in the tiny SPADE they reach ~1e13 before tanh. There, a
    last-bit difference between the batch-1 and batch-2 convolution kernels (which differ per
    CPU ISA and thread count) flips saturated pixels from -1 to +1, which says nothing about
    batch independence. Each layer is set from its input as the pass reaches it, so every layer
    downstream already sees calibrated activations: the network is then well-conditioned, as a
    trained one is. The + 1 keeps any layer from amplifying: a nearly constant channel divided by
    sqrt(eps) would magnify last-bit differences some 300-fold and turn them into rounding flips.
    The statistics are then frozen, so they cannot carry batch dependence."""
    norms = [m for net in method.networks().values() for m in net.modules()
             if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats
             and m.running_mean is not None]

    def set_from_input(module: nn.Module, args: tuple) -> None:
        x = args[0].detach().float()
        dims = [0] + list(range(2, x.dim()))
        module.running_mean.copy_(x.mean(dims))
        module.running_var.copy_(x.var(dims, unbiased=False) + 1.0)

    hooks = [m.register_forward_pre_hook(set_from_input) for m in norms]
    try:
        method.eval()
        _generate(method, batch, gens if gens is not None else generators(range(len(batch))))
    finally:
        for h in hooks:
            h.remove()
    return len(norms)


def _params(method: Method) -> dict[str, torch.Tensor]:
    return {f"{net}.{name}": p for net, module in method.networks().items()
            for name, p in module.named_parameters()}


def _buffers(method: Method) -> dict[str, torch.Tensor]:
    return {f"{net}.{name}": b for net, module in method.networks().items()
            for name, b in module.named_buffers()}


# ----------------------------------------------------------------------------------------------
# The checks
# ----------------------------------------------------------------------------------------------
def check_structure(method: Method) -> None:
    """networks()/optimizers()/phases() agree: every phase names a known optimiser and known
    networks; every trainable parameter belongs to exactly one optimiser; an optimiser only holds
    parameters of the networks trained in its phases."""
    nets = method.networks()
    if not nets or not all(isinstance(m, nn.Module) for m in nets.values()):
        raise _fail(method, "networks()", f"must be a non-empty dict of nn.Modules, got {nets!r}")
    opts = method.optimizers()
    if not opts:
        raise _fail(method, "optimizers()", "no optimisers")
    phases = method.phases()
    if not phases:
        raise _fail(method, "phases()", "no training phases")
    owner: dict[int, str] = {}
    for net_name, module in nets.items():
        for pname, p in module.named_parameters():
            owner.setdefault(id(p), f"{net_name}.{pname}")
    in_opt: dict[int, str] = {}
    for opt_name, opt in opts.items():
        for group in opt.param_groups:
            for p in group["params"]:
                if id(p) in in_opt and in_opt[id(p)] != opt_name:
                    raise _fail(method, "optimizers()", f"parameter {owner.get(id(p), '?')} is in "
                                f"optimisers {in_opt[id(p)]!r} and {opt_name!r}")
                if id(p) not in owner:
                    raise _fail(method, "optimizers()", f"optimiser {opt_name!r} holds a "
                                "parameter that belongs to no network in networks()")
                in_opt[id(p)] = opt_name
    for net_name, module in nets.items():
        for pname, p in module.named_parameters():
            if p.requires_grad and id(p) not in in_opt:
                raise _fail(method, "optimizers()", f"trainable parameter {net_name}.{pname} "
                            "belongs to no optimiser (freeze it or add it to one)")
    trained_by: dict[str, set[str]] = {}
    for ph in phases:
        if ph.optimizer not in opts:
            raise _fail(method, f"phase {ph.name!r}", f"names optimiser {ph.optimizer!r}; "
                        f"optimisers: {sorted(opts)}")
        unknown = [n for n in ph.networks if n not in nets]
        if unknown:
            raise _fail(method, f"phase {ph.name!r}", f"names networks {unknown}; networks: "
                        f"{sorted(nets)}")
        if not callable(ph.loss):
            raise _fail(method, f"phase {ph.name!r}", "loss is not callable")
        trained_by.setdefault(ph.optimizer, set()).update(ph.networks)
    for opt_name, opt in opts.items():
        if opt_name not in trained_by:
            continue  # an optimiser used by no phase (yet); harmless
        allowed = {id(p) for n in trained_by[opt_name] for p in nets[n].parameters()}
        for group in opt.param_groups:
            for p in group["params"]:
                if id(p) not in allowed:
                    raise _fail(method, f"optimiser {opt_name!r}", f"updates {owner[id(p)]} but "
                                f"its phases only train {sorted(trained_by[opt_name])} (that "
                                "network is frozen while the optimiser steps)")
    caps = method.capabilities()
    if not all(isinstance(v, bool) for v in caps.values()):
        raise _fail(method, "capabilities()", f"values must be bools, got {caps!r}")


def check_generate(method: Method, batch: Batch) -> None:
    """uint8 [N,3,H,W] at the label size; identical for identical per-image generators; image i
    is the same alone as in a batch (generator i travels with it), up to off-by-one rounding in
    at most BATCH_ROUNDING_SHARE of the values. Runs after calibrate_running_statistics (which
    changes the method's running statistics), so that the comparison is well-conditioned."""
    if len(batch) < 2:
        raise ValueError("check_generate needs a batch of at least 2 label maps")
    calibrate_running_statistics(method, batch)
    n, h, w = batch.label.shape
    out = _generate(method, batch, generators(range(100, 100 + n)))
    if not isinstance(out, torch.Tensor) or out.dtype != torch.uint8 or tuple(out.shape) != (n, 3, h, w):
        raise _fail(method, "generate()", f"returned {getattr(out, 'dtype', type(out))} "
                    f"{tuple(getattr(out, 'shape', ()))}; expected uint8 ({n}, 3, {h}, {w})")
    again = _generate(method, batch, generators(range(100, 100 + n)))
    if not torch.equal(out, again):
        raise _fail(method, "generate()", "two calls with identically seeded generators differ "
                    f"(max abs diff {int((out.int() - again.int()).abs().max())})")
    for i in range(min(n, 2)):
        alone = _generate(method, batch, generators([100 + i]), rows=[i])
        diff = (alone[0].int() - out[i].int()).abs()
        worst, share = int(diff.max()), float((diff > 0).float().mean())
        if worst > 1 or share > BATCH_ROUNDING_SHARE:
            raise _fail(method, "generate()", f"image {i} differs when generated alone vs in a "
                        f"batch of {n} with the same generator (max abs diff {worst}, "
                        f"{share:.2%} of values); use one generator per image "
                        "(methods.base.randn_per_sample) and no batch statistics in eval mode")


def check_seeds(method: Method, batch: Batch, multimodal: bool | None = None) -> None:
    """A multimodal method gives different images for different seeds; a unimodal one gives the
    same image whatever the seed (the harness then generates one seed only)."""
    multimodal = method.multimodal if multimodal is None else multimodal
    if multimodal != method.multimodal:
        raise _fail(method, "multimodal", f"expected {multimodal}, the method says "
                    f"{method.multimodal}")
    calibrate_running_statistics(method, batch)  # saturated outputs would hide the seed
    n = len(batch)
    a = _generate(method, batch, generators(range(10, 10 + n)))
    b = _generate(method, batch, generators(range(50, 50 + n)))
    same = [torch.equal(a[i], b[i]) for i in range(n)]
    if multimodal and any(same):
        raise _fail(method, "multimodal", f"images {[i for i, s in enumerate(same) if s]} are "
                    "identical for different seeds")
    if not multimodal and not all(same):
        raise _fail(method, "multimodal=False", "images depend on the seed; declare the method "
                    "multimodal or make generation deterministic")


def check_style_encoding(method: Method, batch: Batch) -> None:
    """When the method can encode a style from an image: shapes, determinism, batch independence
    of generate(..., style_image=...)."""
    if not method.supports_style_encoding:
        return
    calibrate_running_statistics(method, batch)
    n, h, w = batch.label.shape
    try:
        out = _generate(method, batch, generators(range(n)), style=True)
    except (NotImplementedError, ValueError) as exc:
        raise _fail(method, "supports_style_encoding", "is True, but generate(style_image=...) "
                    f"raised {type(exc).__name__}: {exc} (report the capability per "
                    "configuration, e.g. override supports_style_encoding)") from exc
    if out.dtype != torch.uint8 or tuple(out.shape) != (n, 3, h, w):
        raise _fail(method, "generate(style_image=...)", f"returned {out.dtype} "
                    f"{tuple(out.shape)}; expected uint8 ({n}, 3, {h}, {w})")
    again = _generate(method, batch, generators(range(n)), style=True)
    alone = _generate(method, batch, generators([0]), rows=[0], style=True)
    diff = (alone[0].int() - out[0].int()).abs()
    if not torch.equal(out, again) or int(diff.max()) > 1 or \
            float((diff > 0).float().mean()) > BATCH_ROUNDING_SHARE:
        raise _fail(method, "generate(style_image=...)", "not deterministic / batch-independent "
                    "for identical generators")


def check_train_step(method: Method, batch: Batch, step: int = 0) -> dict[str, float]:
    """One training step returns a non-empty dict of finite floats and leaves every parameter
    and buffer finite."""
    method.train()
    logs = method.train_step(batch, step)
    if not isinstance(logs, dict) or not logs:
        raise _fail(method, "train_step()", f"must return a non-empty dict, got {logs!r}")
    for k, v in logs.items():
        if not isinstance(k, str) or not isinstance(v, float) or not math.isfinite(v):
            raise _fail(method, "train_step()", f"loss {k!r} = {v!r} is not a finite float")
    for name, t in {**_params(method), **_buffers(method)}.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise _fail(method, "train_step()", f"{name} has non-finite values after one step")
    return logs


def _serialise(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, map_location="cpu", weights_only=False)


def check_state_round_trip(factory: MethodFactory, batch: Batch, *, seed: int = 1234) -> None:
    """state_dict -> torch.save/load -> fresh instance -> load_state_dict restores everything:
    identical generated images, and identical parameters after one more training step of both
    from the same RNG state (so optimiser moments and method extras are in the state)."""
    first = factory()
    seed_everything(seed)
    check_train_step(first, batch, step=0)
    state = _serialise(first.state_dict())
    second = factory()
    second.load_state_dict(state)
    first.eval()
    second.eval()
    n = len(batch)
    a = _generate(first, batch, generators(range(n)))
    b = _generate(second, batch, generators(range(n)))
    if not torch.equal(a, b):
        raise _fail(first, "state round trip", "a fresh instance loaded with the state generates "
                    "different images")
    for m in (first, second):
        seed_everything(seed + 1)
        m.train()
        m.train_step(batch, 1)
    pa, pb = {**_params(first), **_buffers(first)}, {**_params(second), **_buffers(second)}
    if pa.keys() != pb.keys():
        raise _fail(first, "state round trip", "the two instances have different parameter names")
    for name in pa:
        if not torch.equal(pa[name], pb[name]):
            diff = float((pa[name].detach().double() - pb[name].detach().double()).abs().max()) \
                if pa[name].is_floating_point() else float("nan")
            raise _fail(first, "state round trip", f"{name} differs after one more training "
                        f"step (max abs diff {diff:.3g}); something that drives training is "
                        "missing from state_dict() (optimiser state, extra_state, a step counter)")


def check_rejects_foreign_state(factory: MethodFactory,
                                other_factory: MethodFactory | None = None) -> None:
    """load_state_dict raises on a state of another architecture (a missing or extra network, a
    tensor of another shape, an unexpected parameter, or a state of ``other_factory``)."""
    method = factory()
    base = _serialise(method.state_dict())
    nets = base.get("networks", {})
    if not nets:
        raise _fail(method, "state_dict()", "has no 'networks' section")
    mutations: list[tuple[str, dict]] = []
    first_net = sorted(nets)[0]
    st = copy.deepcopy(base)
    st["networks"]["not_a_network"] = st["networks"].pop(first_net)
    mutations.append((f"network {first_net!r} renamed", st))
    st = copy.deepcopy(base)
    tensor_keys = [k for k, v in st["networks"][first_net].items()
                   if isinstance(v, torch.Tensor) and v.is_floating_point() and v.dim() >= 1]
    if tensor_keys:
        k = tensor_keys[0]
        t = st["networks"][first_net][k]
        st["networks"][first_net][k] = torch.zeros((t.shape[0] + 1, *t.shape[1:]), dtype=t.dtype)
        mutations.append((f"{first_net}.{k} with another shape", st))
    st = copy.deepcopy(base)
    st["networks"][first_net]["not_a_parameter.weight"] = torch.zeros(3)
    mutations.append((f"unexpected key in {first_net}", st))
    if other_factory is not None:
        mutations.append(("a state of another architecture (other_factory)",
                          _serialise(other_factory().state_dict())))
    for what, state in mutations:
        fresh = factory()
        try:
            fresh.load_state_dict(state)
        except Exception:  # any clear error is fine; silently loading is not
            continue
        raise _fail(method, "load_state_dict()", f"accepted {what}")


def check_method(factory: MethodFactory, batch_factory: BatchFactory, *,
                 multimodal: bool | None = None, other_factory: MethodFactory | None = None) -> None:
    """Run every check of the contract on a method built by ``factory`` (CPU, tiny sizes)."""
    batch = batch_factory()
    method = factory()
    check_structure(method)
    check_generate(method, batch)
    check_seeds(method, batch, multimodal)
    check_style_encoding(method, batch)
    check_train_step(factory(), batch)
    check_state_round_trip(factory, batch)
    check_rejects_foreign_state(factory, other_factory)


class MethodContract:
    """Subclass in a pytest file and implement ``make_method`` / ``make_batch``.

    Set ``multimodal`` to the expected capability (None: trust the method) and optionally
    ``make_other_method`` (another architecture, e.g. a different width).
    """

    multimodal: bool | None = None

    def make_method(self) -> Method:
        raise NotImplementedError

    def make_batch(self) -> Batch:
        raise NotImplementedError

    def make_other_method(self) -> Method | None:
        return None

    def test_structure(self) -> None:
        check_structure(self.make_method())

    def test_generate(self) -> None:
        check_generate(self.make_method(), self.make_batch())

    def test_seeds(self) -> None:
        check_seeds(self.make_method(), self.make_batch(), self.multimodal)

    def test_style_encoding(self) -> None:
        check_style_encoding(self.make_method(), self.make_batch())

    def test_train_step(self) -> None:
        check_train_step(self.make_method(), self.make_batch())

    def test_state_round_trip(self) -> None:
        check_state_round_trip(self.make_method, self.make_batch())

    def test_rejects_foreign_state(self) -> None:
        other = self.make_other_method()
        check_rejects_foreign_state(self.make_method,
                                    None if other is None else (lambda: self.make_other_method()))
