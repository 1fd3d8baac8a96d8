"""The training loop: one process or many (torchrun), exact resume, guards, logs.

    train(cfg, run_dir)            train (or resume) the configured method; returns TrainResult

(Setup and resume: :mod:`harness.train.setup`; writing checkpoints: :mod:`harness.train.saving`;
loading a trained method back: :mod:`harness.train.restore`; logging and determinism around the
session: :mod:`harness.train.session`.)

One step = every phase of the method once (one G and one D update) over a per-process batch of
``batch_size x grad_accum`` images, split into ``grad_accum`` micro-batches by ``run_phases``.
Steps per epoch = len(train set) // (batch_size x grad_accum x world_size). The learning rate is
a pure function of the step (:mod:`harness.train.schedule`); the data order a pure function of
(seed, epoch) (:mod:`harness.train.sampler`); a checkpoint holds everything else
(:mod:`harness.train.checkpoint`), so a resumed run continues exactly where it stopped.

Test hook (not for users): with ``HARNESS_TEST_PAUSE_AT_STEP=k`` in the environment every rank
prints ``HARNESS_TEST_PAUSED step=k rank=r pid=p`` on stderr after step k (and its checkpoint,
if one is due) and waits until a stop signal arrives (at most 5 minutes) - so a test can SIGKILL a run right after a durable
checkpoint, or SIGTERM it at a known step.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from harness.core import dist as hdist
from harness.core.config import ExperimentConfig
from harness.train import checkpoint as ckpt
from harness.train.guards import (NonFiniteLossError, OutOfMemory, StopSignals, TrainingInterrupted,
                                  nonfinite_message, oom_message)
from harness.train.logs import MetricsLog
from harness.train.placement import resolve_device
from harness.train.sampler import BatchList
from harness.train.samples import fixed_batch, grid, sample_path, write_png
from harness.train.saving import TrainerCheckpoints
from harness.train.schedule import lr_factor
from harness.train.session import determinism, log_setup
from harness.train.setup import TrainerSetup

LOG = logging.getLogger("harness.train")
PAUSE_ENV = "HARNESS_TEST_PAUSE_AT_STEP"
_OOM = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


@dataclass
class TrainResult:
    step: int                          # optimisation steps done (== total_steps when finished)
    total_steps: int
    checkpoint: Path | None            # the last checkpoint written or loaded
    best_checkpoint: Path | None
    resumed_from: int | None           # step of the checkpoint this session started from
    summary: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def train(cfg: ExperimentConfig, run_dir: str | Path, *, resume: bool = True, progress: bool = True,
          best_metric: Callable[[Any, int], float] | None = None) -> TrainResult:
    """Train ``cfg`` in ``run_dir`` (resuming from its 'latest' checkpoint when ``resume``).

    Works in one process and under ``torchrun`` (every rank calls it). ``best_metric(method,
    step)``, when given, is called on every rank at every checkpoint; the checkpoint with the
    lowest value becomes 'best' (otherwise the final checkpoint is 'best').
    Raises TrainingError subclasses with a message to print: NonFiniteLossError, OutOfMemory,
    TrainingInterrupted (SIGTERM/SIGINT, after saving a checkpoint), CheckpointError.
    """
    run_dir = Path(run_dir)
    d = hdist.init(cfg.train.device)
    device = resolve_device(cfg.train.device, d)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    with log_setup(d), determinism(cfg.train.deterministic, device):
        trainer = Trainer(cfg, run_dir, d, device, progress=progress and cfg.train.progress,
                          best_metric=best_metric)
        return trainer.run(resume=resume)


# --------------------------------------------------------------------------------------------
# The trainer: setup and resume (harness.train.setup), checkpoints (harness.train.saving), the loop
# --------------------------------------------------------------------------------------------
class Trainer(TrainerSetup, TrainerCheckpoints):
    """One training session of one configuration in one run directory (every rank has one)."""

    def __init__(self, cfg: ExperimentConfig, run_dir: Path, d: hdist.DistInfo,
                 device: torch.device, *, progress: bool,
                 best_metric: Callable[[Any, int], float] | None) -> None:
        self.cfg, self.tc = cfg, cfg.train
        self.run_dir, self.d, self.device = run_dir, d, device
        self.progress = progress and d.is_main
        self.best_metric = best_metric
        self.ckdir = ckpt.checkpoint_dir(run_dir)
        self.last_checkpoint: tuple[Path, int] | None = None
        self.best_checkpoint: Path | None = None
        self._eval_dataset = None
        self._grid_batch = None
        self._grids = bool(cfg.train.sample_every)

    def _pause_hook(self, step: int, stop: StopSignals) -> None:
        if os.environ.get(PAUSE_ENV) != str(step):
            return
        sys.stderr.write(f"HARNESS_TEST_PAUSED step={step} rank={self.d.rank} pid={os.getpid()}\n")
        sys.stderr.flush()
        # Never outlive the test: give up after 5 minutes, or when the launcher (torchrun, which
        # starts workers in their own sessions) is gone.
        deadline, parent = time.monotonic() + 300, os.getppid()
        while not stop.requested:
            if time.monotonic() > deadline or os.getppid() != parent:
                os._exit(3)
            time.sleep(0.02)

    def run(self, *, resume: bool) -> TrainResult:
        self._setup()
        start, state = self._resume(resume)
        t0 = time.perf_counter()
        if state is not None and state.get("finished") and start >= self.total:
            LOG.info("training already finished (step %d); nothing to do", start)
            if self.best_checkpoint is None and self.d.is_main:
                ckpt.set_best(self.ckdir, self.last_checkpoint[0])
            return self._result(start, start, state.get("after_training"), t0, None)
        if start > self.total:
            LOG.warning("the checkpoint is at step %d, beyond this configuration's %d steps; "
                        "treating training as finished", start, self.total)
        log = MetricsLog(self.run_dir, enabled=self.d.is_main,
                         tensorboard=getattr(self.tc, "tensorboard", True))
        try:
            log.truncate_after(start)
            speed = self._loop(start, log)
            step = max(start, self.total)
            after = self._finish(step)
        finally:
            log.close()
        return self._result(step, start if state is not None else None, after, t0, speed)

    def _loop(self, start: int, log: MetricsLog) -> float | None:
        tc, d, m = self.tc, self.d, self.method
        if start >= self.total:
            return None
        LOG.info("training %s on %s: steps %d -> %d (%d per epoch, global batch %d = %d x %d x %d "
                 "processes), %s, device %s", m.name, self.cfg.dataset.name, start, self.total,
                 self.spe, self.sampler.global_batch, tc.batch_size, tc.grad_accum, d.world_size,
                 tc.precision, self.device)
        bar = None
        if self.progress:
            from tqdm import tqdm
            bar = tqdm(total=self.total, initial=start, unit="step", file=sys.stderr,
                       dynamic_ncols=True, desc=f"train {m.name}")
        window: dict[str, float] = {}
        window_steps = 0
        t_window = time.perf_counter()
        session_start, session_steps = time.perf_counter(), 0
        step = start
        with StopSignals(announce=d.is_main) as stop:
            while step < self.total:
                epoch, within = divmod(step, self.spe)
                for batch in self._epoch_loader(epoch, within):
                    batch = self._to_device(batch)
                    self.policy.lr_factor = lr_factor(step, self.spe, tc.epochs_constant,
                                                      tc.epochs_decay)
                    losses = self._train_step(batch, step, epoch)
                    step += 1
                    session_steps += 1
                    window_steps += 1
                    for k, v in losses.items():
                        window[k] = window.get(k, 0.0) + v
                    if (tc.log_every and step % tc.log_every == 0) or step == self.total:
                        now = time.perf_counter()
                        record = self._log_record(step, window, window_steps, now - t_window,
                                                  now - session_start)
                        log.write(record)
                        if bar is not None:
                            bar.set_postfix({k: f"{v:.3g}" for k, v in record["loss"].items()},
                                            refresh=False)
                        window, window_steps, t_window = {}, 0, now
                    if self._grids and step % tc.sample_every == 0 and d.is_main:
                        self._write_grid(step, log)
                    if tc.checkpoint_every and step % tc.checkpoint_every == 0 and step < self.total:
                        self._save(step)
                    elif (self.best_metric is not None and tc.select_every
                          and step % tc.select_every == 0 and step < self.total):
                        self._save(step)  # a selection point: scored, and a candidate for 'best'

                    if bar is not None:
                        bar.update(1)
                    self._pause_hook(step, stop)
                    if self._stop_requested(stop):
                        self._interrupt(step, stop, bar)
                    if step >= self.total:
                        break
        if bar is not None:
            bar.close()
        elapsed = time.perf_counter() - session_start
        return session_steps * self.sampler.global_batch / elapsed if elapsed > 0 else None

    def _epoch_loader(self, epoch: int, start: int):
        self.dataset.set_epoch(epoch)  # before the iterator exists: workers copy the dataset
        batches = list(self.sampler.epoch_batches(epoch, start))
        from harness.core.data.base import collate
        # An own generator: creating a DataLoader iterator otherwise draws a worker base seed
        # from the global RNG, which a run resumed mid-epoch would draw at another moment.
        loader_rng = torch.Generator().manual_seed((self.tc.seed * 1_000_003 + epoch) % (1 << 63))
        return torch.utils.data.DataLoader(
            self.dataset, batch_sampler=BatchList(batches), num_workers=self.tc.num_workers,
            collate_fn=collate, pin_memory=self.device.type == "cuda", generator=loader_rng)

    def _to_device(self, batch):
        batch = batch.to(self.device, non_blocking=True)
        if self.tc.channels_last:
            batch.image = batch.image.contiguous(memory_format=torch.channels_last)
            if batch.edge is not None:
                batch.edge = batch.edge.contiguous(memory_format=torch.channels_last)
        return batch

    def _train_step(self, batch, step: int, epoch: int) -> dict[str, float]:
        from methods.base import NonFiniteLoss

        try:
            return self.method.train_step(batch, step)
        except NonFiniteLoss as exc:
            path, cstep = self.last_checkpoint if self.last_checkpoint else (None, None)
            raise NonFiniteLossError(
                nonfinite_message(phase=exc.phase, step=exc.step, epoch=epoch, terms=exc.terms,
                                  checkpoint=path, checkpoint_step=cstep,
                                  lr=dict(self.policy.last_lr), precision=self.tc.precision),
                step=exc.step, phase=exc.phase, terms=exc.terms, checkpoint=path) from exc
        except _OOM as exc:
            raise OutOfMemory(self._oom_text(step)) from exc

    def _oom_text(self, step: int) -> str:
        peak = total = None
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device) / 2**30
            total = torch.cuda.get_device_properties(self.device).total_memory / 2**30
        return oom_message(step=step, batch_size=self.tc.batch_size, grad_accum=self.tc.grad_accum,
                           image_size=tuple(self.info.image_size), world_size=self.d.world_size,
                           precision=self.tc.precision, device=str(self.device), peak_gib=peak,
                           total_gib=total)

    def _log_record(self, step: int, window: dict[str, float], n: int, dt: float,
                    elapsed: float) -> dict:
        keys = sorted(window)
        vec = torch.tensor([window[k] for k in keys] + [float(n)], dtype=torch.float64)
        if self.d.distributed:
            on = self.device if self.device.type == "cuda" else torch.device("cpu")
            vec = hdist.all_reduce_sum(vec.to(on)).cpu()
        count = float(vec[-1]) or 1.0
        record = {"step": step, "epoch": (step - 1) // self.spe,
                  "lr": dict(self.policy.last_lr),
                  "loss": {k: float(vec[i]) / count for i, k in enumerate(keys)},
                  "images_per_s": round(n * self.sampler.global_batch / dt, 3) if dt > 0 else None,
                  "time_s": round(elapsed, 3)}
        if self.device.type == "cuda":
            record["gpu_mem_max_gib"] = round(torch.cuda.max_memory_allocated(self.device) / 2**30, 3)
        return record

    def _write_grid(self, step: int, log: MetricsLog) -> None:
        try:
            if self._grid_batch is None:
                self._grid_batch = fixed_batch(self._eval_train_split(), 4)
            image = grid(self.method, self._grid_batch, seed=self.tc.seed, step=step)
        except NotImplementedError as exc:
            LOG.warning("no sample grids: %s cannot generate (%s)", self.method.name, exc)
            self._grids = False
            return
        write_png(sample_path(self.run_dir, step), image)
        log.image("samples", image, step)

    def _stop_requested(self, stop: StopSignals) -> bool:
        if not self.d.distributed:
            return stop.requested
        on = self.device if self.device.type == "cuda" else torch.device("cpu")
        flag = torch.tensor([1.0 if stop.requested else 0.0], device=on)
        return bool(hdist.all_reduce_sum(flag).item() > 0)

    def _interrupt(self, step: int, stop: StopSignals, bar) -> None:
        import signal

        if bar is not None:
            bar.close()
        if self.last_checkpoint is None or self.last_checkpoint[1] != step:
            self._save(step)
        path = self.last_checkpoint[0]
        signum = stop.signum or signal.SIGTERM
        raise TrainingInterrupted(
            f"training interrupted by {signal.Signals(signum).name} at step {step} of {self.total}; "
            f"checkpoint saved: {path}. Run the same command again (same run directory) to resume "
            "from it exactly.", signum=signum, step=step, checkpoint=path)

    def _finish(self, step: int) -> dict | None:
        """Final checkpoint, the method's after_training hook, the 'best' pointer."""
        from methods.base import Method

        m = self.method
        has_hook = type(m).after_training is not Method.after_training
        if has_hook:
            # Keep the trained state safe before a possibly long hook (e.g. feature clustering).
            if self.last_checkpoint is None or self.last_checkpoint[1] != step:
                self._save(step)
            summary = extra = None
            if self.d.is_main:
                m.eval()
                summary = m.after_training(self._eval_train_split(),
                                           batch_size=self.tc.batch_size)
                extra = m.extra_state()
                m.train()
            summary, extra = hdist.broadcast_object((summary, extra))
            if not self.d.is_main:
                m.load_extra_state(extra)
        else:
            summary = {}
        path = self._save(step, finished=True, after_training=summary)
        if (self.best_metric is None or not (self.ckdir / ckpt.BEST).exists()) and self.d.is_main:
            ckpt.set_best(self.ckdir, path)
            self.best_checkpoint = path
        hdist.barrier()
        return summary

    def _result(self, step: int, resumed_from: int | None, after: dict | None, t0: float,
                speed: float | None) -> TrainResult:
        tc = self.tc
        summary = {
            "method": self.cfg.method.name, "dataset": self.cfg.dataset.name,
            "steps": step, "total_steps": self.total, "steps_per_epoch": self.spe,
            "epochs": step / self.spe, "world_size": self.d.world_size,
            "global_batch": self.sampler.global_batch, "batch_size": tc.batch_size,
            "grad_accum": tc.grad_accum, "precision": tc.precision, "device": str(self.device),
            "images_per_s": round(speed, 3) if speed else None,
            "time_s": round(time.perf_counter() - t0, 3), "resumed_from_step": resumed_from,
            "after_training": after,
        }
        if self.device.type == "cuda":
            summary["gpu_mem_max_gib"] = round(torch.cuda.max_memory_allocated(self.device) / 2**30, 3)
        path = self.last_checkpoint[0] if self.last_checkpoint else None
        best = self.best_checkpoint or (ckpt.find_checkpoint(self.ckdir, ckpt.BEST)
                                        if (self.ckdir / ckpt.BEST).exists() else None)
        return TrainResult(step=step, total_steps=self.total, checkpoint=path, best_checkpoint=best,
                           resumed_from=resumed_from, summary=summary)
