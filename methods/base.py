"""The Method contract: what a semantic image synthesis method implements to plug into the harness.

A Method owns model maths only: networks, optimisers, the loss of each training phase, and
generation. The runner owns loops, devices, precision, distributed wrappers, accumulation,
learning-rate schedules, checkpoints and logging.

Minimal method::

    @register_method("mymethod")
    class MyMethod(Method):
        @dataclass
        class Config:
            ngf: int = 64
            lr_g: float = 1e-4

        def __init__(self, cfg, info, runtime=None):
            super().__init__(cfg, info, runtime)
            self.nets = nn.ModuleDict({"G": ..., "D": ...})
            self._optimizers = {"G": Adam(self.nets.G.parameters(), ...), "D": ...}

        def phases(self):
            return [Phase("generator", "G", ("G",), self.generator_loss),
                    Phase("discriminator", "D", ("D",), self.discriminator_loss)]

        def generator_loss(self, batch, nets, step):   # -> {"G_GAN": tensor, ...}
            ...

        def generate(self, label, instance=None, *, edge=None, z=None, generator=None,
                     style_image=None):
            ...  # -> uint8 [N, 3, H, W]

A third-party package registers it with an entry point instead of the decorator::

    [project.entry-points."harness.methods"]
    mymethod = "my_package.module:MyMethod"
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Mapping, Sequence

import torch
from torch import nn

from harness.core.data.base import Batch, DatasetInfo
from harness.core.data.edges import instance_edges
from harness.core.errors import UserError

if TYPE_CHECKING:  # weight resolution is foundation code; only its type is needed here
    from harness.core.weights import WeightNeed


class NotSupported(NotImplementedError):
    """The method lacks an optional capability (style encoding, official checkpoints, ...)."""


class OfficialCheckpointError(UserError, ValueError):
    """A checkpoint released by a method's authors cannot be imported: unreadable, or it does not
    fit the configured networks. ``import_official`` raises it (the message names the file and
    what was expected); it is a user error, reported in one line with exit status 2."""


class NonFiniteLoss(FloatingPointError):
    """A loss became NaN or Inf; carries the phase, the step and every loss term."""

    def __init__(self, phase: str, step: int, terms: dict[str, float]) -> None:
        self.phase, self.step, self.terms = phase, step, terms
        bad = ", ".join(f"{k}={v}" for k, v in terms.items())
        super().__init__(f"non-finite loss in phase '{phase}' at step {step}: {bad}")


@dataclass
class Runtime:
    """Facts about the run that a method may need (set by the runner)."""
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    world_size: int = 1
    rank: int = 0
    steps_per_epoch: int = 1


@dataclass
class Phase:
    """One optimiser update per training step, run in list order (e.g. G then D).

    ``loss(batch, nets, step)`` returns named loss terms whose sum is minimised by optimiser
    ``optimizer`` over the parameters of ``networks``. During the phase the other networks are
    frozen (``requires_grad=False``; gradients still flow *through* them) and ``nets`` gives
    the modules to call: the trained ones possibly wrapped for DDP, the others unwrapped.
    """
    name: str
    optimizer: str
    networks: tuple[str, ...]
    loss: Callable[[Batch, "Nets", int], dict[str, torch.Tensor]]


class Nets:
    """Attribute and item access to the modules a phase's loss should call."""

    def __init__(self, modules: Mapping[str, nn.Module]) -> None:
        self._modules = dict(modules)

    def __getattr__(self, name: str) -> nn.Module:
        try:
            return self.__dict__["_modules"][name]
        except KeyError:
            raise AttributeError(f"no network {name!r}; networks: {sorted(self._modules)}") from None

    def __getitem__(self, name: str) -> nn.Module:
        return self._modules[name]

    def __contains__(self, name: str) -> bool:
        return name in self._modules


