"""Typed, strict configuration: YAML layers -> dataclasses, with `--set a.b=c` overrides.

Every YAML file has the same top-level sections (``name``, ``method``, ``dataset``, ``train``,
``eval``). Layers are merged in this order, later wins:

1. ``configs/methods/<method>.yaml``         (method defaults, if the file exists)
2. ``configs/datasets/<dataset>.yaml``       (dataset defaults, if the file exists)
3. ``configs/experiments/<method>-<dataset>.yaml`` (the recipe, if the file exists)
   (each preset is looked up in configs/ first, then in the config folders installed plugins
   ship, :mod:`harness.core.presets`)
4. ``--config FILE`` (any number)
5. ``--set a.b=c`` overrides

The merged mapping is validated against dataclasses: an unknown or mistyped key is an error that
names the key and the file (or ``--set``) it came from. ``method`` and ``dataset`` sections are
validated against the ``Config`` / ``Options`` dataclass of the registered method / dataset, so
plugins get the same strictness. This module is part of the foundation and does not know which
methods and datasets exist: the caller passes ``section_type``, a registry lookup (the
orchestration's :mod:`harness.experiment` passes the METHODS / DATASETS registries).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Union, get_args, get_origin

import yaml

CONFIGS_ROOT = Path(__file__).resolve().parents[2] / "configs"


class ConfigError(ValueError):
    """A configuration problem; the message names the key and the file it came from."""


# --------------------------------------------------------------------------------------------
# Provenance: which file set which dotted key
# --------------------------------------------------------------------------------------------
class Provenance(dict):
    """dotted key -> source description (file path or '--set')."""

    def source(self, dotted: str) -> str:
        parts = dotted.split(".")
        while parts:
            key = ".".join(parts)
            if key in self:
                return self[key]
            parts.pop()
        return "defaults"


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    from harness.core.strict_yaml import DuplicateKeyError, safe_load
    try:
        data = safe_load(path.read_text())
    except DuplicateKeyError as exc:
        raise ConfigError(f"config file {path}: key {exc.key!r} appears twice in one mapping, "
                          f"at lines {exc.first_line} and {exc.second_line} (YAML would keep "
                          "only the last silently); remove or merge one") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping at the top level, got "
                          f"{type(data).__name__}")
    return data


def deep_merge(base: dict, override: dict, prov: Provenance, source: str, prefix: str = "") -> dict:
    out = dict(base)
    for key, value in override.items():
        if not isinstance(key, str):
            raise ConfigError(f"{source}: key {key!r} at '{prefix or '<top>'}' is not a string")
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value, prov, source, dotted + ".")
        else:
            out[key] = value
            prov[dotted] = source
            if isinstance(value, dict):
                for sub in _dotted_keys(value, dotted + "."):
                    prov[sub] = source
    return out


def _dotted_keys(d: dict, prefix: str) -> list[str]:
    keys = []
    for k, v in d.items():
        keys.append(prefix + str(k))
        if isinstance(v, dict):
            keys.extend(_dotted_keys(v, prefix + str(k) + "."))
    return keys


def parse_override(text: str) -> tuple[str, Any]:
    """``a.b=c`` -> ("a.b", yaml-parsed c)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. train.batch_size=4")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: malformed key {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() != "" else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: value is not valid YAML: {exc}") from exc
    return key, value


def apply_override(data: dict, key: str, value: Any, prov: Provenance, source: str = "--set") -> dict:
    nested: Any = value
    for part in reversed(key.split(".")):
        nested = {part: nested}
    return deep_merge(data, nested, prov, source)


