"""Writing the runner's checkpoints: the full state gathered from every rank, never a non-finite
one, the 'best' pointer; and how an error rank 0 meets reaches every rank."""
from __future__ import annotations

from pathlib import Path

from harness.core import dist as hdist
from harness.train import checkpoint as ckpt
from harness.train import finite, rng
from harness.train.guards import TrainingError
from harness.train.schedule import lr_factor


def all_ranks_ok(error: str | BaseException | None, *, write: bool = False) -> None:
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


class TrainerCheckpoints:
    """The checkpoint writing of :class:`harness.train.trainer.Trainer` (a mixin on its state:
    cfg, tc, d, method, info, sampler, policy, spe, total, ckdir, best_metric)."""

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
        all_ranks_ok(error)
        path = Path(hdist.broadcast_object(str(path) if path is not None else None))
        self.last_checkpoint = (path, step)
        if self.best_metric is not None and self._selection_due(step, finished):
            value = self.best_metric(self.method, step)
            # None: the selection metric could not be computed (its reason is logged by the
            # selector); the pointer stays, and the final checkpoint is 'best' if none was chosen.
            if value is not None and self.d.is_main:
                value = float(value)
                previous = ckpt.best_metric(self.ckdir)
                if previous is None or value < previous:
                    ckpt.set_best(self.ckdir, path, value)
                    self.best_checkpoint = path
        return path

    def _selection_due(self, step: int, finished: bool) -> bool:
        """Checkpoints scored for selection: every ``train.select_every`` steps and the final one
        (every checkpoint when select_every is 0 and a best_metric is given: the API's old rule)."""
        every = getattr(self.tc, "select_every", 0)
        return finished or not every or step % every == 0
