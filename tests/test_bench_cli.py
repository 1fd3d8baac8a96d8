"""`python -m bench`: a quick run of a cheap case prints one JSON line per variant with every
field the suite promises and appends the same lines to the results file (no timing assertions)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
FIELDS = {"case", "variant", "parameters", "device", "device_name", "torch", "git_commit", "date",
          "median_s", "min_s", "max_s", "repeats", "warmup", "peak_memory_mib",
          "peak_memory_kind", "quick", "command"}


def _bench(*args, cwd=REPO):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_quick_case_prints_and_records_json_lines(tmp_path):
    results = tmp_path / "results.jsonl"
    proc = _bench("conv_cond", "--quick", "--results", str(results))
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["variant"] for r in lines] == ["lean", "unfold"]
    assert [json.loads(line) for line in results.read_text().splitlines()] == lines
    for r in lines:
        assert FIELDS <= set(r)
        assert r["case"] == "conv_cond" and r["device"] == "cpu" and r["quick"] is True
        assert r["torch"] == torch.__version__
        assert r["repeats"] >= 5 and r["warmup"] >= 1
        assert 0 < r["min_s"] <= r["median_s"] <= r["max_s"]
        assert r["peak_memory_kind"] in ("rss_peak_reset", "rss_peak_process")
        assert r["peak_memory_mib"] > 0
        assert r["parameters"] == {"size": "tiny@32x32", "channels": 16, "height": 32,
                                   "width": 32, "batch": 1, "dtype": "fp32"}
        assert r["command"] == f"python -m bench conv_cond --quick --results {results}"
        assert r["date"].endswith("+00:00") and "T" in r["date"]


def test_bad_arguments_exit_2_with_the_reason(tmp_path):
    proc = _bench("no_such_case", "--results", str(tmp_path / "r.jsonl"))
    assert proc.returncode == 2 and "unknown case(s) no_such_case" in proc.stderr
    proc = _bench("conv_cond", "--repeats", "3", "--results", str(tmp_path / "r.jsonl"))
    assert proc.returncode == 2 and "--repeats must be >= 5" in proc.stderr
    assert not (tmp_path / "r.jsonl").exists()
    listed = _bench("--list")
    assert listed.returncode == 0
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    assert {"conv_cond", "fid_extract", "evaluate_cache", "train_step", "ccfpse_levers",
            "ccfpse_checkpoint", "gpu_levers", "quickstart", "train_runner",
            "fid_bootstrap"} <= set(names)
