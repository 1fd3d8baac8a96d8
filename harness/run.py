"""Orchestration: train -> generate -> evaluate -> record -> leaderboard, resumable stage by stage.

Each stage is a function of a run directory (:mod:`harness.rundir`) and skips itself when its
output already exists for the same inputs:

- train: the runner resumes from the 'latest' checkpoint; a finished training returns at once;
- generate: skipped when ``samples/<protocol id>/<inference>/manifest.json`` is complete and was
  produced from the same checkpoint (sha256) and the same input data (fingerprint); otherwise
  only missing images are generated (images are deterministic per (seed, key), so a partial set
  is completed exactly), or linked from another protocol's identical set;
- evaluate: skipped when ``metrics.json`` holds ``<protocol id>/<inference>`` for the same
  samples (the manifest's origin is stored in the record).

Every stage first checks that the dataset split it reads is the data the run recorded
(:mod:`harness.data_identity`); a change is an error unless ``allow_data_change``.

Rank 0 owns the run directory's bookkeeping (config.yaml, run.json, metrics.json); every rank
trains, generates and evaluates its shard.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from harness.core import dist as hdist
from harness.core.config import (ConfigError, DatasetSpec, ExperimentConfig, Provenance, deep_merge,
                                 from_dict, load_yaml, apply_override, parse_override, CONFIGS_ROOT)
from harness.interrupt import stop_signals_raise
from harness.rundir import RunDir, RunError, stage_outcome
from harness.skip_report import unrequested_skips

LOG = logging.getLogger("harness")


# ----------------------------------------------------------------------------------------------
# Building blocks: device, datasets, protocols
# ----------------------------------------------------------------------------------------------
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
    from harness.core.registry import RegistryError

    root = Path(configs_root) if configs_root is not None else CONFIGS_ROOT
    prov = Provenance()
    data: dict = {}
    layers: list[tuple[str, dict]] = []
    p = root / "datasets" / f"{name}.yaml"
    if p.is_file():
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


# ----------------------------------------------------------------------------------------------
# Run directory preparation
# ----------------------------------------------------------------------------------------------
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
            _make_run_dir(rd.path)
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


def _make_run_dir(path: Path) -> None:
    from harness.core.io import OutputError, folder_problem

    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = folder_problem(path) or "is --runs-dir a writable folder?"
        raise OutputError(exc.errno, f"cannot create the run directory {path}: "
                                     f"{exc.strerror or exc}; {why}") from exc


# ----------------------------------------------------------------------------------------------
# Stages
# ----------------------------------------------------------------------------------------------
def train_stage(cfg: ExperimentConfig, rd: RunDir, *, progress: bool = True,
                allow_data_change: bool = False) -> dict:
    """Train (resuming from 'latest'); skipped when run.json says training finished.

    The train split must be the data the run recorded (harness.data_identity)."""
    from harness.data_identity import check_split
    from harness.train.trainer import train

    check_split(rd, build_dataset(cfg.dataset, "train", train=False, seed=cfg.train.seed),
                allow_change=allow_data_change)
    # Rank 0 decides every skip, so all ranks take the same path through the collectives.
    if hdist.broadcast_object(rd.stage_done("train") and checkpoint_exists(rd)):
        LOG.info("train: already finished in %s (skipped)", rd.path)
        return dict(rd.stage("train") or {})
    d = hdist.info()
    start = time.perf_counter()
    if d.is_main:
        rd.set_stage("train", status="running")
    try:
        result = train(cfg, rd.path, resume=True, progress=progress)
    except BaseException as exc:
        if d.is_main:
            rd.set_stage("train", status=stage_outcome(exc),
                         error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    summary = _jsonable(result)
    if d.is_main:
        rd.set_stage("train", status="done", seconds=round(time.perf_counter() - start, 3),
                     result=summary, error=None)
    hdist.barrier()
    return summary


def _jsonable(obj: Any) -> Any:
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
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
    from harness.train.trainer import restore_method

    device = device if device is not None else resolve_device(cfg.train.device)
    return restore_method(rd.path, cfg, which=which, device=device)


def generate_stage(rd: RunDir, cfg: ExperimentConfig, protocol: Any, *, inference: str | None = None,
                   which: str = "latest", batch_size: int | None = None, device: Any = None,
                   progress: bool = True, force: bool = False,
                   allow_data_change: bool = False) -> dict:
    """Generate the protocol's evaluation set; skipped when complete for the same checkpoint
    and the same input data (the split's recorded fingerprint, harness.data_identity).

    ``force`` deletes and regenerates a complete set (saying what it replaced); images that
    another protocol of this run generated identically (same size, inputs, checkpoint,
    inference) are linked instead of generated (harness.sample_reuse)."""
    from harness.data_identity import check_split
    from harness.generate import generate_samples, load_manifest, manifest_complete
    from harness.sample_reuse import find_donors

    inference = inference or cfg.eval.inference
    out = rd.samples_dir(protocol.id, inference)
    checkpoint = checkpoint_file(rd, which)
    dataset = build_dataset(cfg.dataset, protocol.split, train=False, seed=cfg.train.seed)
    inputs = check_split(rd, dataset, allow_change=allow_data_change)
    origin = {**checkpoint_origin(rd, checkpoint), "inputs": inputs["fingerprint"]}
    manifest = load_manifest(out)
    stage = f"generate/{protocol.id}/{inference}"
    if hdist.broadcast_object(not force and manifest_complete(manifest, out, origin)):
        LOG.info("generate: %s is complete (skipped)", out)
        return manifest
    d = hdist.info()
    _check_resolution(dataset, protocol, cfg)
    extra = {"run_id": rd.run_id, "variant": cfg.name, "config_hash": cfg.hash(),
             "resolution": list(protocol.resolution_hw), "inputs": inputs}
    donors: list = []
    # The very file whose sha256 names the samples (not a fallback to an older one). Loaded, and
    # run.json read, before --force deletes anything: a bad input must not cost the old set.
    method = load_method(rd, cfg, which=str(checkpoint), device=device)
    if d.is_main:
        rd.status()
        if force and out.exists():
            _replace_samples(out, manifest)
        elif manifest is not None and any((manifest.get("origin") or {}).get(k) != v
                                          for k, v in origin.items()):
            LOG.warning("generate: the samples in %s come from another checkpoint or other "
                        "input data; regenerating them", out)
        donors = find_donors(rd.path / "samples", out,
                             {"split": protocol.split, "dataset": dataset.name, **extra},
                             {"method": cfg.method.name, "inference": inference, **origin})
    start = time.perf_counter()
    if d.is_main:
        rd.set_stage(stage, status="running")
    try:
        with stop_signals_raise():  # SIGTERM: record 'interrupted' below, not a stale 'running'
            manifest = generate_samples(method, dataset, protocol, out, inference=inference,
                                        batch_size=batch_size or cfg.eval.batch_size, dist=d,
                                        origin=origin, progress=progress, extra=extra,
                                        donors=donors)
    except BaseException as exc:
        if d.is_main:
            rd.set_stage(stage, status=stage_outcome(exc),
                         error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    if d.is_main:
        if manifest.get("reused_from"):
            LOG.warning("generate: %d images of %s linked from identical samples of %s (same "
                        "size, inputs, checkpoint and inference), not generated again",
                        sum(manifest["reused_from"].values()), out,
                        ", ".join(sorted(manifest["reused_from"])))
        rd.set_stage(stage, status="done", seconds=round(time.perf_counter() - start, 3),
                     images=manifest["num_images"], seeds=manifest["seeds"],
                     generated=manifest["generated_now"],
                     reused=sum((manifest.get("reused_from") or {}).values()), error=None)
    return manifest


def _replace_samples(out: Path, manifest: Mapping[str, Any] | None) -> None:
    """``generate --force``: delete the existing set, saying what it was."""
    import shutil

    n = sum(1 for p in out.rglob("*.png"))
    origin = (manifest or {}).get("origin") or {}
    LOG.warning("generate --force: replacing %d images in %s (generated from checkpoint %s, "
                "sha256 %s)", n, out, origin.get("checkpoint", "?"),
                str(origin.get("checkpoint_sha256", "?"))[:12])
    shutil.rmtree(out)


def _check_resolution(dataset: Any, protocol: Any, cfg: ExperimentConfig | None) -> None:
    from harness.preflight import check_resolution

    check_resolution(dataset, protocol, cfg)


def metrics_key(protocol: Any, inference: str | None) -> str:
    return f"{protocol.id}/{inference or 'none'}"


def retry_metrics(record: Mapping[str, Any]) -> list[str]:
    """Metrics of a record that were skipped for a reason that may go away (a missing weights
    file, typically): the next run evaluates again instead of keeping the gap."""
    return list(unrequested_skips(record))


def evaluate_stage(rd: RunDir, cfg: ExperimentConfig, protocol: Any, *,
                   inference: str | None = None, batch_size: int | None = None,
                   device: Any = None, progress: bool = True, force: bool = False,
                   allow_data_change: bool = False) -> dict:
    """Evaluate the generated set of every seed, combine the seeds, record into metrics.json.

    Skipped when metrics.json already holds this protocol/inference for the same samples (whose
    origin includes the input data's fingerprint); samples of other input data are refused."""
    from harness.core.records import read_metrics, write_record
    from harness.data_identity import check_split
    from harness.generate import load_manifest

    inference = inference or cfg.eval.inference
    out = rd.samples_dir(protocol.id, inference)
    manifest = load_manifest(out)
    if manifest is None:
        raise RunError(f"{out} has no manifest.json: generate the samples first "
                       f"(`python -m harness generate --run {rd.path}`)")
    dataset = build_dataset(cfg.dataset, protocol.split, train=False, seed=cfg.train.seed)
    inputs = check_split(rd, dataset, allow_change=allow_data_change)
    made_from = (manifest.get("origin") or {}).get("inputs")
    if made_from != inputs["fingerprint"]:
        raise RunError(f"{out} was generated from other {protocol.split!r} data (fingerprint "
                       f"{str(made_from or 'not recorded')[:12]}, the data now is "
                       f"{inputs['fingerprint'][:12]}); "
                       f"regenerate it: `python -m harness generate --run {rd.path}`")
    key = metrics_key(protocol, inference)
    existing = read_metrics(rd.metrics_file)["evaluations"].get(key)
    if hdist.broadcast_object(bool(not force and existing and
                                   existing.get("samples_origin") == manifest.get("origin") and
                                   not retry_metrics(existing))):
        LOG.info("evaluate: %s already in %s (skipped)", key, rd.metrics_file)
        return existing
    if existing and retry_metrics(existing) and not force:
        LOG.info("evaluate: retrying %s (skipped before: %s)", key,
                 ", ".join(retry_metrics(existing)))
    if existing and force and hdist.info().is_main:
        LOG.warning("evaluate --force: replacing the record %s in %s (%s)", key, rd.metrics_file,
                    ", ".join(f"{k}={v}" for k, v in metric_values(existing).items()
                              if not isinstance(v, str)) or "no numbers")
    d = hdist.info()
    stage = f"evaluate/{key}"
    start = time.perf_counter()
    if d.is_main:
        rd.set_stage(stage, status="running")
    try:
        record = evaluate_manifest(
            manifest, out, dataset, protocol, skip=cfg.eval.skip,
            device=device if device is not None else resolve_device(cfg.train.device),
            batch_size=batch_size or cfg.eval.batch_size, progress=progress,
            method=cfg.method.name, variant=cfg.name, run_id=rd.run_id, inference=inference)
    except BaseException as exc:
        if d.is_main:
            rd.set_stage(stage, status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    record.update({
        "method": cfg.method.name, "variant": cfg.name, "run_id": rd.run_id,
        "config_hash": cfg.hash(), "variant_hash": cfg.variant_hash(),
        "train_seed": cfg.train.seed, "inference": inference,
        "samples_origin": manifest.get("origin"),
        "data": {**record.get("data", {}), **inputs},
        "unimodal_single_seed": bool(manifest.get("unimodal")) and
        len(manifest.get("protocol_seeds") or []) > 1,
    })
    if d.is_main:
        write_record(rd.metrics_file, record)
        rd.set_stage(stage, status="done", seconds=round(time.perf_counter() - start, 3),
                     error=None)
    hdist.barrier()
    return record


def evaluate_manifest(manifest: Mapping[str, Any], out: Path, dataset: Any, protocol: Any, *,
                      skip: Sequence[str] = (), device: Any = None, batch_size: int = 8,
                      progress: bool = True, **meta: Any) -> dict:
    """One record per generated seed (diversity with the first), combined over the seeds."""
    from evaluators.evaluate import evaluate_images
    from harness.core.records import combine_seeds
    from harness.generate import manifest_classwise, manifest_diversity, manifest_images

    d = hdist.info()
    multimodal = bool(manifest.get("multimodal"))
    diversity = manifest_diversity(manifest, out) or None
    classwise = manifest_classwise(manifest, out) or None  # None: no per-class codes
    records = []
    for i, seed in enumerate(manifest["seeds"]):
        images = manifest_images(manifest, out, seed)
        LOG.info("evaluate: seed %s (%d images)", seed, len(images))
        records.append(evaluate_images(
            images, dataset, protocol, diversity=diversity if i == 0 else None,
            classwise=classwise if i == 0 else None,
            multimodal=multimodal if i == 0 else False, device=device or "cpu",
            batch_size=batch_size, skip=tuple(skip), dist=d, seed=int(seed), progress=progress,
            **meta))
    combined = combine_seeds(records)
    # Diversity is measured once (from its own samples), not per seed.
    for name in ("lpips_diversity", "mcsd", "mocd"):
        combined["metrics"][name] = records[0]["metrics"][name]
    return combined


def evaluate_folder(images: Path, dataset: str, *, split: str | None = None,
                    protocol: str | None = None, out: str | Path | None = None,
                    label: str | None = None, config_files: Sequence[str | Path] = (),
                    overrides: Sequence[str] = (), skip: Sequence[str] = (), batch_size: int = 8,
                    device: Any = "cpu", progress: bool = True) -> tuple[dict, Path]:
    """Score a bare folder of images named after the split's keys; record into ``out``."""
    from evaluators.evaluate import evaluate_images
    from harness.core.records import write_record

    images = Path(images)
    if not images.is_dir():
        raise RunError(f"--images {images}: folder does not exist")
    spec = dataset_spec(dataset, config_files=config_files, overrides=overrides)
    proto = resolve_protocol(protocol, dataset)
    if split is not None and split != proto.split:
        raise ConfigError(f"--split {split}: protocol {proto.name!r} scores split "
                          f"{proto.split!r}; pass a protocol for split {split!r} with --protocol")
    ds = build_dataset(spec, proto.split, train=False)
    name = label or images.resolve().name
    record = evaluate_images(images, ds, proto, multimodal=None, device=device,
                             batch_size=batch_size, skip=tuple(skip), dist=hdist.info(),
                             method=name, variant=name, inference=None, progress=progress)
    record.update({"config_hash": None, "variant_hash": None, "train_seed": None,
                   "images_dir": str(images.resolve())})
    target = Path(out) if out is not None else images
    path = target / "metrics.json" if target.suffix != ".json" else target
    if hdist.info().is_main:
        write_record(path, record)
    return record, path


# ----------------------------------------------------------------------------------------------
# The whole pipeline
# ----------------------------------------------------------------------------------------------
@dataclass
class RunSummary:
    run_dir: str
    run_id: str
    method: str
    dataset: str
    protocol: str
    inference: str
    metrics: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)   # metric -> reason, not asked to be skipped


def run_experiment(cfg: ExperimentConfig, *, runs_dir: str | Path = "runs",
                   results_dir: str | Path | None = "results", protocol: str | None = None,
                   run_id: str | None = None, fresh: bool = False, progress: bool = True,
                   leaderboard: bool = True, allow_missing_weights: bool = False,
                   preflight: bool = True, allow_data_change: bool = False,
                   wait: bool = True) -> RunSummary:
    """train -> generate -> evaluate -> record -> leaderboard for one configuration.

    ``preflight``: first check every weight file and the protocol's fit to the dataset
    (:mod:`harness.preflight`; False when the caller has checked already). The run directory is
    locked from preparation to the record (``wait=False``: fail at once with
    :class:`harness.runlock.RunLocked` when another process holds it)."""
    from harness.runlock import claimed_run

    proto = resolve_protocol(protocol or cfg.eval.protocol, cfg.dataset.name)
    if preflight:
        from harness.preflight import preflight as _preflight, training_finished
        _preflight([(cfg, proto, not training_finished(cfg, runs_dir, run_id, fresh))],
                   allow_missing_weights=allow_missing_weights)
    seconds: dict[str, float] = {}
    with claimed_run(RunDir.for_config(cfg, runs_dir, run_id).path, wait=wait):
        rd = prepare_run(cfg, runs_dir, run_id=run_id, fresh=fresh)
        LOG.info("run %s: %s", rd.run_id, rd.path)
        t = time.perf_counter()
        train_stage(cfg, rd, progress=progress, allow_data_change=allow_data_change)
        seconds["train"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        generate_stage(rd, cfg, proto, progress=progress, allow_data_change=allow_data_change)
        seconds["generate"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        record = evaluate_stage(rd, cfg, proto, progress=progress,
                                allow_data_change=allow_data_change)
        seconds["evaluate"] = round(time.perf_counter() - t, 3)
    if leaderboard and results_dir is not None and hdist.info().is_main:
        t = time.perf_counter()
        refresh_leaderboard(runs_dir, results_dir)
        seconds["leaderboard"] = round(time.perf_counter() - t, 3)
    return RunSummary(str(rd.path), rd.run_id, cfg.method.name, cfg.dataset.name, proto.id,
                      cfg.eval.inference, metrics=metric_values(record), seconds=seconds,
                      skipped=unrequested_skips(record))


def metric_values(record: Mapping[str, Any]) -> dict:
    """metric -> value (or 'skipped: reason') for a short summary on stdout."""
    out = {}
    for name, m in (record.get("metrics") or {}).items():
        if isinstance(m, Mapping):
            if m.get("status", "ok") == "ok":
                out[name] = m.get("value", m.get("mean"))
            else:
                out[name] = f"{m.get('status')}: {m.get('reason', '')}".strip()
        else:
            out[name] = m
    return out


def refresh_leaderboard(runs_dir: str | Path | Sequence[str | Path], results_dir: str | Path, *,
                        formats: Sequence[str] = ("csv", "md", "latex"),
                        published: bool = True) -> list[Path]:
    """Rewrite results/leaderboard.* from every metrics.json under the runs folder(s)."""
    from harness.results import build as lb

    paths = [runs_dir] if isinstance(runs_dir, (str, Path)) else list(runs_dir)
    return lb.write_leaderboard([Path(p) for p in paths], Path(results_dir),
                                formats=tuple(formats), published=published)


# ----------------------------------------------------------------------------------------------
# Other verbs: official weights, feature clustering, data checks, segmenter training
# ----------------------------------------------------------------------------------------------
def _build_method(cfg: ExperimentConfig, info: Any, device: Any = None):
    from methods import METHODS
    from methods.base import Runtime

    import torch
    device = torch.device(device) if device is not None else torch.device("cpu")
    cls = METHODS.get(cfg.method.name)
    return cls.build(cfg.method.config, info, Runtime(device=device)).to(device)


def import_official(cfg: ExperimentConfig, paths: Mapping[str, str | Path], *,
                    runs_dir: str | Path = "runs", run_id: str = "official",
                    force: bool = False, wait: bool = True) -> dict:
    """A run directory whose checkpoint holds weights released by the method's authors.

    ``paths``: network -> file, as the method's ``import_official`` expects (e.g. G, D, E,
    features). The checkpoint is a regular harness checkpoint at step 0, marked finished, so
    ``generate --run`` / ``evaluate --run`` work on it as on a trained run.

    Everything is validated and the new run is built in a hidden sibling folder before an
    existing run is touched; ``force`` then swaps it in (:func:`harness.rundir.replace_run`), so
    a bad file or a failure at any point leaves the old run as it was."""
    from harness.core.weights import file_sha256
    from harness.rundir import replace_run
    from harness.runlock import run_lock
    from harness.train import checkpoint as ckpt

    for name, p in paths.items():
        if not Path(p).is_file():
            raise RunError(f"--checkpoint {name}={p}: file does not exist")
    rd = RunDir.for_config(cfg, runs_dir, run_id)

    def check_target() -> None:
        if rd.path.exists() and (not rd.path.is_dir() or any(rd.path.iterdir())):
            if not force:
                raise RunError(f"{rd.path} already exists; pass --force to replace it or choose "
                               "another --run-id")
            rd.check_replaceable()

    check_target()  # before the (slow) import: fail fast
    from methods import METHODS
    from methods.base import Method, NotSupported

    if METHODS.get(cfg.method.name).import_official is Method.import_official:
        raise NotSupported(f"method {cfg.method.name!r} has no importer for official checkpoints")
    try:  # the label semantics come from the split that will be evaluated
        split = resolve_protocol(cfg.eval.protocol, cfg.dataset.name).split
    except ConfigError:
        split = "val"
    info = build_dataset(cfg.dataset, split, train=False, seed=cfg.train.seed).info
    method = _build_method(cfg, info)
    report = method.import_official({k: Path(v) for k, v in paths.items()})
    files = {k: {"path": str(Path(v).resolve()), "sha256": file_sha256(Path(v))}
             for k, v in paths.items()}
    summary = {"loaded": dict(report.loaded), "dropped": dict(report.dropped),
               "notes": list(report.notes), "files": files}
    state = ckpt.make_state(method=method, cfg=cfg, info=info, step=0, finished=True,
                            after_training={"imported": True})
    state["imported"] = summary
    with run_lock(rd.path, wait=wait):
        check_target()  # again: another process may have created it meanwhile
        with rd.staging() as new:
            _make_run_dir(new.path)
            new.write_config(cfg)
            path = ckpt.write(new.checkpoints, state, keep_last=1)
            new.update_status(run_id=rd.run_id, method=cfg.method.name, dataset=cfg.dataset.name,
                              config_hash=cfg.hash(), imported=True)
            new.set_stage("train", status="done", imported=True, checkpoint=path.name, **summary)
            replace_run(new, rd)
    return {"run_dir": str(rd.path), "run_id": rd.run_id,
            "checkpoint": str(rd.checkpoints / path.name), **summary}


def cluster_features(rd: RunDir, cfg: ExperimentConfig, *, which: str = "latest",
                     batch_size: int = 1, device: Any = None) -> dict:
    """Re-run ``method.after_training`` on the train split and save the result as a new
    checkpoint of the same step (pix2pixHD: K-means of the encoder's instance features).
    Samples generated from the old checkpoint are regenerated on the next generate/run."""
    from harness.train import checkpoint as ckpt

    path = checkpoint_file(rd, which)
    state = ckpt.read(path)
    method = load_method(rd, cfg, which=str(path), device=device)
    train_ds = build_dataset(cfg.dataset, "train", train=False, seed=cfg.train.seed)
    start = time.perf_counter()
    with rd.stage_timer("cluster_features", checkpoint=path.name) as stage:
        method.eval()
        summary = method.after_training(train_ds, batch_size=batch_size) or {}
        state["method"]["state"] = method.state_dict()
        state["after_training"] = _jsonable(summary)
        new = ckpt.write(rd.checkpoints, state, keep_last=max(1, cfg.train.keep_last))
        stage.update(summary=_jsonable(summary), new_checkpoint=new.name)
    return {"run_dir": str(rd.path), "checkpoint": str(new), "summary": _jsonable(summary),
            "seconds": round(time.perf_counter() - start, 3)}


def check_data(dataset: str, *, splits: Sequence[str] | None = None,
               config_files: Sequence[str | Path] = (), overrides: Sequence[str] = ()) -> dict:
    """Validate the layout and every file of each split; collect every problem found."""
    from harness.core.data.base import DatasetError

    spec = dataset_spec(dataset, config_files=config_files, overrides=overrides)
    splits = list(splits or ["train", "val"])
    report: dict[str, Any] = {"dataset": dataset, "ok": True, "splits": []}
    for split in splits:
        entry: dict[str, Any] = {"split": split, "samples": 0, "problems": [], "ok": True}
        report["splits"].append(entry)
        try:
            ds = build_dataset(spec, split, train=False)
            records = ds.records()
        except DatasetError as exc:
            entry["problems"].append(str(exc))
            entry["ok"] = report["ok"] = False
            continue
        entry["samples"] = len(records)
        if not records:
            entry["problems"].append(f"split {split!r} has no samples")
        for i, rec in enumerate(records):
            try:
                ds[i]  # decodes every file, checks ids, sizes and pairing
            except (DatasetError, OSError, ValueError) as exc:
                entry["problems"].append(f"{rec.key}: {exc}")
        entry["ok"] = not entry["problems"]
        report["ok"] = report["ok"] and entry["ok"]
        if entry["ok"]:
            entry["label_ids"] = ds.allowed_ids()
            entry["size"] = list(ds.eval_size)
    return report


def train_segmenter(dataset: str, *, config_files: Sequence[str | Path] = (),
                    overrides: Sequence[str] = (), device: str = "auto", out: str | None = None,
                    progress: bool = True) -> dict:
    """Train (or fetch from the cache) the harness segmenter of a dataset without a published
    one. ``overrides``: ``dataset.*`` keys for the dataset options, ``segmenter.steps`` /
    ``segmenter.batch_size`` / ``segmenter.seed`` for the recipe."""
    from evaluators.segmenters.trained import TrainRecipe, train_segmenter as _train

    recipe_keys = {"steps": int, "batch_size": int, "seed": int}
    recipe: dict[str, Any] = {}
    data_overrides = []
    for text in overrides:
        key, value = parse_override(text)
        if key.startswith("dataset."):
            data_overrides.append(text)
        elif key.startswith("segmenter.") and key.split(".", 1)[1] in recipe_keys:
            name = key.split(".", 1)[1]
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"--set {text!r}: {key} expects int, got {value!r}")
            recipe[name] = value
        else:
            raise ConfigError(f"--set {text!r}: train-segmenter takes dataset.* keys and "
                              f"segmenter.{{{','.join(recipe_keys)}}}")
    spec = dataset_spec(dataset, config_files=config_files, overrides=data_overrides)
    try:
        recipe_obj = TrainRecipe(**recipe)
    except ValueError as exc:
        raise ConfigError(f"--set segmenter.*: {exc}") from None
    dev = resolve_device(device)
    start = time.perf_counter()
    result = _train(dataset, spec.options, device=dev, out_path=out, progress=progress,
                    recipe=recipe_obj)
    return {"dataset": dataset, "checkpoint": str(result.checkpoint), "cached": result.cached,
            "miou": result.miou, "accuracy": result.accuracy,
            "seconds": round(time.perf_counter() - start, 3), "record": _jsonable(result.record)}
