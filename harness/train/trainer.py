"""The training loop: one process or many (torchrun), exact resume, guards, logs.

    train(cfg, run_dir)            train (or resume) the configured method; returns TrainResult
    restore_method(run_dir, ...)   the trained method from a checkpoint, for generation/evaluation

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

import contextlib
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from harness.core import dist as hdist
from harness.core.config import ExperimentConfig
from harness.train import checkpoint as ckpt
from harness.train import finite, rng
from harness.train.guards import (NonFiniteLossError, OutOfMemory, StopSignals, TrainingError,
                                  TrainingInterrupted, nonfinite_message, oom_message)
from harness.train.logs import MetricsLog
from harness.train.placement import (compile_in_place, configure_determinism,
                                     convert_sync_batchnorm, resolve_device, to_channels_last)
from harness.train.policy import RunnerPolicy
from harness.train.sampler import BatchList, ResumableSampler, TooFewSamples
from harness.train.samples import fixed_batch, grid, sample_path, write_png
from harness.train.schedule import lr_factor, total_steps

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
    with _log_setup(d), _determinism(cfg.train.deterministic, device):
        trainer = _Trainer(cfg, run_dir, d, device, progress=progress and cfg.train.progress,
                           best_metric=best_metric)
        return trainer.run(resume=resume)


def restore_method(run_dir: str | Path, cfg: ExperimentConfig | None = None, *,
                   which: str | Path = "latest", device: torch.device | str | None = None):
    """The method of a run, loaded from a checkpoint and put in eval mode on ``device``.

    ``which``: 'latest' (falls back to the previous checkpoint if the newest is unreadable),
    'best', or the path of a checkpoint file. ``cfg`` defaults to the run's config.yaml, or the
    configuration stored in the checkpoint. ``device`` defaults to cfg.train.device ('auto':
    this rank's GPU, else the CPU).
    """
    from methods import METHODS
    from methods.base import Runtime

    run_dir = Path(run_dir)
    directory = ckpt.checkpoint_dir(run_dir)
    if str(which) == ckpt.LATEST:
        found = ckpt.read_latest(directory)
        if found is None:
            raise ckpt.CheckpointError(f"{run_dir} has no checkpoint (looked in {directory}); train "
                                       "it first or import official weights")
        path, state = found
    else:
        path = ckpt.find_checkpoint(directory, str(which))
        if path is None:
            where = which if str(which) == ckpt.BEST else Path(which)
            raise ckpt.CheckpointError(f"no checkpoint {where!s} for run {run_dir} (looked in "
                                       f"{directory})")
        state = ckpt.read(path)
    if cfg is None:
        cfg = _config_of(run_dir, path, state)
    info = ckpt.dataset_info(state)
    ckpt.check_compatible(state, path, method=cfg.method.name, dataset=cfg.dataset.name, info=None)
    dev = torch.device(device) if device is not None else resolve_device(cfg.train.device,
                                                                          hdist.info())
    spe = int((state.get("sampler") or {}).get("steps_per_epoch", 1) or 1)
    method = METHODS.get(cfg.method.name).build(cfg.method.config, info,
                                               Runtime(dev, 1, 0, spe))
    _load_method_state(method, state, path)
    method.to(dev)
    method.eval()
    return method


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def _config_of(run_dir: Path, path: Path, state: dict) -> ExperimentConfig:
    from harness.core.config import Provenance
    from harness.experiment import build_experiment, load_resolved

    resolved = run_dir / "config.yaml"
    if resolved.is_file():
        return load_resolved(resolved)
    return build_experiment(dict(state["config"]), Provenance(), [f"{path} (stored config)"])


def _load_method_state(method, state: dict, path: Path) -> None:
    try:
        method.load_state_dict(state["method"]["state"])
    except (KeyError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:500] if str(exc).strip() else type(exc).__name__
        raise ckpt.CheckpointMismatch(
            f"checkpoint {path} does not fit method '{state['method']['name']}' as configured now "
            f"(were its hyper-parameters changed?): {first}") from exc


class _RankFilter(logging.Filter):
    """Ranks > 0 only report errors (rank 0 speaks for the run)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


@contextlib.contextmanager
def _log_setup(d: hdist.DistInfo) -> Iterator[None]:
    added: list[logging.Handler] = []
    flt = None
    if not LOG.hasHandlers():  # used as a library: say what happens on stderr
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("[harness.train] %(message)s"))
        LOG.addHandler(h)
        added.append(h)
        if LOG.level == logging.NOTSET:
            LOG.setLevel(logging.INFO)
    if not d.is_main:
        flt = _RankFilter()
        LOG.addFilter(flt)
    try:
        yield
    finally:
        for h in added:
            LOG.removeHandler(h)
        if flt is not None:
            LOG.removeFilter(flt)


