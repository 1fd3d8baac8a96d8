"""What a leaderboard row ran: the training budget and the command, read from the run folder.

A record's metrics.json sits in its run directory beside ``config.yaml`` (the resolved
configuration, whose ``# layer:`` comments name every preset, ``--config`` file and ``--set``
override it was built from) and ``train_log.jsonl`` (the steps actually trained). From those
this module derives a short budget text ("8 steps, batch 4, 64 px, preset spade-synthetic") and
the command that reproduces the run. Nothing is guessed: a missing file gives ``None`` fields,
shown as "budget not recorded".
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from harness.results.store import Record

# harness method name -> how papers write it
DISPLAY_NAMES = {"ccfpse": "CC-FPSE", "spade": "SPADE", "pix2pixhd": "pix2pixHD",
                 "groupdnet": "GroupDNet", "oasis": "OASIS", "crn": "CRN", "sims": "SIMS"}


def display_name(method: str | None) -> str:
    if not method:
        return "?"
    return DISPLAY_NAMES.get(method.lower(), method)


@dataclass(frozen=True)
class RunInfo:
    run_dir: Path | None
    preset: str | None = None            # the configuration's name (experiment preset)
    planned_steps: int | None = None     # max_steps, when set
    epochs: int | None = None            # epochs_constant + epochs_decay
    steps_done: int | None = None        # last step of train_log.jsonl
    batch_size: int | None = None        # global batch per step (batch x grad_accum)
    resolution: str | None = None        # training crop / generation size
    command: str | None = None           # reproduces the run
    external: bool = False               # an image folder, not a run of this harness
    images_dir: str | None = None

    @property
    def budget(self) -> str:
        """Short budget text: '8 steps, batch 4, 64 px, preset spade-synthetic'."""
        if self.external:
            return "external images (not trained here)"
        parts = []
        if self.steps_done is not None:
            parts.append(f"{self.steps_done} steps")
        elif self.planned_steps is not None:
            parts.append(f"{self.planned_steps} steps planned")
        elif self.epochs is not None:
            parts.append(f"{self.epochs} epochs")
        if self.batch_size is not None:
            parts.append(f"batch {self.batch_size}")
        if self.resolution:
            parts.append(self.resolution)
        if self.preset:
            parts.append(f"preset {self.preset}")
        return ", ".join(parts) if parts else "budget not recorded"

    @property
    def short_budget(self) -> str:
        """The budget without the preset (for narrow tables)."""
        if self.external:
            return "external"
        if self.steps_done is not None:
            head = f"{self.steps_done} steps"
        elif self.planned_steps is not None:
            head = f"{self.planned_steps} steps"
        elif self.epochs is not None:
            head = f"{self.epochs} ep."
        else:
            return "budget n/r"
        return head + (f", bs {self.batch_size}" if self.batch_size is not None else "") + \
            (f", {self.resolution}" if self.resolution else "")


def _layers(config_text: str) -> list[str]:
    return [line.split(":", 1)[1].strip() for line in config_text.splitlines()
            if line.startswith("# layer:")]


def command_from_layers(method: str, dataset: str, layers: Iterable[str]) -> str:
    """The `run` command equivalent to a resolved config's layers (presets are implied by
    --method / --dataset; other files become --config, overrides --set)."""
    parts = ["python -m harness run", f"--method {method}", f"--dataset {dataset}"]
    for layer in layers:
        if layer.startswith("--set "):
            value = layer[len("--set "):]
            parts.append(f"--set '{value}'" if any(c in value for c in " []{}*") else
                         f"--set {value}")
        elif "/configs/" in layer.replace("\\", "/"):
            continue                      # a preset, selected by --method / --dataset
        elif layer:
            parts.append(f"--config {layer}")
    return " ".join(parts)


def _last_step(log: Path) -> int | None:
    try:
        lines = log.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            step = json.loads(line).get("step")
        except (ValueError, AttributeError):
            continue
        if isinstance(step, int):
            return step
    return None


def run_info(record: Record) -> RunInfo:
    """The budget and command of the run ``record`` came from (its metrics.json's folder)."""
    raw: dict[str, Any] = record.raw or {}
    if raw.get("external") or (record.method == record.variant and record.run_id is None):
        return RunInfo(None, external=True, images_dir=raw.get("images_dir"))
    run_dir = record.source.parent
    cfg_path = run_dir / "config.yaml"
    try:
        text = cfg_path.read_text(encoding="utf-8")
        cfg = yaml.safe_load(text) or {}
    except (OSError, yaml.YAMLError):
        return RunInfo(run_dir)
    train = cfg.get("train") or {}
    data = cfg.get("dataset") or {}
    method = (cfg.get("method") or {}).get("name") or record.method or "?"
    epochs = None
    if isinstance(train.get("epochs_constant"), int):
        epochs = train["epochs_constant"] + int(train.get("epochs_decay") or 0)
    batch = train.get("batch_size")
    if isinstance(batch, int) and isinstance(train.get("grad_accum"), int):
        batch *= train["grad_accum"]
    size = data.get("crop_size")
    res = None
    if isinstance(size, int):
        ratio = data.get("aspect_ratio") or 1.0
        res = f"{size} px" if ratio == 1.0 else f"{size}x{int(round(size / ratio))} px"
    return RunInfo(run_dir, preset=cfg.get("name"), planned_steps=train.get("max_steps"),
                   epochs=epochs, steps_done=_last_step(run_dir / "train_log.jsonl"),
                   batch_size=batch if isinstance(batch, int) else None, resolution=res,
                   command=command_from_layers(method, data.get("name") or record.dataset,
                                               _layers(text)))


def row_label(method: str | None, variant: str | None, info: RunInfo | None) -> str:
    """Display label of a reproduced row: 'SPADE (ours, 8 steps, bs 4, 64 px)'; an external
    row keeps its own label."""
    if info is not None and info.external:
        return f"{variant or method} (external)"
    name = display_name(method)
    return f"{name} ({info.short_budget})" if info is not None else name


def with_budgets(board, records: list[Record]):
    """The leaderboard with each reproduced row's ``budget`` set from its runs' folders
    (several runs with different budgets: all of them, joined by '; ')."""
    from dataclasses import replace

    infos: dict[Path, RunInfo] = {}

    def budget(table_id: str, row) -> str | None:
        variant = row.variant.split(" [")[0] if row.variant else row.variant
        texts = []
        for r in records:
            if (r.table_id, r.method, r.variant, r.inference) != (table_id, row.method, variant,
                                                                  row.inference):
                continue
            info = infos.setdefault(r.source, run_info(r))
            if info.external or info.run_dir is None or not (info.run_dir / "config.yaml").is_file():
                continue
            if info.short_budget not in texts:
                texts.append(info.short_budget)
        return "; ".join(texts) or None

    sections = []
    for section in board.sections:
        tables = tuple(replace(t, rows=tuple(replace(row, budget=budget(t.protocol_id, row))
                                             for row in t.rows))
                       for t in section.tables)
        sections.append(replace(section, tables=tables))
    return replace(board, sections=tuple(sections))
