"""What every stage shares: the device, the datasets and protocols of a configuration, preparing a
run directory, and finding / loading its checkpoints."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from harness.core import dist as hdist
from harness.core.config import (ConfigError, DatasetSpec, ExperimentConfig, Provenance, deep_merge,
                                 from_dict, load_yaml, apply_override, parse_override, CONFIGS_ROOT)
from harness.rundir import RunDir, RunError


def resolve_device(name: str = "auto") -> "Any":
    """'auto' -> this rank's GPU if there is one, else the CPU (the runner's rule)."""
    from harness.train.placement import resolve_device as _resolve

    try:
        return _resolve(name, hdist.info())
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(f"device {name!r}: {exc}") from None


def build_dataset(spec: DatasetSpec, split: str, *, train: bool = False, seed: int = 0):
    """The dataset of ``spec`` for ``split`` (evaluation transforms unless ``train``)."""
    from harness.core.data import build_dataset as _build

    return _build(spec.name, spec.options, split, train=train, seed=seed)


def dataset_spec(name: str, *, config_files: Sequence[str | Path] = (),
                 overrides: Sequence[str] = (), configs_root: Path | None = None) -> DatasetSpec:
    """Options of dataset ``name`` without a method: configs/datasets/<name>.yaml, then the
    ``dataset`` sections of ``config_files``, then ``--set dataset.x=y`` overrides."""
    from harness.core.data import DATASETS
    from harness.core.presets import config_roots, find_preset
    from harness.core.registry import RegistryError

    root = Path(configs_root) if configs_root is not None else CONFIGS_ROOT
    prov = Provenance()
    data: dict = {}
    layers: list[tuple[str, dict]] = []
    p = find_preset(config_roots(root), f"datasets/{name}.yaml")  # configs/, then plugins'
    if p is not None:
        layers.append((str(p), load_yaml(p)))
    layers += [(str(f), load_yaml(f)) for f in config_files]
    for source, layer in layers:
        section = layer.get("dataset") or {}
        if not isinstance(section, dict):
            raise ConfigError(f"{source}: 'dataset' must be a mapping")
        named = section.get("name")
        if named is not None and named != name:
            raise ConfigError(f"{source}: dataset.name is {named!r} but --dataset is {name!r}")
        data = deep_merge(data, {"dataset": section}, prov, source)
    for text in overrides:
        key, value = parse_override(text)
        if not key.startswith("dataset."):
            raise ConfigError(f"--set {text!r}: only dataset.* keys apply here")
        data = apply_override(data, key, value, prov)
    section = dict(data.get("dataset") or {})
    section.pop("name", None)
    try:
        cls = DATASETS.get(name)
    except RegistryError as exc:
        raise ConfigError(f"--dataset: {exc}") from None
    return DatasetSpec(name, from_dict(cls.Options, section, prov=prov, prefix="dataset."))


def resolve_protocol(name: str | None, dataset: str, *, dataset_cls: Any = None):
    """The protocol named (or the dataset's default one), checked against the dataset."""
    from evaluators.protocol import load_protocol

    if name is None:
        if dataset_cls is None:
            from harness.core.data import DATASETS
            dataset_cls = DATASETS.get(dataset)
        name = getattr(dataset_cls, "default_protocol", None)
        if not name:
            raise ConfigError(f"dataset {dataset!r} has no default protocol; pass --protocol NAME "
                              "(see `python -m harness list protocols`)")
    protocol = load_protocol(name)
    if protocol.dataset != dataset:
        raise ConfigError(f"protocol {protocol.name!r} is for dataset {protocol.dataset!r}, not "
                          f"{dataset!r}; see `python -m harness list protocols`")
    return protocol


def prepare_run(cfg: ExperimentConfig, runs_dir: str | Path = "runs", *, run_id: str | None = None,
                fresh: bool = False) -> RunDir:
    """The run directory of ``cfg``: created (or cleared with ``fresh``) by rank 0, config written."""
    rd = RunDir.for_config(cfg, runs_dir, run_id)
    d = hdist.info()
    error: Exception | None = None
    if d.is_main:
        try:
            if fresh:
                rd.clear()
            make_run_dir(rd.path)
            rd.write_config(cfg)
            rd.update_status(run_id=rd.run_id, method=cfg.method.name, dataset=cfg.dataset.name,
                             config_hash=cfg.hash())
        except Exception as exc:  # tell the other ranks before raising
            error = exc
    failed = hdist.broadcast_object(None if error is None else str(error))
    if error is not None:
        raise error
    if failed is not None:
        raise RunError(f"rank 0 could not prepare {rd.path}: {failed}")
    return rd


def make_run_dir(path: Path) -> None:
    """mkdir -p, or an OutputError naming the folder and why (a full disk, read-only, ...)."""
    from harness.core.io import OutputError, folder_problem

    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = folder_problem(path) or "is --runs-dir a writable folder?"
        raise OutputError(exc.errno, f"cannot create the run directory {path}: "
                                     f"{exc.strerror or exc}; {why}") from exc


def jsonable(obj: Any) -> Any:
    """``obj`` as JSON-able values (dataclasses as dicts, anything else as its str)."""
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def checkpoint_exists(rd: RunDir, which: str = "latest") -> bool:
    from harness.train import checkpoint as ckpt

    return ckpt.find_checkpoint(rd.checkpoints, which) is not None


def checkpoint_file(rd: RunDir, which: str = "latest") -> Path:
    """The checkpoint file ``which`` ('latest', 'best' or a path) of a run."""
    from harness.train import checkpoint as ckpt

    found = ckpt.find_checkpoint(rd.checkpoints, which)
    if found is None:
        what = f"checkpoint file {which}" if which not in ("latest", "best") else f"{which!r} checkpoint"
        raise RunError(f"{rd.path} has no {what} (train it first with `harness run`/`harness "
                       "train`, or import official weights with `harness import-official`)")
    return Path(found)


def checkpoint_origin(rd: RunDir, which: str | Path = "latest") -> dict:
    """What identifies generated samples: run id and the checkpoint's sha256 (the runner's
    sidecar file when present, else computed)."""
    from harness.train import checkpoint as ckpt

    path = Path(which) if isinstance(which, Path) else checkpoint_file(rd, which)
    sidecar = path.parent / (path.name + ".sha256")
    digest = None
    if sidecar.is_file():
        parts = sidecar.read_text().split()
        digest = parts[0] if parts else None
    return {"run_id": rd.run_id, "checkpoint": path.name,
            "checkpoint_sha256": digest or ckpt.file_sha256(path)}


def load_method(rd: RunDir, cfg: ExperimentConfig, *, which: str = "latest", device: Any = None):
    from harness.train.restore import restore_method

    device = device if device is not None else resolve_device(cfg.train.device)
    return restore_method(rd.path, cfg, which=which, device=device)
