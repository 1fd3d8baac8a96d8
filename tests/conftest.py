"""Test-session isolation: no network, no writes into the user's home.

tox sets these variables already; when pytest is run directly they point into a session-wide
temporary folder (shared by all tests so the synthetic dataset and the trained segmenter are
built once per session).
"""
import os
import tempfile
from pathlib import Path

import pytest

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="harness-tests-"))
os.environ.setdefault("HARNESS_OFFLINE", "1")
os.environ.setdefault("HARNESS_CACHE", str(_SESSION_DIR / "harness-cache"))
os.environ.setdefault("TORCH_HOME", str(_SESSION_DIR / "torch-home"))
os.environ.setdefault("MPLBACKEND", "Agg")
# `evaluate` refreshes the leaderboard and keeps --images rows (docs/report.md): never in the
# checkout's results/ folder.
os.environ.setdefault("HARNESS_RESULTS_DIR", str(_SESSION_DIR / "results"))

import torch  # noqa: E402  (after the environment is set)

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))


@pytest.fixture
def isolated_weights(tmp_path, monkeypatch):
    """A private weights dir and torch hub cache; stand-in weights may be unverified."""
    weights = tmp_path / "weights"
    weights.mkdir()
    monkeypatch.setenv("HARNESS_WEIGHTS_DIR", str(weights))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("HARNESS_ALLOW_UNVERIFIED_WEIGHTS", "1")
    return weights


@pytest.fixture
def single_thread():
    """Run a test on one intra-op thread: training-dynamics thresholds must not depend on the
    float summation order that the thread count changes (GAN steps amplify such differences)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
