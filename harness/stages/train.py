"""The train stage: train one configuration in its run directory, resuming from 'latest';
skipped when run.json says training finished (the loop itself: :mod:`harness.train`)."""
from __future__ import annotations

import logging
import time

from harness.core import dist as hdist
from harness.core.config import ExperimentConfig
from harness.rundir import RunDir, stage_outcome
from harness.stages.common import build_dataset, checkpoint_exists, jsonable

LOG = logging.getLogger("harness")


def train_stage(cfg: ExperimentConfig, rd: RunDir, *, progress: bool = True,
                allow_data_change: bool = False, protocol=None) -> dict:
    """Train (resuming from 'latest'); skipped when run.json says training finished.

    The train split must be the data the run recorded (harness.data_identity). With
    ``train.select_every`` the 'best' checkpoint is chosen on the held-out slice of the training
    split under ``protocol``'s metric settings (harness.stages.selection)."""
    from harness.data_identity import check_split
    from harness.stages.selection import holdout_selector
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
    from harness.cost import PeakMemory, record_interrupted, record_training
    from harness.train.placement import resolve_device

    try:
        with PeakMemory(resolve_device(cfg.train.device, d)) as peak:
            result = train(cfg, rd.path, resume=True, progress=progress,
                           best_metric=holdout_selector(cfg, rd, protocol))
    except BaseException as exc:
        if d.is_main:
            try:  # the session's time still counts; never hide the error that stopped it
                record_interrupted(rd.path, time.perf_counter() - start, hdist.info().world_size)
            except OSError:
                pass
            rd.set_stage("train", status=stage_outcome(exc),
                         error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    summary = jsonable(result)
    if d.is_main:
        record_training(rd.path, summary.get("summary") or {}, peak.seconds, peak)
        rd.set_stage("train", status="done", seconds=round(time.perf_counter() - start, 3),
                     result=summary, error=None)
    hdist.barrier()
    return summary