# --------------------------------------------------------------------------------------------
# dataclass validation
# --------------------------------------------------------------------------------------------
def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin in (list, tuple, dict):
        args = ", ".join(_type_name(a) for a in get_args(tp) if a is not Ellipsis)
        return f"{origin.__name__}[{args}]"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, dotted: str, prov: Provenance) -> Any:
    def fail() -> ConfigError:
        return ConfigError(f"{prov.source(dotted)}: key '{dotted}' expects {_type_name(tp)}, "
                           f"got {value!r} ({type(value).__name__})")

    if tp is Any:
        return value
    origin = get_origin(tp)
    if origin is Literal:
        if value in get_args(tp) and type(value) in {type(a) for a in get_args(tp)}:
            return value
        raise fail()
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise fail()
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, dotted, prov)
            except ConfigError as exc:
                errors.append(exc)
        raise fail()
    if is_dataclass(tp):
        if not isinstance(value, dict):
            raise fail()
        return from_dict(tp, value, prov=prov, prefix=dotted + ".")
    if origin is list or tp is list:
        if not isinstance(value, list):
            raise fail()
        (item_tp,) = get_args(tp) or (Any,)
        return [_convert(v, item_tp, f"{dotted}[{i}]", prov) for i, v in enumerate(value)]
    if origin is tuple or tp is tuple:
        if not isinstance(value, (list, tuple)):
            raise fail()
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{dotted}[{i}]", prov) for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise ConfigError(f"{prov.source(dotted)}: key '{dotted}' expects {len(args)} items "
                              f"({_type_name(tp)}), got {len(value)}: {value!r}")
        return tuple(_convert(v, a, f"{dotted}[{i}]", prov) for i, (v, a) in
                     enumerate(zip(value, args or [Any] * len(value))))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise fail()
        args = get_args(tp)
        val_tp = args[1] if len(args) == 2 else Any
        return {str(k): _convert(v, val_tp, f"{dotted}.{k}", prov) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise fail()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise fail()
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        # YAML 1.1 reads "1e-4" as a string; accept numeric strings for floats only.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise fail() from None
        raise fail()
    if tp is str:
        if isinstance(value, str):
            return value
        raise fail()
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise fail()


def _resolved_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_dict(cls: type, data: dict, *, prov: Provenance | None = None, prefix: str = "",
              ignore: tuple[str, ...] = ()):
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types are ConfigErrors."""
    prov = prov if prov is not None else Provenance()
    if not isinstance(data, dict):
        raise ConfigError(f"{prov.source(prefix.rstrip('.'))}: section '{prefix.rstrip('.')}' "
                          f"must be a mapping, got {type(data).__name__}")
    hints = _resolved_hints(cls)
    known = {f.name: f for f in fields(cls) if f.init}
    unknown = sorted(set(data) - set(known) - set(ignore))
    if unknown:
        key = prefix + unknown[0]
        valid = ", ".join(sorted(known)) or "(none)"
        raise ConfigError(f"{prov.source(key)}: unknown key '{key}' for {cls.__name__}; "
                          f"valid keys: {valid}")
    kwargs = {}
    for name, f in known.items():
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], prefix + name, prov)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key '{prefix + name}' ({_type_name(hints[name])})")
    try:
        obj = cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{prov.source(prefix.rstrip('.'))}: invalid '{prefix.rstrip('.') or cls.__name__}': "
                          f"{exc}") from exc
    return obj


def to_dict(obj: Any) -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


def identity_dict(obj: Any) -> Any:
    """Like to_dict, without fields marked ``metadata={'identity': False}`` (runtime-only knobs)
    and without fields marked ``metadata={'identity': 'unless-default'}`` that hold their default
    (fields added later: existing run ids stay valid until the field is used)."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: identity_dict(getattr(obj, f.name)) for f in fields(obj)
                if f.metadata.get("identity", True) is True
                or (f.metadata.get("identity") == "unless-default"
                    and getattr(obj, f.name) != f.default)}
    if isinstance(obj, (list, tuple)):
        return [identity_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): identity_dict(v) for k, v in obj.items()}
    return obj


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def sha256_of(data: Any) -> str:
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


def runtime(default: Any = dataclasses.MISSING, **kw: Any) -> Any:
    """A dataclass field that does not change what is computed (excluded from the config hash)."""
    return field(default=default, metadata={"identity": False}, **kw)


def added_later(default: Any) -> Any:
    """A field that changes what is computed, hashed only when it differs from its default, so
    the run ids of configurations that do not use it stay what they were."""
    return field(default=default, metadata={"identity": "unless-default"})


