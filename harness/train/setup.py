"""Setting a training up: the run directory checked writable, the dataset and its resumable sampler,
the method built and placed on the device with the runner's policy, and the resume from the latest
checkpoint (exact: weights, optimisers, scalers, every rank's RNG, the data position)."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from harness.core import dist as hdist
from harness.train import checkpoint as ckpt
from harness.train import rng
from harness.train.placement import compile_in_place, convert_sync_batchnorm, to_channels_last
from harness.train.policy import RunnerPolicy
from harness.train.restore import load_method_state
from harness.train.sampler import ResumableSampler, TooFewSamples
from harness.train.saving import all_ranks_ok
from harness.train.schedule import total_steps

LOG = logging.getLogger("harness.train")


def flat_dict(d: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as {"a.b.c": value} (to name the keys a resumed configuration changed)."""
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(flat_dict(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): d}


class TrainerSetup:
    """Setup and resume of :class:`harness.train.trainer.Trainer` (a mixin on its state)."""

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
        all_ranks_ok(error, write=True)

    def _build_dataset(self, *, train: bool):
        """The training split less the held-out slice (harness.train.holdout): the images the
        run trains on, and the only ones grids and after_training (K-means) read."""
        from harness.core.data import DATASETS
        from harness.train.holdout import HoldoutError, split_holdout

        spec = self.cfg.dataset
        full = DATASETS.get(spec.name)(spec.options, "train", train=train, seed=self.tc.seed)
        try:
            part, _ = split_holdout(full, self.tc.holdout, self.tc.holdout_seed)
        except HoldoutError as exc:  # the configuration's to fix: exit status 2
            from harness.core.config import ConfigError
            raise ConfigError(f"dataset '{spec.name}': {exc}") from None
        return part

    def _record_holdout(self) -> None:
        """<run>/data/holdout.json: the keys trained on and the keys held out (rank 0)."""
        from harness.core.data import DATASETS
        from harness.train.holdout import split_holdout, write_holdout_record

        if not self.d.is_main:
            return
        spec = self.cfg.dataset
        full = DATASETS.get(spec.name)(spec.options, "train", train=False, seed=self.tc.seed)
        part, held = split_holdout(full, self.tc.holdout, self.tc.holdout_seed)
        write_holdout_record(self.run_dir, part, held, self.tc.holdout, self.tc.holdout_seed)

    def _eval_train_split(self):
        """The training split (less the held-out slice) with the deterministic evaluation
        transform (grids, after_training)."""
        if self._eval_dataset is None:
            self._eval_dataset = self._build_dataset(train=False)
        return self._eval_dataset

    def _setup(self) -> None:
        from methods import METHODS
        from methods.base import Runtime

        tc, d = self.tc, self.d
        self._prepare_run_dir()
        self.dataset = self._build_dataset(train=True)
        self._record_holdout()
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
        all_ranks_ok(error)
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
            now = flat_dict(self.cfg.to_dict())
            then = flat_dict(state.get("config") or {})
            diff = sorted(k for k in set(now) | set(then) if now.get(k) != then.get(k))
            LOG.warning("resuming %s with a changed configuration (%s)", path,
                        ", ".join(f"{k}: {then.get(k)!r} -> {now.get(k)!r}" for k in diff[:10]) +
                        (" ..." if len(diff) > 10 else ""))
        load_method_state(self.method, state, path)
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
