"""What a run cost: measured by the train and generate stages, recorded in ``<run>/cost.json``.

``cost.json`` = ``{"schema": 1, "params": {net: count}, "train": {...},
"generate": {"<protocol id>/<inference>": {...}}}``:

- ``params``: trainable-parameter count of each network (G, D, E, ...) of the loaded method.
- ``train``: steps, images seen (steps x global batch), wall-clock seconds of training summed
  over every session (a resumed run adds each session's time), device-hours (wall-clock x the
  number of devices of each session: world size), peak memory of the last session and the device name. Absent
  for a checkpoint-only run (``import-official``, a plugin that cannot train): those fill the
  inference fields only.
- ``generate``: seconds per generated image (wall-clock of the generate stage / images generated
  now; images linked from another protocol's identical set do not count), peak memory, device.

Peak memory: on a GPU ``torch.cuda.max_memory_allocated`` (its counter is reset at the start of
the measured stage); on the CPU the process's peak resident set size from
``resource.getrusage`` (ru_maxrss: the process peak so far, it cannot be reset, so a generate
stage run in the same process after training reports at least the training's peak).
"""
from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch

from harness.core.io import atomic_write_json, read_json

COST_FILE = "cost.json"
SCHEMA = 1


def device_name(device: Any) -> str:
    """'NVIDIA H100 80GB HBM3' on a GPU, 'cpu: <processor>' on the CPU."""
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(dev)
    proc = _cpu_model() or platform.processor() or platform.machine()
    return f"{dev.type}: {proc}" if proc else dev.type


def _cpu_model() -> str | None:
    try:  # Linux: the CPU's marketing name, e.g. 'AMD EPYC 7B13'
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def peak_rss_bytes() -> int | None:
    """Peak resident set size of this process (Linux reports KiB, macOS bytes)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if platform.system() == "Darwin" else peak * 1024)


class PeakMemory:
    """Peak memory over a block: CUDA max allocated on a GPU, the process peak RSS on the CPU."""

    def __init__(self, device: Any) -> None:
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.cuda = self.device.type == "cuda" and torch.cuda.is_available()

    def __enter__(self) -> "PeakMemory":
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.start

    def record(self) -> dict:
        if self.cuda:
            return {"peak_memory_bytes": int(torch.cuda.max_memory_allocated(self.device)),
                    "peak_memory_kind": "cuda_max_allocated"}
        return {"peak_memory_bytes": peak_rss_bytes(), "peak_memory_kind": "cpu_peak_rss"}


def param_counts(nets: Mapping[str, torch.nn.Module]) -> dict[str, int]:
    """Trainable parameters of each network (what the papers' parameter counts count)."""
    return {name: int(sum(p.numel() for p in net.parameters() if p.requires_grad))
            for name, net in nets.items()}


def read_cost(run_dir: str | Path) -> dict:
    p = Path(run_dir) / COST_FILE
    if not p.is_file():
        return {"schema": SCHEMA}
    try:
        data = read_json(p, expect=dict)
    except (OSError, ValueError):
        return {"schema": SCHEMA}
    return data


def _update(run_dir: Path, **fields: Any) -> dict:
    data = read_cost(run_dir)
    data["schema"] = SCHEMA
    for k, v in fields.items():
        if isinstance(v, dict) and isinstance(data.get(k), dict) and k == "generate":
            data[k].update(v)
        else:
            data[k] = v
    atomic_write_json(Path(run_dir) / COST_FILE, data)
    return data


def record_training(run_dir: str | Path, summary: Mapping[str, Any], seconds: float,
                    peak: PeakMemory, *, nets: Mapping[str, torch.nn.Module] | None = None) -> dict:
    """After a training session: add its wall-clock to the run's total (a resumed run's earlier
    sessions stay counted) and store steps, images seen, device-hours and peak memory."""
    run_dir = Path(run_dir)
    before = read_cost(run_dir).get("train") or {}
    steps = int(summary.get("steps") or 0)
    world = int(summary.get("world_size") or 1)
    wall = float(before.get("wall_seconds") or 0.0) + float(seconds)
    # device-hours: each session's wall-clock x its own number of devices
    hours = float(before.get("device_hours") or 0.0) + float(seconds) * world / 3600.0
    train = {
        "steps": steps,
        "images_seen": steps * int(summary.get("global_batch") or 0),
        "global_batch": summary.get("global_batch"),
        "wall_seconds": round(wall, 3),
        "sessions": int(before.get("sessions") or 0) + 1,
        "devices": world,
        "device_hours": round(hours, 6),
        "finished": True,
        "device": device_name(summary.get("device")),
        "precision": summary.get("precision"),
        **peak.record(),
    }
    fields: dict[str, Any] = {"train": train}
    if nets is not None:
        fields["params"] = param_counts(nets)
    return _update(run_dir, **fields)


def record_interrupted(run_dir: str | Path, seconds: float, world_size: int) -> dict:
    """A training session that stopped (interrupted, failed): its wall-clock still counts
    towards the run's training time when it is resumed."""
    run_dir = Path(run_dir)
    train = dict(read_cost(run_dir).get("train") or {})
    wall = float(train.get("wall_seconds") or 0.0) + float(seconds)
    hours = float(train.get("device_hours") or 0.0) + float(seconds) * world_size / 3600.0
    train.update(wall_seconds=round(wall, 3), sessions=int(train.get("sessions") or 0) + 1,
                 device_hours=round(hours, 6), finished=False)
    return _update(run_dir, train=train)


def record_generation(run_dir: str | Path, key: str, *, generated: int, seconds: float,
                      peak: PeakMemory, nets: Mapping[str, torch.nn.Module] | None = None) -> dict:
    """After a generate stage: seconds per generated image for ``key`` (protocol id/inference)."""
    gen = {"images": int(generated), "seconds": round(float(seconds), 3),
           "seconds_per_image": round(seconds / generated, 6) if generated else None,
           "device": device_name(peak.device), **peak.record()}
    fields: dict[str, Any] = {"generate": {key: gen}}
    if nets is not None:
        fields["params"] = param_counts(nets)
    return _update(Path(run_dir), **fields)


def iter_cost_fields(cost: Mapping[str, Any], key: str) -> Iterator[tuple[str, Any]]:
    """The leaderboard's cost columns of one evaluation ``key`` (None where not measured)."""
    params = cost.get("params") or {}
    train = cost.get("train") or {}
    gen = (cost.get("generate") or {}).get(key) or {}
    for net in ("G", "D", "E"):
        yield f"params_{net}", params.get(net)
    yield "train_steps", train.get("steps")
    yield "train_images", train.get("images_seen")
    yield "train_hours", (round(train["wall_seconds"] / 3600.0, 4)
                          if train.get("wall_seconds") is not None else None)
    yield "device_hours", train.get("device_hours")
    yield "train_peak_mem_gib", _gib(train.get("peak_memory_bytes"))
    yield "gen_s_per_image", gen.get("seconds_per_image")
    yield "gen_peak_mem_gib", _gib(gen.get("peak_memory_bytes"))
    yield "device", gen.get("device") or train.get("device")


def _gib(n: Any) -> float | None:
    return round(n / 2**30, 3) if isinstance(n, (int, float)) else None


COST_COLUMNS = tuple(k for k, _ in iter_cost_fields({}, ""))
