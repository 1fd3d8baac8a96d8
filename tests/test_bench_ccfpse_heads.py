"""bench case ccfpse_heads: the two sides run interleaved in alternating order (neither always
second), each side's Timing has its own times, and time_vs_plain is per-repeat batched / plain
(no timing assertions: the callables record the order and sleep fixed, distinct amounts)."""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

# bench/ is a folder of the repository, not part of the installed package (tox installs the
# package only): import it from the checkout, as `python -m bench` does from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cases import ccfpse_heads  # noqa: E402
from bench.cli import CASES, Context, load  # noqa: E402


def test_sides_alternate_and_ratios_are_per_repeat():
    order = []

    def side(name, seconds):
        def run():
            order.append(name)
            time.sleep(seconds)
        return run

    ctx = Context("cpu", quick=True, repeats=5, warmup=1)
    timings, ratios = ccfpse_heads._interleaved(
        {"plain": side("plain", 0.001), "batched": side("batched", 0.05)}, ctx)
    # warm-up (plain, batched), then repeats alternating the order
    assert order == ["plain", "batched",
                     "plain", "batched", "batched", "plain", "plain", "batched",
                     "batched", "plain", "plain", "batched"]
    # batched / plain: 50 ms over 1 ms per repeat (the median survives a stalled repeat)
    assert len(ratios) == 5 and statistics.median(ratios) > 1
    assert timings["batched"].median_s > timings["plain"].median_s
    assert timings["plain"].repeats == 5 and timings["plain"].warmup == 1
    assert timings["plain"].peak_memory_kind.endswith("_both_sides")


def test_case_is_registered():
    assert CASES["ccfpse_heads"] == "ccfpse_heads"
    assert "cpu" in load("ccfpse_heads").DEVICES
