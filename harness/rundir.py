"""A run directory: where one configuration's training, samples and metrics live.

Layout (``runs/<dataset>/<method>/<run-id>/``)::

    config.yaml            resolved configuration (its identity hash in the header)
    run.json               status and timings of every stage
    checkpoints/           the runner's checkpoints ('latest', 'best', step files)
    train_log.jsonl        one JSON line per logged training step
    train_samples/         sample grids written during training
    samples/<protocol id>/<inference>/seed<k>/<key>.png        generated images (lossless)
    samples/<protocol id>/<inference>/diversity/<key>/<j>.png  extra samples for LPIPS
    samples/<protocol id>/<inference>/manifest.json            key -> file, seed, method, ...
    metrics.json           {"schema": 1, "evaluations": {"<protocol id>/<inference>": record}}

The run id is ``<cfg.name>-<first 10 hex of the config identity hash>``: the same configuration
always maps to the same directory (so re-running resumes) and runtime-only fields (workers,
device, logging cadence) do not change it.
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from harness.core.records import METRICS_FILE
from harness.core.config import ConfigError, ExperimentConfig
from harness.experiment import load_resolved
from harness.interrupt import stop_signals_raise, was_interrupted
from harness.core.io import (OutputError, atomic_write_json, atomic_write_text, fsync_dir,
                             read_json)

CONFIG_FILE = "config.yaml"
STATUS_FILE = "run.json"
MANIFEST_FILE = "manifest.json"


class RunError(ValueError):
    """A run directory is missing, incomplete or belongs to another configuration."""


def default_run_id(cfg: ExperimentConfig) -> str:
    return f"{cfg.name}-{cfg.hash()[:10]}"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _check_run_id(run_id: str) -> str:
    if not run_id or run_id in (".", "..") or "/" in run_id or "\\" in run_id or run_id.startswith("."):
        raise RunError(f"invalid run id {run_id!r}: use a plain folder name (no slashes, no "
                       "leading dot)")
    return run_id


@dataclass(frozen=True)
class RunDir:
    path: Path

    # creation and lookup ---------------------------------------------------------------------
    @classmethod
    def for_config(cls, cfg: ExperimentConfig, runs_dir: str | Path = "runs",
                   run_id: str | None = None) -> "RunDir":
        rid = _check_run_id(run_id or default_run_id(cfg))
        return cls(Path(runs_dir) / cfg.dataset.name / cfg.method.name / rid)

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        """An existing run directory (must hold config.yaml)."""
        p = Path(path)
        if not p.is_dir():
            raise RunError(f"run directory {p} does not exist")
        if not (p / CONFIG_FILE).is_file():
            raise RunError(f"{p} is not a run directory: it has no {CONFIG_FILE} (expected "
                           "runs/<dataset>/<method>/<run-id>/ as written by `harness run`, "
                           "`harness train` or `harness import-official`)")
        return cls(p)

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def exists(self) -> bool:
        return (self.path / CONFIG_FILE).is_file()

    # files -----------------------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def status_file(self) -> Path:
        return self.path / STATUS_FILE

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def train_log(self) -> Path:
        return self.path / "train_log.jsonl"

    @property
    def train_samples(self) -> Path:
        return self.path / "train_samples"

    def samples_dir(self, protocol_id: str, inference: str) -> Path:
        return self.path / "samples" / protocol_id / inference

    def manifest_file(self, protocol_id: str, inference: str) -> Path:
        return self.samples_dir(protocol_id, inference) / MANIFEST_FILE

    # configuration ---------------------------------------------------------------------------
    def load_config(self) -> ExperimentConfig:
        return load_resolved(self.config_file)

    def write_config(self, cfg: ExperimentConfig) -> None:
        """Write config.yaml; an existing one must describe the same configuration identity."""
        if self.config_file.is_file():
            try:
                old = self.load_config()
            except ConfigError as exc:
                raise RunError(f"{self.config_file} cannot be read back ({exc}); move the run "
                               "directory away or pass --fresh") from exc
            if old.hash() != cfg.hash():
                raise RunError(
                    f"{self.path} holds a run of another configuration (hash {old.hash()[:10]}, "
                    f"this one is {cfg.hash()[:10]}); choose another --run-id or pass --fresh "
                    "to replace it")
        atomic_write_text(self.config_file, cfg.to_yaml())

    def check_replaceable(self) -> None:
        """Refuse to delete or replace a folder that does not look like a run directory."""
        markers = (CONFIG_FILE, STATUS_FILE, METRICS_FILE, "checkpoints")
        if not self.path.is_dir() or not any((self.path / m).exists() for m in markers):
            raise OutputError(f"refusing to delete {self.path}: it does not look like a run "
                              f"directory (none of {', '.join(markers)} inside)")

    def clear(self) -> None:
        """Delete this run directory (only if it looks like one) for ``--fresh``."""
        if not self.path.exists():
            return
        self.check_replaceable()
        shutil.rmtree(self.path)

    @contextmanager
    def staging(self) -> Iterator["RunDir"]:
        """A hidden sibling folder to build a replacement of this run in; removed if the body
        fails (after a successful :func:`replace_run` it no longer exists)."""
        tmp = RunDir(self.path.parent / f".{self.run_id}.new-{os.getpid()}")
        shutil.rmtree(tmp.path, ignore_errors=True)  # a leftover of a killed earlier attempt
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp.path, ignore_errors=True)

    # status ----------------------------------------------------------------------------------
    def status(self) -> dict:
        if not self.status_file.is_file():
            return {"run_id": self.run_id, "stages": {}}
        return read_json(self.status_file, expect=dict)

    def stage(self, name: str) -> dict | None:
        return self.status().get("stages", {}).get(name)

    def stage_done(self, name: str) -> bool:
        st = self.stage(name)
        return bool(st) and st.get("status") == "done"

    def set_stage(self, name: str, **fields: Any) -> None:
        try:
            data = self.status()
            data.setdefault("run_id", self.run_id)
            stage = dict(data.setdefault("stages", {}).get(name) or {})
            stage.update(fields)
            data["stages"][name] = stage
            data["updated"] = _now()
            atomic_write_json(self.status_file, data)
        except (OSError, ValueError) as exc:
            if fields.get("status") != "failed":
                raise
            # Recording a failure must not hide it: on a full disk the error being reported
            # (a sample, a checkpoint) matters more than run.json's note of it.
            logging.getLogger("harness").info("could not record stage %s as failed: %s", name,
                                              exc)

    def update_status(self, **fields: Any) -> None:
        data = self.status()
        data.update(fields)
        data["updated"] = _now()
        atomic_write_json(self.status_file, data)

    @contextmanager
    def stage_timer(self, name: str, **fields: Any) -> Iterator[dict]:
        """Mark a stage running, then done (with its wall time), failed (with the error) or
        interrupted (Ctrl-C / SIGTERM).

        The yielded dict may be filled with a summary that is stored with the stage."""
        summary: dict = {}
        start = time.perf_counter()
        self.set_stage(name, status="running", started=_now(), **fields)
        try:
            with stop_signals_raise():
                yield summary
        except BaseException as exc:
            self.set_stage(name, status=stage_outcome(exc), finished=_now(),
                           seconds=round(time.perf_counter() - start, 3),
                           error=f"{type(exc).__name__}: {exc}"[:2000])
            raise
        self.set_stage(name, status="done", finished=_now(),
                       seconds=round(time.perf_counter() - start, 3), error=None, **summary)


def stage_outcome(exc: BaseException) -> str:
    """The status a stage ended by ``exc`` gets in run.json: 'interrupted' or 'failed'."""
    return "interrupted" if was_interrupted(exc) else "failed"


def replace_run(new: RunDir, target: RunDir) -> None:
    """Put the complete run ``new`` (a sibling folder) in place of ``target``: the old run is
    renamed aside, the new one renamed in (each rename atomic), then the old one deleted. If the
    second rename fails, the old run is renamed back: ``target`` is always a whole run."""
    old = target.path.parent / f".{target.run_id}.old-{os.getpid()}"
    had_old = target.path.exists()
    try:
        if had_old:
            shutil.rmtree(old, ignore_errors=True)
            os.rename(target.path, old)
        try:
            os.rename(new.path, target.path)
        except BaseException:
            if had_old:
                os.rename(old, target.path)
            raise
    except OSError as exc:
        raise OutputError(exc.errno, f"cannot replace {target.path} by {new.path}: "
                                     f"{exc.strerror or exc}; {target.path} is unchanged") from exc
    fsync_dir(target.path.parent)
    if had_old:
        shutil.rmtree(old, ignore_errors=True)


def find_runs(runs_dir: str | Path) -> list[RunDir]:
    """Every run directory under ``runs_dir`` (``<dataset>/<method>/<run-id>/config.yaml``)."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    # Dot-names are not runs: lock files and import-official's half-built / outgoing copies.
    return [RunDir(p.parent) for p in sorted(root.glob(f"*/*/*/{CONFIG_FILE}"))
            if not any(part.startswith(".") for part in p.relative_to(root).parts)]
