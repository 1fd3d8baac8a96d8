"""Preflight: before a model is built or trained, check what the run will need.

Checked, for every configuration of a ``run`` / ``train`` command, all at once:

- every weight file, through the one resolution order of :mod:`harness.core.weights` (explicit
  path -> weights dir -> hub cache -> download, sha256 checked): the files the method declares
  for training (``Method.required_weights``, e.g. VGG19 for a perceptual loss) and, for ``run``,
  the files the protocol's metrics load (:func:`evaluators.requirements.protocol_weight_needs`:
  Inception, the LPIPS backbone for multimodal methods, the segmenter's files);
- for ``run``: that the protocol fits the dataset: generation size, label space / ignore id and
  the segmenter's label space, and enough images in the split.

Every problem is reported in one :class:`PreflightError` (exit status 2) naming each file and
where to put it. ``allow_missing_weights`` lets a run go on without a *metric's* file (the
metric is then recorded as skipped, with the reason); a file training needs, a file with the
wrong checksum and a protocol that does not fit the dataset always stop the run.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from harness.core import dist as hdist
from harness.core.config import ConfigError, ExperimentConfig

LOG = logging.getLogger("harness")


class PreflightError(ConfigError):
    """Something a run needs is missing or does not fit; nothing was built or trained."""


@dataclass
class PreflightReport:
    """What one configuration's preflight found."""
    label: str
    errors: list[str] = field(default_factory=list)
    # metric -> why it will be recorded as skipped (allowed missing weight files)
    will_skip: dict[str, str] = field(default_factory=dict)
    # files needed only in a case the method does not declare (see WeightNeed.maybe)
    maybe_missing: list[str] = field(default_factory=list)
    resolved: list[dict] = field(default_factory=list)


def check_resolution(dataset: Any, protocol: Any, cfg: ExperimentConfig | None) -> None:
    """The protocol's generation size must be the size the dataset options produce."""
    size = tuple(getattr(dataset, "eval_size", None) or dataset.info.image_size)
    want = tuple(protocol.resolution)
    if size != want:
        where = f"the configuration {cfg.name!r}" if cfg is not None else "the dataset options"
        raise ConfigError(
            f"protocol {protocol.name!r} evaluates {want[0]}x{want[1]} (H x W) images but "
            f"{where} generates {size[0]}x{size[1]}; set the dataset's crop_size / aspect_ratio to "
            "match or choose another --protocol")


def weight_needs(cfg: ExperimentConfig, protocol: Any | None, *, training: bool = True) -> list:
    """The WeightNeeds of ``cfg``: the method's for training, the protocol's for evaluation."""
    from methods import METHODS

    cls = METHODS.get(cfg.method.name)
    needs = list(cls.required_weights(cfg.method.config)) if training else []
    if protocol is not None:
        from evaluators.requirements import protocol_weight_needs
        needs += protocol_weight_needs(protocol, skip=cfg.eval.skip,
                                       multimodal=cls.multimodal_for(cfg.method.config))
    return needs


def _check_weights(needs: Sequence, report: PreflightReport, allow_missing: bool) -> None:
    from harness.core.weights import WeightsUnavailable, resolve

    merged: dict[tuple, Any] = {}  # one check per file; the metrics of every need of it
    for need in needs:
        key = (need.spec.key, str(need.path) if need.path is not None else None)
        if key in merged:
            prev = merged[key]
            metrics = tuple(dict.fromkeys(prev.metrics + need.metrics)) \
                if prev.metrics and need.metrics else ()
            merged[key] = type(need)(prev.spec, prev.purpose, metrics, prev.path,
                                     prev.maybe and need.maybe)
        else:
            merged[key] = need
    for need in merged.values():
        try:
            report.resolved.append(resolve(need.spec, need.path).record())
        except WeightsUnavailable as exc:   # also WeightsHashMismatch: a wrong file = a missing one
            if not need.metrics:
                report.errors.append(f"{need.purpose}, needed to train: {exc}")
            elif need.maybe:
                report.maybe_missing.append(f"{need.purpose} ({', '.join(need.metrics)}), "
                                            f"needed if the method is multimodal: {exc}")
            elif allow_missing:
                for m in need.metrics:
                    report.will_skip[m] = str(exc)
            else:
                report.errors.append(
                    f"{need.purpose} ({', '.join(need.metrics)}): {exc} Or pass "
                    "--allow-missing-weights to train anyway and record "
                    f"{', '.join(need.metrics)} as skipped.")