# --------------------------------------------------------------------------------------------
# The experiment configuration
# --------------------------------------------------------------------------------------------
@dataclass
class TrainConfig:
    """How the runner trains (the Method owns only its maths)."""
    batch_size: int = 1                       # images per process and micro-batch
    grad_accum: int = 1                       # micro-batches per optimiser step
    epochs_constant: int = 1                  # 'niter': epochs at the initial learning rate
    epochs_decay: int = 0                     # 'niter_decay': epochs of linear decay to 0
    max_steps: int | None = None              # stop early (tiny runs, tests)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # bf16/fp16 autocast on GPUs only
    channels_last: bool = False
    compile_generator: bool = False
    sync_batchnorm: bool = True               # convert BN to SyncBN when world_size > 1
    seed: int = 0
    deterministic: bool = False
    drop_last: bool = True
    num_workers: int = runtime(0)
    device: str = runtime("auto")             # auto | cpu | cuda | cuda:N
    checkpoint_every: int = runtime(1000)     # steps
    keep_last: int = runtime(2)
    log_every: int = runtime(10)
    sample_every: int = runtime(500)          # steps between saved sample grids (0 = never)
    progress: bool = runtime(True)
    tensorboard: bool = runtime(True)         # also log to <run>/tensorboard if installed
    # Checkpoint selection on a held-out slice of the *training* split, never the evaluation
    # split (docs/training.md#checkpoint-selection): `holdout` images, picked by `holdout_seed`
    # (not the training seed: every training seed holds out the same images), are excluded from
    # training; every `select_every` steps (0 = never) the generator is scored on them
    # (`select_metric`) and the 'best' checkpoint follows the score.
    holdout: int = added_later(0)
    holdout_seed: int = added_later(0)
    select_every: int = added_later(0)
    select_metric: Literal["miou", "fid"] = added_later("miou")

    def __post_init__(self) -> None:
        if self.holdout < 0 or self.select_every < 0:
            raise ValueError("holdout and select_every must be >= 0")
        if self.select_every and not self.holdout:
            raise ValueError("select_every > 0 needs a held-out slice of the training split: "
                             "set train.holdout to the number of training images to hold out")
        for name in ("batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.epochs_constant < 0 or self.epochs_decay < 0:
            raise ValueError("epochs_constant and epochs_decay must be >= 0")
        if self.epochs_constant + self.epochs_decay < 1 and self.max_steps is None:
            raise ValueError("train for at least one epoch (epochs_constant + epochs_decay >= 1) "
                             "or set max_steps")
        if self.max_steps is not None and self.max_steps < 0:
            raise ValueError("max_steps must be >= 0")


@dataclass
class EvalConfig:
    """What is generated and measured after training.

    None of these change the trained weights, so none is part of the run id: samples and records
    are keyed by protocol id and inference mode inside the run directory instead.
    """
    protocol: str | None = runtime(None)      # protocol name; None = the dataset's default
    inference: Literal["random", "encoded"] = runtime("random")  # z ~ N(0, I), or the real image's style
    batch_size: int = runtime(8)
    skip: list[str] = runtime(default_factory=list)  # metric names not to compute (fid, kid, ...)


@dataclass
class MethodSpec:
    name: str
    config: Any                               # the method's own Config dataclass instance


@dataclass
class DatasetSpec:
    name: str
    options: Any                              # the dataset's own Options dataclass instance


@dataclass
class ExperimentConfig:
    name: str
    method: MethodSpec
    dataset: DatasetSpec
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    sources: list[str] = field(default_factory=list)  # files merged, in order (not hashed)
    # weight spec key -> file path (harness.weights_catalog checks the keys); where a file is
    # does not change a number (its sha256 is checked and recorded), so it is not hashed
    weights: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {
            "name": self.name,
            "method": {"name": self.method.name, **to_dict(self.method.config)},
            "dataset": {"name": self.dataset.name, **to_dict(self.dataset.options)},
            "train": to_dict(self.train),
            "eval": to_dict(self.eval),
        }
        if self.weights:
            out["weights"] = dict(self.weights)
        return out

    def identity(self) -> dict:
        """What determines the trained weights and the evaluation: hashed into the run id."""
        return {
            "name": self.name,
            "method": {"name": self.method.name, **identity_dict(self.method.config)},
            "dataset": {"name": self.dataset.name, **identity_dict(self.dataset.options)},
            "train": identity_dict(self.train),
            "eval": identity_dict(self.eval),
        }

    def hash(self) -> str:
        return sha256_of(self.identity())

    def variant_hash(self) -> str:
        """The identity without the training seed: runs that differ only by seed share it, so
        the leaderboard averages exactly those (and never two configurations with one name)."""
        ident = self.identity()
        ident["train"] = {k: v for k, v in ident["train"].items() if k != "seed"}
        return sha256_of(ident)

    def to_yaml(self) -> str:
        header = "# resolved configuration; sha256 of its identity: " + self.hash() + "\n"
        header += "".join(f"# layer: {s}\n" for s in self.sources)
        return header + yaml.safe_dump(self.to_dict(), sort_keys=False)


# (section, name) -> the dataclass that validates the section: section_type("method", "spade") is
# the registered method's Config, section_type("dataset", "ade20k") the dataset's Options; an
# unknown name raises RegistryError.
SectionType = Callable[[str, str], type]


def build_experiment(data: dict, prov: Provenance, sources: list[str] | None = None, *,
                     section_type: SectionType) -> ExperimentConfig:
    """Validate a merged mapping into an ExperimentConfig."""
    from harness.core.registry import RegistryError

    allowed = {"name", "method", "dataset", "train", "eval", "weights"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"{prov.source(unknown[0])}: unknown top-level key '{unknown[0]}'; "
                          f"valid keys: {', '.join(sorted(allowed))}")
    for section in ("method", "dataset"):
        if not isinstance(data.get(section), dict) or "name" not in data[section]:
            raise ConfigError(f"missing '{section}.name': pass --{section} NAME or set it in a "
                              "config file")
    m = dict(data["method"])
    d = dict(data["dataset"])
    m_name, d_name = m.pop("name"), d.pop("name")
    try:
        m_cls = section_type("method", m_name)
    except RegistryError as exc:
        raise ConfigError(f"{prov.source('method.name')}: {exc}") from None
    try:
        d_cls = section_type("dataset", d_name)
    except RegistryError as exc:
        raise ConfigError(f"{prov.source('dataset.name')}: {exc}") from None
    method_cfg = from_dict(m_cls, m, prov=prov, prefix="method.")
    dataset_opts = from_dict(d_cls, d, prov=prov, prefix="dataset.")
    train = from_dict(TrainConfig, data.get("train") or {}, prov=prov, prefix="train.")
    ev = from_dict(EvalConfig, data.get("eval") or {}, prov=prov, prefix="eval.")
    name = data.get("name") or f"{m_name}-{d_name}"
    if not isinstance(name, str):
        raise ConfigError(f"{prov.source('name')}: key 'name' expects str, got {name!r}")
    weights = data.get("weights") or {}
    if not isinstance(weights, dict):
        raise ConfigError(f"{prov.source('weights')}: key 'weights' expects a mapping of weight "
                          f"keys to file paths, got {weights!r}")
    for k, v in weights.items():
        if not isinstance(v, str):
            raise ConfigError(f"{prov.source('weights.' + str(k))}: key 'weights.{k}' expects a "
                              f"file path (str), got {v!r}")
    return ExperimentConfig(name=name, method=MethodSpec(m_name, method_cfg),
                            dataset=DatasetSpec(d_name, dataset_opts), train=train, eval=ev,
                            sources=list(sources or []), weights=dict(weights))


def load_experiment(method: str | None = None, dataset: str | None = None, *,
                    config_files: list[str | Path] = (), overrides: list[str] = (),
                    configs_root: Path | None = None,
                    section_type: SectionType) -> ExperimentConfig:
    """Resolve the layered configuration for (method, dataset) and validate it strictly."""
    root = Path(configs_root) if configs_root is not None else CONFIGS_ROOT
    prov = Provenance()
    data: dict = {}
    sources: list[str] = []

    user_layers = [(str(p), load_yaml(p)) for p in config_files]
    # The method/dataset may come from a --config file when not given on the command line.
    for _, layer in user_layers:
        method = method or (layer.get("method") or {}).get("name")
        dataset = dataset or (layer.get("dataset") or {}).get("name")

    from harness.core.presets import config_roots, find_preset

    roots = config_roots(root)  # configs/ first, then the folders plugins ship (harness.configs)
    presets = [f"methods/{method}.yaml" if method else None,
               f"datasets/{dataset}.yaml" if dataset else None,
               f"experiments/{method}-{dataset}.yaml" if method and dataset else None]
    layers: list[tuple[str, dict]] = []
    for relative in presets:
        p = find_preset(roots, relative) if relative else None
        if p is not None:
            layers.append((str(p), load_yaml(p)))
    layers.extend(user_layers)
    for source, layer in layers:
        data = deep_merge(data, layer, prov, source)
        sources.append(source)
    if method:
        for source, layer in layers:
            named = (layer.get("method") or {}).get("name")
            if named is not None and named != method:
                raise ConfigError(f"{source}: method.name is {named!r} but --method is {method!r}")
        data = deep_merge(data, {"method": {"name": method}}, prov, "--method")
    if dataset:
        for source, layer in layers:
            named = (layer.get("dataset") or {}).get("name")
            if named is not None and named != dataset:
                raise ConfigError(f"{source}: dataset.name is {named!r} but --dataset is {dataset!r}")
        data = deep_merge(data, {"dataset": {"name": dataset}}, prov, "--dataset")
    for text in overrides:
        key, value = parse_override(text)
        data = apply_override(data, key, value, prov)
        sources.append(f"--set {text}")
    return build_experiment(data, prov, sources, section_type=section_type)


def load_resolved(path: str | Path, *, section_type: SectionType) -> ExperimentConfig:
    """Load a run directory's resolved config.yaml (a single, complete layer)."""
    prov = Provenance()
    data = deep_merge({}, load_yaml(path), prov, str(path))
    return build_experiment(data, prov, [str(path)], section_type=section_type)
