"""`torchrun -m harness run`: two CPU processes (gloo) train, generate (sharded) and evaluate one
run; rank 0 alone writes the bookkeeping and prints the result."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from harness.core.io import read_json

from _cli_helpers import REPO, tiny_protocol


def test_torchrun_two_processes_run_end_to_end(tmp_path):
    from importlib.metadata import PackageNotFoundError, version
    try:
        version("harness-plugin-example")
    except PackageNotFoundError:
        pytest.skip("harness-plugin-example is not installed")
    proto = tiny_protocol(tmp_path, seeds=(0,))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "harness", "run", "--method", "example-pix2pix",
           "--dataset", "synthetic", "--set", "train.max_steps=2", "--set", "dataset.size=16",
           "--set", "dataset.num_train=8", "--set", "dataset.num_val=5",
           "--protocol", str(proto), "--runs-dir", str(tmp_path / "runs"),
           "--results-dir", str(tmp_path / "results"), "--quiet", "--allow-missing-weights"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)          # printed once, by rank 0
    rd = tmp_path / "runs" / "synthetic" / "example-pix2pix" / summary["run_id"]
    status = read_json(rd / "run.json")
    assert status["stages"]["train"]["result"]["summary"]["world_size"] == 2
    manifest = read_json(next(rd.glob("samples/*/random/manifest.json")))
    assert len(manifest["files"]["0"]) == 5     # 5 keys over 2 ranks: 3 + 2, merged
    assert all((rd / "samples" / summary["protocol"] / "random" / rel).is_file()
               for rel in manifest["files"]["0"].values())
    rec = next(iter(read_json(rd / "metrics.json")["evaluations"].values()))
    assert rec["n_images"] == 5 and rec["run_id"] == summary["run_id"]
    assert (tmp_path / "results" / "leaderboard.csv").is_file()
