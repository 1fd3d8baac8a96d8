"""Peak memory of a measured region: CUDA max allocated on a GPU, peak RSS on the CPU.

On Linux the process's resident high-water mark (VmHWM) can be reset by writing "5" to
/proc/self/clear_refs (Linux >= 4.0), so a peak is the region's own, not that of whatever ran
earlier in the process. Where the reset is refused the peak is ru_maxrss (process lifetime) and
the record says so (``peak_memory_kind``).
"""
from __future__ import annotations

import re
import resource
from pathlib import Path

MiB = 2 ** 20
_STATUS = Path("/proc/self/status")
_CLEAR = Path("/proc/self/clear_refs")


def _vm_hwm_kib() -> int | None:
    try:
        m = re.search(r"VmHWM:\s+(\d+)\s+kB", _STATUS.read_text())
    except OSError:
        return None
    return int(m.group(1)) if m else None


def reset_peak(device: str) -> str:
    """Start a new peak; returns what the next ``peak_mib`` will measure."""
    if device == "cuda":
        import torch
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return "cuda_max_allocated"
    try:
        _CLEAR.write_text("5")
        return "rss_peak_reset" if _vm_hwm_kib() is not None else "rss_peak_process"
    except OSError:
        return "rss_peak_process"


def peak_mib(device: str) -> float:
    if device == "cuda":
        import torch
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / MiB
    kib = _vm_hwm_kib()
    if kib is None:
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib / 1024


def current_rss_mib() -> float:
    try:
        m = re.search(r"VmRSS:\s+(\d+)\s+kB", _STATUS.read_text())
        return int(m.group(1)) / 1024 if m else float("nan")
    except OSError:
        return float("nan")


def current_mib(device: str) -> float:
    if device == "cuda":
        import torch
        return torch.cuda.memory_allocated() / MiB
    return current_rss_mib()