def _check_protocol_fits(cfg: ExperimentConfig, protocol: Any, report: PreflightReport) -> None:
    from evaluators.evaluate import EvaluationError, check_dataset, select_records
    from evaluators.segmenters import DATASET_LABEL_SPACE, SEGMENTERS
    from harness.core.data import build_dataset
    from harness.core.data.base import DatasetError

    try:
        dataset = build_dataset(cfg.dataset.name, cfg.dataset.options, protocol.split,
                                train=False, seed=cfg.train.seed)
    except (DatasetError, ConfigError) as exc:
        report.errors.append(f"the evaluation split {protocol.split!r}: {exc}")
        return
    for check in (lambda: check_resolution(dataset, protocol, cfg),
                  lambda: check_dataset(dataset, protocol),
                  lambda: select_records(dataset, protocol)):
        try:
            check()
        except (ConfigError, DatasetError, EvaluationError) as exc:
            report.errors.append(str(exc))
    seg = protocol.segmentation
    if seg.segmenter is not None:
        entry = SEGMENTERS.get(seg.segmenter)
        if entry.label_space not in (DATASET_LABEL_SPACE, "from-config", seg.label_space):
            report.errors.append(f"segmenter {entry.name} predicts label space "
                                 f"{entry.label_space!r}, but protocol {protocol.name!r} scores "
                                 f"{seg.label_space!r}")


def training_finished(cfg: ExperimentConfig, runs_dir: str | Path, run_id: str | None,
                      fresh: bool) -> bool:
    """True when the run directory already records a finished training (nothing to train)."""
    from harness.rundir import RunDir

    if fresh:
        return False
    try:
        return RunDir.for_config(cfg, runs_dir, run_id).stage_done("train")
    except (OSError, ValueError):  # an unreadable run.json is the runner's to report
        return False


def check(cfg: ExperimentConfig, protocol: Any | None, *, allow_missing_weights: bool = False,
          training: bool = True) -> PreflightReport:
    """One configuration's preflight (no collective calls; see :func:`preflight`)."""
    report = PreflightReport(label=cfg.name)
    _check_weights(weight_needs(cfg, protocol, training=training), report, allow_missing_weights)
    if protocol is not None:
        _check_protocol_fits(cfg, protocol, report)
    return report


def preflight(items: Sequence[tuple[ExperimentConfig, Any | None, bool]], *,
              allow_missing_weights: bool = False) -> list[PreflightReport]:
    """Check ``(cfg, protocol or None, training)`` items; raise one PreflightError for all.

    Rank 0 checks (a download happens once) and every rank raises the same error."""
    reports: list[PreflightReport] = []
    message = None
    if hdist.info().is_main:
        reports = [check(cfg, protocol, allow_missing_weights=allow_missing_weights,
                         training=training) for cfg, protocol, training in items]
        message = _error_message(reports)
        if message is None:
            for line in warning_lines(reports):
                LOG.warning("%s", line)
    message = hdist.broadcast_object(message)
    if message is not None:
        raise PreflightError(message)
    return reports


def warning_lines(reports: Sequence[PreflightReport]) -> list[str]:
    """The preflight's warnings, each said once: the same warning for several configurations
    (several training seeds of one method share a label) is one line naming each label once."""
    labels_of: dict[str, list[str]] = {}
    for r in reports:
        by_reason: dict[str, list[str]] = {}
        for metric, reason in r.will_skip.items():
            by_reason.setdefault(reason, []).append(metric)
        texts = [f"{', '.join(metrics)} will be recorded as skipped: {reason}"
                 for reason, metrics in by_reason.items()] + list(r.maybe_missing)
        for text in texts:
            labels = labels_of.setdefault(text, [])
            if r.label not in labels:
                labels.append(r.label)
    return [f"preflight: {', '.join(labels)}: {text}" for text, labels in labels_of.items()]


def _error_message(reports: Sequence[PreflightReport]) -> str | None:
    by_problem: dict[str, list[str]] = {}  # the same missing file for several configurations
    for r in reports:
        for problem in r.errors:
            by_problem.setdefault(problem, []).append(r.label)
    if not by_problem:
        return None
    n = len(by_problem)
    lines = [f"preflight: {n} problem{'s' if n > 1 else ''} found before training (nothing was "
             "built or trained):"]
    for problem, labels in by_problem.items():
        lines.append(f"- [{', '.join(labels)}] {problem}")
    return "\n".join(lines)