# --------------------------------------------------------------------------------------------
# How phases are executed: a policy. The default is plain fp32 in one process; the runner
# supplies one with autocast, one GradScaler per optimiser, DDP wrappers and accumulation.
# --------------------------------------------------------------------------------------------
class StepPolicy:
    grad_accum: int = 1

    def nets_for(self, method: "Method", phase: Phase) -> Nets:
        return Nets(dict(method.nets.items()))

    def autocast(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def micro_context(self, method: "Method", phase: Phase, last: bool) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def backward(self, phase: Phase, loss: torch.Tensor) -> None:
        loss.backward()

    def step(self, phase: Phase, optimizer: torch.optim.Optimizer) -> None:
        optimizer.step()


@contextlib.contextmanager
def frozen_except(method: "Method", trained: Sequence[str]) -> Iterator[None]:
    """Freeze every network not trained in this phase; restore the original flags afterwards."""
    saved: list[tuple[nn.Parameter, bool]] = []
    for name, net in method.nets.items():
        if name in trained:
            continue
        for p in net.parameters():
            saved.append((p, p.requires_grad))
            p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


def run_phases(method: "Method", batch: Batch, step: int, policy: StepPolicy) -> dict[str, float]:
    """One training step: every phase once, each over ``policy.grad_accum`` micro-batches."""
    method.begin_step(step)
    micro = batch.split(policy.grad_accum) if policy.grad_accum > 1 else [batch]
    logs: dict[str, float] = {}
    optimizers = method.optimizers()
    for phase in method.phases():
        optimizer = optimizers[phase.optimizer]
        optimizer.zero_grad(set_to_none=True)
        with frozen_except(method, phase.networks):
            nets = policy.nets_for(method, phase)
            for i, mb in enumerate(micro):
                last = i == len(micro) - 1
                with policy.micro_context(method, phase, last):
                    with policy.autocast():
                        terms = phase.loss(mb, nets, step)
                    total = sum(terms.values())
                    values = {k: float(v.detach()) for k, v in terms.items()}
                    if not all(math.isfinite(v) for v in values.values()):
                        raise NonFiniteLoss(phase.name, step, values)
                    policy.backward(phase, total / len(micro))
                for k, v in values.items():
                    logs[k] = logs.get(k, 0.0) + v / len(micro)
        policy.step(phase, optimizer)
    return logs


# --------------------------------------------------------------------------------------------
# The contract
# --------------------------------------------------------------------------------------------
@dataclass
class ImportReport:
    """What import_official loaded: file -> number of tensors, plus keys deliberately dropped."""
    loaded: dict[str, int]
    dropped: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Method:
    """Base class of every method. See the module docstring for a minimal example."""

    name: ClassVar[str] = ""          # set by the registry
    Config: ClassVar[type]            # a dataclass of the method's hyper-parameters
    generator_name: ClassVar[str] = "G"
    # DDP must look for parameters that get no gradient in a step (unused branches, kept-but-unused
    # official layers). True is always correct; a method that uses every parameter in every phase
    # may set False for a little speed.
    ddp_find_unused_parameters: ClassVar[bool] = True

    def __init__(self, cfg: Any, info: DatasetInfo, runtime: Runtime | None = None) -> None:
        self.cfg = cfg
        self.info = info
        self.runtime = runtime or Runtime()
        self.nets = nn.ModuleDict()          # trainable networks by name ('G', 'D', 'E', ...)
        self.aux = nn.ModuleDict()           # frozen helper modules (e.g. VGG for a loss)
        self._optimizers: dict[str, torch.optim.Optimizer] = {}
        self.policy: StepPolicy = StepPolicy()

    @classmethod
    def build(cls, cfg: Any, info: DatasetInfo, runtime: Runtime | None = None) -> "Method":
        return cls(cfg, info, runtime)

    # declared needs (checked by harness.preflight before anything is built) --------------------
    @classmethod
    def required_weights(cls, cfg: Any) -> list[WeightNeed]:
        """Pretrained files training with ``cfg`` loads (e.g. VGG19 for a perceptual loss)."""
        return []

    @classmethod
    def multimodal_for(cls, cfg: Any) -> bool | None:
        """Whether ``cfg`` gives a multimodal method: one that can produce several different
        images for one label map from different seeds (LPIPS diversity is then measured and
        needs its backbone weights). None: not known before the method is built."""
        return None

    @classmethod
    def style_encoding_for(cls, cfg: Any) -> bool:
        """Whether a method built from ``cfg`` can encode a style from an image (``encode_style``;
        e.g. SPADE only with its encoder). Default: whether the class implements it."""
        return cls.encode_style is not Method.encode_style

    @classmethod
    def capabilities_for(cls, cfg: Any) -> dict[str, bool | None]:
        """The capabilities of a method built from ``cfg``, without building it (``list methods``;
        the built method's :meth:`capabilities` says the same). ``multimodal`` is None when the
        method cannot tell before it is built (``multimodal_for`` not declared)."""
        multimodal = cls.multimodal_for(cfg)
        if multimodal is None and cls.multimodal is Method.multimodal:
            multimodal = False  # the base property: never multimodal
        return {"multimodal": multimodal, "encode_style": cls.style_encoding_for(cfg),
                "import_official": cls.import_official is not Method.import_official,
                "classwise": cls.generate_from_codes is not Method.generate_from_codes}

    # networks and optimisation ---------------------------------------------------------------
    def networks(self) -> dict[str, nn.Module]:
        return dict(self.nets.items())

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._optimizers

    def phases(self) -> list[Phase]:
        raise NotImplementedError

    def begin_step(self, step: int) -> None:
        """Hook before each training step (e.g. to change what an optimiser trains)."""

    def after_training(self, train_dataset: Any, *, batch_size: int = 1) -> dict:
        """Hook run once when training has finished, before generation (e.g. pix2pixHD's
        instance-feature clustering). Returns a small JSON-able summary for the run record."""
        return {}

    def train_step(self, batch: Batch, step: int) -> dict[str, float]:
        """One optimisation step of every phase (one G and one D update); returns loss values."""
        return run_phases(self, batch, step, self.policy)

    def train(self, mode: bool = True) -> "Method":
        self.nets.train(mode)
        self.aux.eval()
        return self

    def eval(self) -> "Method":
        return self.train(False)

    def to(self, device: torch.device | str) -> "Method":
        self.nets.to(device)
        self.aux.to(device)
        self.runtime.device = torch.device(device)
        return self

    @property
    def device(self) -> torch.device:
        for p in self.nets.parameters():
            return p.device
        return self.runtime.device

    # generation ------------------------------------------------------------------------------
    @property
    def multimodal(self) -> bool:
        """True when the method can produce several different images for one label map from
        different seeds (z); see :meth:`multimodal_for` for the same answer before building."""
        return False

    @torch.no_grad()
    def generate(self, label: torch.Tensor, instance: torch.Tensor | None = None, *,
                 edge: torch.Tensor | None = None, z: torch.Tensor | None = None,
                 generator: torch.Generator | Sequence[torch.Generator] | None = None,
                 style_image: torch.Tensor | None = None) -> torch.Tensor:
        """label [N,H,W] int64 (+ instance / edge) -> uint8 images [N,3,H,W].

        Randomness comes from ``z`` if given, else from ``generator`` (one per image for
        batch-independent results), else from the global RNG. ``style_image`` ([N,3,H,W] in
        [-1,1]) asks for the style encoded from that image (``encode_style``).
        """
        raise NotImplementedError

    def encode_style(self, image: torch.Tensor, label: torch.Tensor, *,
                     generator: torch.Generator | Sequence[torch.Generator] | None = None) -> torch.Tensor:
        raise NotSupported(f"method {self.name!r} cannot encode a style from an image")

    @property
    def supports_style_encoding(self) -> bool:
        return type(self).encode_style is not Method.encode_style

    # class-wise control (GroupDNet): one latent code per semantic class ------------------------
    # codes are [N, C, K, h, w]: C one-hot label channels, K latent channels per class on the
    # method's latent grid. Methods without per-class codes keep these defaults (NotSupported).
    def encode_class_codes(self, image: torch.Tensor, label: torch.Tensor, *,
                           instance: torch.Tensor | None = None, edge: torch.Tensor | None = None,
                           generator: torch.Generator | Sequence[torch.Generator] | None = None,
                           sample: bool = False) -> torch.Tensor:
        raise NotSupported(f"class-wise codes are not supported by {self.name!r}")

    def sample_class_codes(self, label: torch.Tensor, generator: torch.Generator | Sequence[
                               torch.Generator] | None = None, *, base: torch.Tensor | None = None,
                           classes: Sequence[int] | None = None) -> torch.Tensor:
        raise NotSupported(f"class-wise codes are not supported by {self.name!r}")

    def generate_from_codes(self, label: torch.Tensor, codes: torch.Tensor, *,
                            instance: torch.Tensor | None = None,
                            edge: torch.Tensor | None = None) -> torch.Tensor:
        raise NotSupported(f"class-wise codes are not supported by {self.name!r}")

    @property
    def supports_classwise_codes(self) -> bool:
        return type(self).generate_from_codes is not Method.generate_from_codes

    def import_official(self, paths: Mapping[str, str | Path]) -> ImportReport:
        """Load checkpoints released by the method's authors (e.g. {'G': 'latest_net_G.pth'})."""
        raise NotSupported(f"method {self.name!r} has no importer for official checkpoints")

    @property
    def supports_official_import(self) -> bool:
        return type(self).import_official is not Method.import_official

    # state -----------------------------------------------------------------------------------
    def extra_state(self) -> dict:
        """Method-specific state beyond networks and optimisers (e.g. cluster centres)."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def state_dict(self) -> dict:
        return {
            "networks": {k: v.state_dict() for k, v in self.nets.items()},
            "optimizers": {k: v.state_dict() for k, v in self.optimizers().items()},
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict, *, strict: bool = True) -> None:
        nets = state.get("networks", {})
        missing = sorted(set(self.nets) - set(nets))
        unexpected = sorted(set(nets) - set(self.nets))
        if strict and (missing or unexpected):
            raise KeyError(f"networks mismatch: missing {missing}, unexpected {unexpected}")
        self.load_extra_state(state.get("extra", {}))
        for k, sd in nets.items():
            if k in self.nets:
                self.nets[k].load_state_dict(sd, strict=strict)
        for k, sd in state.get("optimizers", {}).items():
            opts = self.optimizers()
            if k in opts:
                opts[k].load_state_dict(sd)
            elif strict:
                raise KeyError(f"optimizer {k!r} in the state is unknown to method {self.name!r}")

    def capabilities(self) -> dict[str, bool]:
        return {"multimodal": self.multimodal, "encode_style": self.supports_style_encoding,
                "import_official": self.supports_official_import,
                "classwise": self.supports_classwise_codes}


# --------------------------------------------------------------------------------------------
# Helpers shared by methods
# --------------------------------------------------------------------------------------------
def semantic_input(label: torch.Tensor, num_label_channels: int, edge: torch.Tensor | None = None,
                   instance: torch.Tensor | None = None, use_edge: bool = False) -> torch.Tensor:
    """One-hot label map [N,C,H,W] (+ the instance edge channel last, as in the official code)."""
    if label.dim() != 3:
        raise ValueError(f"label must be [N,H,W], got {tuple(label.shape)}")
    if label.numel() and (int(label.min()) < 0 or int(label.max()) >= num_label_channels):
        raise ValueError(f"label ids must lie in [0, {num_label_channels - 1}], got "
                         f"[{int(label.min())}, {int(label.max())}]")
    n, h, w = label.shape
    onehot = torch.zeros(n, num_label_channels, h, w, device=label.device)
    onehot.scatter_(1, label.unsqueeze(1), 1.0)
    if not use_edge:
        return onehot
    if edge is None:
        if instance is None:
            raise ValueError("this configuration uses instance edges: pass edge or instance")
        edge = instance_edges(instance)
    return torch.cat([onehot, edge.to(onehot.dtype)], dim=1)


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float images -> uint8 [0, 255] (rounded)."""
    return ((image.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def randn_per_sample(shape: Sequence[int], n: int, generator, device: torch.device,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """n independent normal draws of `shape`; one generator per sample makes them batch-independent.

    Draws happen on each generator's own device (a CUDA generator cannot feed a CPU draw), then
    move to ``device``.
    """
    if generator is None:
        return torch.randn((n, *shape), dtype=dtype, device=device)
    if isinstance(generator, torch.Generator):
        return torch.randn((n, *shape), generator=generator, dtype=dtype,
                           device=generator.device).to(device)
    gens = list(generator)
    if len(gens) != n:
        raise ValueError(f"got {len(gens)} generators for {n} samples")
    return torch.stack([torch.randn(tuple(shape), generator=g, dtype=dtype, device=g.device).to(device)
                        for g in gens])
