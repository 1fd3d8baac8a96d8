"""The `run` verb: train -> generate -> evaluate -> record -> leaderboard for one configuration,
each stage resumable and skipped when its output exists for the same inputs (:mod:`harness.stages`)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.core import dist as hdist
from harness.core.config import ExperimentConfig
from harness.rundir import RunDir
from harness.skip_report import unrequested_skips
from harness.stages.common import prepare_run, resolve_protocol
from harness.stages.evaluate import evaluate_stage, metric_values
from harness.stages.generate import generate_stage
from harness.stages.leaderboard import refresh_leaderboard
from harness.stages.selection import evaluated_checkpoint
from harness.stages.train import train_stage

LOG = logging.getLogger("harness")


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
    train_seed: int | None = None                 # train.seed (not the generation seeds)


def run_experiment(cfg: ExperimentConfig, *, runs_dir: str | Path = "runs",
                   results_dir: str | Path | None = "results", protocol: str | None = None,
                   run_id: str | None = None, fresh: bool = False, progress: bool = True,
                   leaderboard: bool = True, allow_missing_weights: bool = False,
                   preflight: bool = True, allow_data_change: bool = False,
                   wait: bool = True, segmenter_weights: str | Path | None = None) -> RunSummary:
    """train -> generate -> evaluate -> record -> leaderboard for one configuration.

    ``preflight``: first check every weight file and the protocol's fit to the dataset
    (:mod:`harness.preflight`) and the ``segmenter_weights`` file; False when the caller has
    checked both already, as ``run`` does for all its runs at once. The run directory is
    locked from preparation to the record (``wait=False``: fail at once with
    :class:`harness.runlock.RunLocked` when another process holds it). ``segmenter_weights``:
    the protocol's segmenter from this file (checked before training;
    :mod:`harness.stages.segmenter_weights`)."""
    from harness.runlock import claimed_run

    proto = resolve_protocol(protocol or cfg.eval.protocol, cfg.dataset.name)
    if preflight:
        if segmenter_weights is not None:  # before the weights preflight: it may set the file
            check_run_segmenter_weights(cfg, proto, segmenter_weights)
        from harness.preflight import preflight as _preflight, training_finished
        _preflight([(cfg, proto, not training_finished(cfg, runs_dir, run_id, fresh))],
                   allow_missing_weights=allow_missing_weights)
    seconds: dict[str, float] = {}
    with claimed_run(RunDir.for_config(cfg, runs_dir, run_id).path, wait=wait):
        rd = prepare_run(cfg, runs_dir, run_id=run_id, fresh=fresh)
        LOG.info("run %s: %s", rd.run_id, rd.path)
        t = time.perf_counter()
        train_stage(cfg, rd, progress=progress, allow_data_change=allow_data_change,
                    protocol=proto)
        seconds["train"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        # 'best' (chosen on held-out training images) when a selection is configured.
        generate_stage(rd, cfg, proto, which=evaluated_checkpoint(cfg), progress=progress,
                       allow_data_change=allow_data_change)
        seconds["generate"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        record = evaluate_stage(rd, cfg, proto, progress=progress,
                                allow_data_change=allow_data_change,
                                segmenter_weights=segmenter_weights)
        seconds["evaluate"] = round(time.perf_counter() - t, 3)
    if leaderboard and results_dir is not None and hdist.info().is_main:
        t = time.perf_counter()
        refresh_leaderboard(runs_dir, results_dir)
        seconds["leaderboard"] = round(time.perf_counter() - t, 3)
    return RunSummary(str(rd.path), rd.run_id, cfg.method.name, cfg.dataset.name, proto.id,
                      cfg.eval.inference, metrics=metric_values(record), seconds=seconds,
                      skipped=unrequested_skips(record), train_seed=cfg.train.seed)


def check_run_segmenter_weights(cfg: ExperimentConfig, protocol, path: str | Path) -> None:
    """``--segmenter-weights`` checked against the run's evaluation split, before any training."""
    from harness.stages.common import build_dataset
    from harness.stages.segmenter_weights import check_segmenter_weights

    dataset = build_dataset(cfg.dataset, protocol.split, train=False, seed=cfg.train.seed)
    check_segmenter_weights(path, protocol, dataset)
