"""What surrounds one training session in this process: where the runner's log lines go (rank 0
speaks for the run) and the determinism flags, restored afterwards."""
from __future__ import annotations

import contextlib
import logging
import sys
from typing import Iterator

import torch

from harness.core import dist as hdist
from harness.train.placement import configure_determinism

LOG = logging.getLogger("harness.train")


class _RankFilter(logging.Filter):
    """Ranks > 0 only report errors (rank 0 speaks for the run)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


@contextlib.contextmanager
def log_setup(d: hdist.DistInfo) -> Iterator[None]:
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
def determinism(deterministic: bool, device: torch.device) -> Iterator[None]:
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
