"""Metrics that were not computed although they were asked for, summarised for the user.

A metric skipped for a reason that may go away (typically a missing weights file) is recorded as
``{"status": "skipped", "reason": ...}``; one skipped on request (``--skip``, ``eval.skip``) is
not a gap. ``run`` and ``evaluate`` print :func:`summary` on stderr; with ``--strict`` any such
gap is exit status :data:`EXIT_SKIPPED_METRICS`.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

EXIT_SKIPPED_METRICS = 3
ON_REQUEST = "skipped on request"


def unrequested_skips(record: Mapping[str, Any]) -> dict[str, str]:
    """metric -> reason, for every metric of ``record`` skipped without being asked to."""
    out = {}
    for name, m in (record.get("metrics") or {}).items():
        if isinstance(m, Mapping) and m.get("status") == "skipped" and \
                m.get("reason") != ON_REQUEST:
            out[name] = str(m.get("reason", ""))
    return out


def summary(entries: Sequence[tuple[str, Mapping[str, str]]]) -> str | None:
    """One warning for (label, metric -> reason) entries; metrics sharing a reason (FID and KID
    without Inception) on one line. None when nothing was skipped."""
    lines = []
    total = 0
    for label, skipped in entries:
        by_reason: dict[str, list[str]] = {}
        for metric, reason in skipped.items():
            by_reason.setdefault(reason, []).append(metric)
            total += 1
        for reason, metrics in by_reason.items():
            lines.append(f"  {label}: {', '.join(metrics)}: {reason}")
    if not total:
        return None
    head = (f"warning: {total} requested metric{'s were' if total > 1 else ' was'} not computed "
            "(recorded as skipped, never as a number; --strict makes this exit status "
            f"{EXIT_SKIPPED_METRICS}):")
    return "\n".join([head, *lines])
