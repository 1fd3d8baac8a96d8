"""The evaluate stage: score a run's generated samples (every seed, combined) into metrics.json,
skipped when recorded for the same samples; and the `evaluate --images` scoring of a bare folder."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from harness.core import dist as hdist
from harness.core.config import ConfigError, ExperimentConfig
from harness.rundir import RunDir, RunError
from harness.skip_report import unrequested_skips
from harness.stages.selection import checkpoint_choice
from harness.stages.common import build_dataset, dataset_spec, resolve_device, resolve_protocol

LOG = logging.getLogger("harness")


def metrics_key(protocol: Any, inference: str | None) -> str:
    return f"{protocol.id}/{inference or 'none'}"


def retry_metrics(record: Mapping[str, Any]) -> list[str]:
    """Metrics of a record that were skipped for a reason that may go away (a missing weights
    file, typically): the next run evaluates again instead of keeping the gap."""
    return list(unrequested_skips(record))


def evaluate_stage(rd: RunDir, cfg: ExperimentConfig, protocol: Any, *,
                   inference: str | None = None, batch_size: int | None = None,
                   device: Any = None, progress: bool = True, force: bool = False,
                   allow_data_change: bool = False,
                   segmenter_weights: str | Path | None = None) -> dict:
    """Evaluate the generated set of every seed, combine the seeds, record into metrics.json.

    Skipped when metrics.json already holds this protocol/inference for the same samples (whose
    origin includes the input data's fingerprint) scored by the same segmenter file
    (``segmenter_weights``: :mod:`harness.stages.segmenter_weights`); samples of other input data
    are refused."""
    from harness.core.records import read_metrics, write_record
    from harness.data_identity import check_split
    from harness.generate import load_manifest
    from harness.stages.segmenter_weights import (check_segmenter_weights, describe_change,
                                                  same_segmenter)

    inference = inference or cfg.eval.inference
    out = rd.samples_dir(protocol.id, inference)
    manifest = load_manifest(out)
    if manifest is None:
        raise RunError(f"{out} has no manifest.json: generate the samples first "
                       f"(`python -m harness generate --run {rd.path}`)")
    dataset = build_dataset(cfg.dataset, protocol.split, train=False, seed=cfg.train.seed)
    inputs = check_split(rd, dataset, allow_change=allow_data_change)
    seg_file = check_segmenter_weights(segmenter_weights, protocol, dataset)
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
                                   same_segmenter(existing, seg_file) and
                                   not retry_metrics(existing))):
        LOG.info("evaluate: %s already in %s (skipped)", key, rd.metrics_file)
        if hdist.info().is_main:
            report_per_class(rd.metrics_file, existing)
        return existing
    if existing and not force and not same_segmenter(existing, seg_file):
        LOG.info("evaluate: computing %s again: %s", key, describe_change(existing, seg_file))
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
            method=cfg.method.name, variant=cfg.name, run_id=rd.run_id, inference=inference,
            segmenter_weights=seg_file)
    except BaseException as exc:
        if d.is_main:
            rd.set_stage(stage, status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    record.update({
        "method": cfg.method.name, "variant": cfg.name, "run_id": rd.run_id,
        "config_hash": cfg.hash(), "variant_hash": cfg.variant_hash(),
        "train_seed": cfg.train.seed, "inference": inference,
        "samples_origin": manifest.get("origin"),
        # which checkpoint produced the samples and how it was chosen (harness.stages.selection)
        "checkpoint": checkpoint_choice(rd, cfg, (manifest.get("origin") or {}).get("checkpoint")),
        "data": {**record.get("data", {}), **inputs},
        "unimodal_single_seed": bool(manifest.get("unimodal")) and
        len(manifest.get("protocol_seeds") or []) > 1,
    })
    if d.is_main:
        write_record(rd.metrics_file, record)
        report_per_class(rd.metrics_file, record)
        rd.set_stage(stage, status="done", seconds=round(time.perf_counter() - start, 3),
                     error=None)
    hdist.barrier()
    return record


def evaluate_manifest(manifest: Mapping[str, Any], out: Path, dataset: Any, protocol: Any, *,
                      skip: Sequence[str] = (), device: Any = None, batch_size: int = 8,
                      progress: bool = True, segmenter_weights: Any = None, **meta: Any) -> dict:
    """One record per generated seed (diversity with the first), combined over the seeds.

    ``segmenter_weights``: a checked :class:`harness.stages.segmenter_weights.SegmenterFile`."""
    from evaluators.evaluate import evaluate_images
    from harness.core.records import combine_seeds
    from harness.stages.segmenter_weights import mark_record
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
            weights=segmenter_weights.weights() if segmenter_weights else None, **meta))
    combined = combine_seeds(records)
    # Diversity is measured once (from its own samples), not per seed.
    for name in ("lpips_diversity", "mcsd", "mocd"):
        combined["metrics"][name] = records[0]["metrics"][name]
    return mark_record(combined, segmenter_weights)


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


def evaluate_folder(images: Path, dataset: str, *, split: str | None = None,
                    protocol: str | None = None, out: str | Path | None = None,
                    label: str | None = None, config_files: Sequence[str | Path] = (),
                    overrides: Sequence[str] = (), skip: Sequence[str] = (), batch_size: int = 8,
                    device: Any = "cpu", progress: bool = True,
                    segmenter_weights: str | Path | None = None) -> tuple[dict, Path]:
    """Score a bare folder of images named after the split's keys; record into ``out``
    (``segmenter_weights``: :mod:`harness.stages.segmenter_weights`)."""
    from evaluators.evaluate import evaluate_images
    from harness.core.records import write_record
    from harness.stages.segmenter_weights import check_segmenter_weights, mark_record

    images = Path(images)
    if not images.is_dir():
        raise RunError(f"--images {images}: folder does not exist")
    spec = dataset_spec(dataset, config_files=config_files, overrides=overrides)
    proto = resolve_protocol(protocol, dataset)
    if split is not None and split != proto.split:
        raise ConfigError(f"--split {split}: protocol {proto.name!r} scores split "
                          f"{proto.split!r}; pass a protocol for split {split!r} with --protocol")
    ds = build_dataset(spec, proto.split, train=False)
    seg_file = check_segmenter_weights(segmenter_weights, proto, ds)
    name = label or images.resolve().name
    record = evaluate_images(images, ds, proto, multimodal=None, device=device,
                             batch_size=batch_size, skip=tuple(skip), dist=hdist.info(),
                             method=name, variant=name, inference=None, progress=progress,
                             weights=seg_file.weights() if seg_file else None)
    mark_record(record, seg_file)
    record.update({"config_hash": None, "variant_hash": None, "train_seed": None,
                   "images_dir": str(images.resolve())})
    target = Path(out) if out is not None else images
    path = target / "metrics.json" if target.suffix != ".json" else target
    if hdist.info().is_main:
        write_record(path, record)
        report_per_class(path, record)
    return record, path


def report_per_class(metrics_file: Path, record: Mapping[str, Any]) -> None:
    """The per-class IoU table on stderr and ``per_class_iou.csv`` beside ``metrics_file``."""
    from harness.figures.per_class import format_table, write_per_class_csv

    table = format_table(record)
    if not table:
        return
    LOG.info("per-class IoU (%s/%s; pixels %%: share of the ground-truth pixels):\n%s",
             (record.get("protocol") or {}).get("id"), record.get("inference"), table)
    written = write_per_class_csv(metrics_file)
    if written is not None:
        LOG.info("wrote %s", written)