@contextlib.contextmanager
def _determinism(deterministic: bool, device: torch.device) -> Iterator[None]:
    """Apply train.deterministic for the run and restore the global flags afterwards."""
    saved = (torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    configure_determinism(deterministic, device)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]


def _all_ranks_ok(error: str | BaseException | None, *, write: bool = False) -> None:
    """Raise the same error on every rank when rank 0 reports one: a TrainingError as it is (a
    non-finite state), a CheckpointWriteError (exit status 2, a folder that cannot be written)
    or else a CheckpointError with the message."""
    if isinstance(error, BaseException) and not isinstance(error, TrainingError):
        write, error = isinstance(error, ckpt.CheckpointWriteError), str(error)
    error, write = hdist.broadcast_object((error, write))
    if isinstance(error, TrainingError):
        raise error
    if error:
        raise (ckpt.CheckpointWriteError if write else ckpt.CheckpointError)(error)


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): d}


# --------------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------------
class _Trainer:
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

    # setup -----------------------------------------------------------------------------------
    def _prepare_run_dir(self) -> None:
        error = None
        if self.d.is_main:
            try:
                self.ckdir.mkdir(parents=True, exist_ok=True)
                probe = self.ckdir / f".write-probe-{os.getpid()}"
                probe.write_bytes(b"")
                probe.unlink()
                ckpt.remove_stale_temp_files(self.ckdir)
            except OSError as exc:
                error = (f"the run directory {self.run_dir} is not writable: cannot create files in "
                         f"{self.ckdir} ({exc.strerror or exc}); choose another runs directory or "
                         "fix its permissions / free space")
            if error is None and not (self.run_dir / "config.yaml").exists():
                from harness.core.io import atomic_write_text
                try:
                    atomic_write_text(self.run_dir / "config.yaml", self.cfg.to_yaml())
                except OSError as exc:
                    error = f"cannot write {self.run_dir / 'config.yaml'}: {exc}"
        _all_ranks_ok(error, write=True)

    def _build_dataset(self, *, train: bool):
        from harness.core.data import DATASETS

        spec = self.cfg.dataset
        return DATASETS.get(spec.name)(spec.options, "train", train=train, seed=self.tc.seed)

    def _eval_train_split(self):
        """The training split with the deterministic evaluation transform (grids, after_training)."""
        if self._eval_dataset is None:
            self._eval_dataset = self._build_dataset(train=False)
        return self._eval_dataset

    def _setup(self) -> None:
        from methods import METHODS
        from methods.base import Runtime

        tc, d = self.tc, self.d
        self._prepare_run_dir()
        self.dataset = self._build_dataset(train=True)
        self.info = self.dataset.info
        try:
            self.sampler = ResumableSampler(len(self.dataset), tc.batch_size * tc.grad_accum,
                                            d.world_size, d.rank, tc.seed, tc.drop_last)
        except TooFewSamples as exc:  # the configuration's to fix: exit status 2
            from harness.core.config import ConfigError
            raise ConfigError(f"dataset '{self.cfg.dataset.name}': {exc}") from None
        self.spe = self.sampler.steps_per_epoch
        self.total = total_steps(self.spe, tc.epochs_constant, tc.epochs_decay, tc.max_steps)

        rng.seed_all(tc.seed)  # identical initialisation on every rank
        method_cls = METHODS.get(self.cfg.method.name)
        self.method = method_cls.build(self.cfg.method.config, self.info,
                                       Runtime(self.device, d.world_size, d.rank, self.spe))
        m = self.method
        m.to(self.device)
        convert_sync_batchnorm(m.nets, self.device, d, tc.sync_batchnorm)
        if tc.channels_last:
            to_channels_last([*m.nets.values(), *m.aux.values()])
        if tc.compile_generator:
            if m.generator_name in m.nets:
                compile_in_place(m.nets[m.generator_name])
            else:
                LOG.warning("train.compile_generator: method %s has no network %r; nothing compiled",
                            m.name, m.generator_name)
        if tc.precision != "fp32" and self.device.type == "cpu":
            LOG.info("precision %s on CPU: CPU autocast is used (numerically like GPU %s, usually "
                     "slower than fp32 on CPUs without bf16/fp16 units)", tc.precision, tc.precision)
        self.policy = RunnerPolicy(
            device=self.device, precision=tc.precision, grad_accum=tc.grad_accum,
            world_size=d.world_size, optimizer_names=tuple(m.optimizers()),
            find_unused_parameters=m.ddp_find_unused_parameters)
        m.policy = self.policy
        m.train()

    # resume ----------------------------------------------------------------------------------
    def _resume(self, resume: bool) -> tuple[int, dict | None]:
        """Load the latest checkpoint (rank 0 picks it, with fallback); returns (step, state)."""
        tc, d = self.tc, self.d
        path: Path | None = None
        state: dict | None = None
        error = None
        if d.is_main:
            try:
                if resume:
                    found = ckpt.read_latest(self.ckdir)
                    if found is not None:
                        path, state = found
                elif ckpt.list_checkpoints(self.ckdir):
                    error = (f"{self.run_dir} already holds checkpoints ({self.ckdir}); resume it, "
                             "or train into a new run directory")
            except ckpt.CheckpointError as exc:
                error = str(exc)
        _all_ranks_ok(error)
        path_text = hdist.broadcast_object(str(path) if path is not None else None)
        if path_text is None:
            rng.seed_all(tc.seed + d.rank)
            return 0, None
        path = Path(path_text)
        if state is None:  # ranks > 0 read the file rank 0 chose
            try:
                state = ckpt.read(path)
            except ckpt.CheckpointError as exc:
                raise ckpt.CheckpointError(f"rank {d.rank}: {exc} (with several nodes the run "
                                           "directory must be on a filesystem all nodes share)")
        ckpt.check_compatible(state, path, method=self.cfg.method.name,
                              dataset=self.cfg.dataset.name, info=self.info)
        if state.get("config_hash") != self.cfg.hash():
            now = _flat(self.cfg.to_dict())
            then = _flat(state.get("config") or {})
            diff = sorted(k for k in set(now) | set(then) if now.get(k) != then.get(k))
            LOG.warning("resuming %s with a changed configuration (%s)", path,
                        ", ".join(f"{k}: {then.get(k)!r} -> {now.get(k)!r}" for k in diff[:10]) +
                        (" ..." if len(diff) > 10 else ""))
        _load_method_state(self.method, state, path)
        self.policy.load_scaler_states(state.get("scalers") or {})
        step = int(state["step"])
        saved_rng = state.get("rng")
        if saved_rng and len(saved_rng) == d.world_size:
            rng.restore(saved_rng[d.rank])
        else:
            LOG.warning("checkpoint %s holds RNG states of %s processes, this run has %d: random "
                        "streams restart from the seed (resume is not bitwise exact)", path,
                        len(saved_rng) if saved_rng else "no", d.world_size)
            rng.seed_all(tc.seed + d.rank + 7919 * step)
        pos = state.get("sampler") or {}
        if pos.get("steps_per_epoch") not in (None, self.spe) or \
                pos.get("global_batch") not in (None, self.sampler.global_batch):
            LOG.warning("the data order differs from the checkpointed run (steps per epoch %s -> %d, "
                        "global batch %s -> %d): epochs restart at new boundaries",
                        pos.get("steps_per_epoch"), self.spe, pos.get("global_batch"),
                        self.sampler.global_batch)
        self.last_checkpoint = (path, step)
        best = ckpt.find_checkpoint(self.ckdir, ckpt.BEST)
        self.best_checkpoint = best if (self.ckdir / ckpt.BEST).exists() else None
        LOG.info("resuming from %s (step %d of %d, epoch %d)", path, step, self.total,
                 step // self.spe)
        return step, state

    # checkpoints -----------------------------------------------------------------------------
    def _save(self, step: int, *, finished: bool = False,
              after_training: dict | None = None) -> Path:
        states = hdist.all_gather_object(rng.capture())  # every rank's RNG, to rank 0
        error, path = None, None
        if self.d.is_main:
            state = ckpt.make_state(
                method=self.method, cfg=self.cfg, info=self.info, step=step, finished=finished,
                sampler=self.sampler.position(step), scalers=self.policy.scaler_states(),
                rng=states, world_size=self.d.world_size,
                schedule={"lr_factor": lr_factor(step, self.spe, self.tc.epochs_constant,
                                                  self.tc.epochs_decay),
                          "total_steps": self.total, "steps_per_epoch": self.spe},
                after_training=after_training)
            nonfinite = finite.check_before_saving(state["method"]["state"], step=step,
                                                   last=self.last_checkpoint,
                                                   precision=self.tc.precision)
            if nonfinite is not None:  # never written: 'latest'/'best' keep the finite one
                error = nonfinite
            else:
                try:
                    path = ckpt.write(self.ckdir, state, keep_last=self.tc.keep_last,
                                      check_finite=False)  # checked just above
                except ckpt.CheckpointError as exc:
                    error = exc
        _all_ranks_ok(error)
        path = Path(hdist.broadcast_object(str(path) if path is not None else None))
        self.last_checkpoint = (path, step)
        if self.best_metric is not None:
            value = float(self.best_metric(self.method, step))
            if self.d.is_main:
                previous = ckpt.best_metric(self.ckdir)
                if previous is None or value < previous:
                    ckpt.set_best(self.ckdir, path, value)
                    self.best_checkpoint = path
        return path

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

    # the loop --------------------------------------------------------------------------------
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
            image = grid(self.method, self._grid_batch, seed=self.tc.seed)
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

    # the end ---------------------------------------------------------------------------------
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
        if self.best_metric is None and self.d.is_main:
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
