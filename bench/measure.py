"""Time a callable: warm-up calls, then >= 5 measured repeats; median / min / max seconds and the
peak memory over the measured repeats (see bench.memory).

Also the median process CPU time of a repeat (``cpu_median_s``, all threads of this process): on a
machine shared with other jobs, wall time includes the time the others held the cores, CPU time
does not, so CPU-time ratios are the steadier reading there (on CUDA it counts only the host)."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

from bench import memory

MIN_REPEATS = 5


@dataclass
class Timing:
    median_s: float
    min_s: float
    max_s: float
    repeats: int
    warmup: int
    peak_memory_mib: float
    peak_memory_kind: str
    memory_before_mib: float = float("nan")   # RSS (CPU) / allocated (CUDA) before the repeats
    cpu_median_s: float = float("nan")        # process CPU seconds of a repeat (median)

    def as_dict(self) -> dict:
        return {"median_s": round(self.median_s, 6), "min_s": round(self.min_s, 6),
                "max_s": round(self.max_s, 6), "repeats": self.repeats, "warmup": self.warmup,
                "peak_memory_mib": round(self.peak_memory_mib, 1),
                "peak_memory_kind": self.peak_memory_kind,
                "memory_before_mib": round(self.memory_before_mib, 1),
                "cpu_median_s": round(self.cpu_median_s, 6)}


def _sync(device: str) -> None:
    if device == "cuda":
        import torch
        torch.cuda.synchronize()


def measure(fn: Callable[[], object], *, device: str = "cpu", repeats: int = MIN_REPEATS,
            warmup: int = 1, before: Callable[[], object] | None = None) -> Timing:
    """``before`` (untimed) runs ahead of every call, e.g. to clear a cache for a cold run."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        if before:
            before()
        fn()
    _sync(device)
    before_mib = memory.current_mib(device)
    kind = memory.reset_peak(device)
    times, cpu = [], []
    for _ in range(repeats):
        if before:
            before()
        _sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return Timing(statistics.median(times), min(times), max(times), repeats, warmup,
                  memory.peak_mib(device), kind, before_mib, statistics.median(cpu))


def combine(timings: list[Timing]) -> Timing:
    """Single-repeat timings of one side of an interleaved comparison -> one Timing over all
    its repeats (median / min / max of wall and CPU time, the largest peak)."""
    times = [t.median_s for t in timings]
    return Timing(statistics.median(times), min(times), max(times), len(times),
                  timings[0].warmup, max(t.peak_memory_mib for t in timings),
                  timings[0].peak_memory_kind,
                  cpu_median_s=statistics.median(t.cpu_median_s for t in timings))
