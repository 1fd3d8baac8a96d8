"""What stops a training run, and the one message that says why and what to do next.

- a non-finite loss (``methods.base.NonFiniteLoss`` from ``run_phases``) -> NonFiniteLossError
  with the step, the loss terms and the last good checkpoint;
- GPU out of memory -> OutOfMemory with the batch size, resolution, world size, precision and
  the settings that keep the effective batch while needing less memory;
- SIGTERM / SIGINT -> a checkpoint at the next step boundary, then TrainingInterrupted saying how
  to resume (a second Ctrl-C aborts at once).

All are ``TrainingError``; a command-line front end prints ``str(exc)`` and exits with
``exc.exit_code`` (1, or 128 + signal number for an interruption).
"""
from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType


class TrainingError(RuntimeError):
    """Training stopped for a reason the message explains (no traceback needed)."""
    exit_code = 1


class NonFiniteLossError(TrainingError):
    def __init__(self, message: str, *, step: int, phase: str, terms: dict[str, float],
                 checkpoint: Path | None) -> None:
        super().__init__(message)
        self.step, self.phase, self.terms, self.checkpoint = step, phase, terms, checkpoint


class OutOfMemory(TrainingError):
    pass


class TrainingInterrupted(TrainingError):
    def __init__(self, message: str, *, signum: int, step: int, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        self.exit_code = 128 + signum


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def nonfinite_message(*, phase: str, step: int, epoch: int, terms: dict[str, float],
                      checkpoint: Path | None, checkpoint_step: int | None, lr: dict[str, float],
                      precision: str) -> str:
    bad = [k for k, v in terms.items() if not (v == v and abs(v) != float("inf"))]
    terms_text = ", ".join(f"{k}={_fmt(v)}" for k, v in terms.items())
    lines = [f"training stopped: non-finite loss in phase '{phase}' at step {step} (epoch {epoch}): "
             f"{terms_text} (non-finite: {', '.join(bad) or '?'})"]
    if lr:
        lines.append("learning rates at that step: " +
                     ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(lr.items())))
    if checkpoint is not None:
        lines.append(f"last good checkpoint: {checkpoint} (step {checkpoint_step}); running the same "
                     "command again resumes from it")
    else:
        lines.append("no checkpoint was written before the failure (train.checkpoint_every sets "
                     "how often one is written)")
    hints = ["a lower learning rate"]
    if precision == "fp16":
        hints.append("train.precision=bf16 or fp32 (fp16 overflows more easily)")
    elif precision == "bf16":
        hints.append("train.precision=fp32")
    lines.append("to get past it try " + " or ".join(hints) + "; the config hash changes with "
                 "these settings, so start a new run directory or pass the override explicitly")
    return "\n".join(lines)


def oom_message(*, step: int, batch_size: int, grad_accum: int, image_size: tuple[int, int],
                world_size: int, precision: str, device: str, peak_gib: float | None = None,
                total_gib: float | None = None) -> str:
    h, w = image_size
    effective = batch_size * grad_accum * world_size
    mem = ""
    if total_gib is not None:
        mem = f" ({total_gib:.1f} GiB" + (f", {peak_gib:.1f} GiB allocated at peak" if peak_gib
                                          is not None else "") + ")"
    lines = [
        f"out of GPU memory at step {step} on {device}{mem}.",
        f"  per GPU: {batch_size} image(s) of {w}x{h} (W x H) per micro-batch, grad_accum "
        f"{grad_accum}; world size {world_size}; effective batch {effective}; precision {precision}.",
        "  ways to need less memory per GPU while keeping the effective batch:",
    ]
    if batch_size > 1:
        lines.append(f"  - train.batch_size=1 train.grad_accum={batch_size * grad_accum} (one image "
                     "per micro-batch; BatchNorm then sees one image at a time)")
    lines.append(f"  - more GPUs: torchrun --nproc_per_node K with train.batch_size x grad_accum = "
                 f"{batch_size * grad_accum * world_size} / K")
    if precision == "fp32":
        lines.append("  - train.precision=bf16 (autocast; roughly halves activation memory)")
    if batch_size == 1 and grad_accum == 1 and world_size == 1:
        lines.append("  - this is already one image per GPU: a smaller crop (dataset.crop_size) or a "
                     "GPU with more memory is needed")
    return "\n".join(lines)


class StopSignals:
    """Turns SIGTERM / SIGINT into a request to stop at the next step boundary.

    Handlers are installed only in the main thread (Python allows no other). A second SIGINT
    while a stop is pending raises KeyboardInterrupt immediately.
    """

    def __init__(self, signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM), *,
                 announce: bool = True) -> None:
        self.signals = signals
        self.announce = announce
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        if not self.announce:
            return
        sys.stderr.write(f"\n{signal.Signals(signum).name} received: saving a checkpoint at the end "
                         "of this step, then stopping (Ctrl-C again to abort without saving)\n")
        sys.stderr.flush()

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()
