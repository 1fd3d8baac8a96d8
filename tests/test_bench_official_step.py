"""`python -m bench official_step` needs a private checkout of the official code: without one it
fails with one message saying how to get it, records nothing, and a path that is not the
official repository is refused before any work (no official code is needed for these tests)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# bench/ is a folder of the repository, not part of the installed package (tox installs the
# package only): import it from the checkout, as `python -m bench` does from the repository root.
sys.path.insert(0, str(REPO))


def _bench(*args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_OFFICIAL_")}
    env.update(PYTHONPATH=str(REPO), **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_without_checkout_fails_with_how_to_and_records_nothing(tmp_path):
    results = tmp_path / "results.jsonl"
    proc = _bench("official_step", "--results", str(results))
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert not results.exists()
    err = proc.stderr
    assert "official_step failed: OfficialCodeMissing" in err
    for needle in ("BENCH_OFFICIAL_CCFPSE", "BENCH_OFFICIAL_SPADE",
                   "https://github.com/xh-liu/CC-FPSE", "https://github.com/NVlabs/SPADE",
                   "non-commercial"):
        assert needle in err


def test_not_a_default_case_and_listed():
    from bench.cases import official_step
    assert official_step.DEFAULT is False and official_step.DEVICES == ("cpu",)
    proc = _bench("--list")
    assert proc.returncode == 0
    assert any(line.startswith("official_step") and "by name only" in line
               for line in proc.stdout.splitlines())


def test_wrong_path_is_refused_naming_the_variable(tmp_path, monkeypatch):
    from bench.official_step import OfficialCodeMissing, official_root
    monkeypatch.setenv("BENCH_OFFICIAL_SPADE", str(tmp_path))
    with pytest.raises(OfficialCodeMissing, match=r"BENCH_OFFICIAL_SPADE=.*not a checkout of "
                                                  r"NVlabs/SPADE"):
        official_root("spade")
    monkeypatch.delenv("BENCH_OFFICIAL_CCFPSE", raising=False)
    with pytest.raises(OfficialCodeMissing, match="BENCH_OFFICIAL_CCFPSE"):
        official_root("ccfpse")


def test_commit_is_read_from_the_commit_file_of_an_archive_copy(tmp_path):
    from bench.official_step import COMMIT_FILE, official_commit
    assert official_commit(tmp_path) == "unknown"
    (tmp_path / COMMIT_FILE).write_text("5619e6321abb3ef498f58d7475b5dabe16dae290\n")
    assert official_commit(tmp_path) == "5619e6321abb3ef498f58d7475b5dabe16dae290"
