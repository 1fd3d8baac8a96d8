"""Training logs on rank 0: ``<run>/train_log.jsonl`` always, TensorBoard when installed.

One JSON object per logged step::

    {"step": 200, "epoch": 3, "lr": {"G": 0.0001, "D": 0.0004},
     "loss": {"G_GAN": 0.91, ...}, "images_per_s": 51.2, "time_s": 812.4,
     "wall": "2025-01-01T12:00:00+00:00", "gpu_mem_max_gib": 7.9}

``loss`` holds the mean of each term over the steps since the previous line and over all
ranks, i.e. what one process with the combined batch would log. After a resume, lines of steps
after the checkpoint (logged before the interruption) are removed, so the file reads as one run.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
from pathlib import Path
from typing import Any

from harness.core.io import atomic_write_text

LOG = logging.getLogger("harness.train")
LOG_FILE = "train_log.jsonl"
TB_DIR = "tensorboard"


class MetricsLog:
    def __init__(self, run_dir: Path, *, enabled: bool, tensorboard: bool) -> None:
        self.path = run_dir / LOG_FILE
        self.enabled = enabled
        self._tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                LOG.info("TensorBoard is not installed (pip install 'sis-harness[tensorboard]'); "
                         "logging to %s only", self.path)
            else:
                self._tb = SummaryWriter(str(run_dir / TB_DIR))

    def truncate_after(self, step: int) -> None:
        """Drop lines of steps > ``step`` (written after the checkpoint a run resumes from)."""
        if not self.enabled or not self.path.is_file():
            return
        kept, dropped = [], 0
        for line in self.path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) > step:
                    dropped += 1
                    continue
            except json.JSONDecodeError:
                dropped += 1  # a line cut by a crash
                continue
            kept.append(line)
        if dropped:
            atomic_write_text(self.path, "".join(k + "\n" for k in kept))

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = dict(record)
        record["wall"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        with open(self.path, "a") as f:
            f.write(json.dumps(record, sort_keys=False) + "\n")
        if self._tb is not None:
            step = record["step"]
            for k, v in record.get("loss", {}).items():
                self._tb.add_scalar(f"loss/{k}", v, step)
            for k, v in record.get("lr", {}).items():
                self._tb.add_scalar(f"lr/{k}", v, step)
            if record.get("images_per_s") is not None:
                self._tb.add_scalar("speed/images_per_s", record["images_per_s"], step)

    def image(self, tag: str, chw_uint8, step: int) -> None:
        if self._tb is not None:
            self._tb.add_image(tag, chw_uint8, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
