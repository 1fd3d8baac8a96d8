"""The training runner: one loop for every method, from one CPU to many GPUs (torchrun).

Public entry points::

    from harness.train import train, restore_method
    result = train(cfg, run_dir)                 # trains or resumes; TrainResult
    method = restore_method(run_dir, which="best", device="cuda")

See docs/training.md.
"""
from harness.train.checkpoint import CheckpointError, CheckpointMismatch, NonFiniteCheckpoint
from harness.train.finite import NonFiniteStateError
from harness.train.guards import (NonFiniteLossError, OutOfMemory, TrainingError,
                                  TrainingInterrupted)
from harness.train.restore import restore_method
from harness.train.trainer import TrainResult, train

__all__ = ["CheckpointError", "CheckpointMismatch", "NonFiniteCheckpoint", "NonFiniteLossError",
           "NonFiniteStateError", "OutOfMemory",
           "TrainResult", "TrainingError", "TrainingInterrupted", "restore_method", "train"]
