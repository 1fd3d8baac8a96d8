"""The method contract's generation checks hold on every CPU kernel path, not just this machine's
default: ATen's vector ISA (ATEN_CPU_CAPABILITY), oneDNN's convolution ISA (ONEDNN_MAX_CPU_ISA) and
the thread count all change float summation order. Each combination runs in a fresh process,
because both ISA variables are read once at start-up."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
CHECKS = "generate or seeds or style_encoding"

PATHS = [("avx2", {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"})]
if torch.backends.cpu.get_cpu_capability() == "AVX512":
    PATHS.append(("avx512", {"ATEN_CPU_CAPABILITY": "avx512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}))
PATHS.append(("default", {}))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("path, env", PATHS, ids=[p for p, _ in PATHS])
def test_contract_generation_checks_on_cpu_path(path, env, threads):
    if path == "default" and threads == int(os.environ.get("OMP_NUM_THREADS", "2")):
        pytest.skip("the main test run already covers the default path at this thread count")
    child = {k: v for k, v in os.environ.items()
             if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")}
    child.update(env, OMP_NUM_THREADS=str(threads))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         str(ROOT / "tests" / "test_contract_methods.py"), "-k", CHECKS],
        cwd=ROOT, env=child, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{path}, {threads} thread(s):\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    assert " passed" in proc.stdout.splitlines()[-1]
