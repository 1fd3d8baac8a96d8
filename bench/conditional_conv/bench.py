"""Benchmark: memory-lean vs unfold conditional depthwise convolution (forward + backward).

Sizes are those of CC-FPSE's two largest blocks, batch 1. Each block applies two conditional
convolutions: up_2 = 256 channels then 128 at 128x128 (128x256 for Cityscapes' 512x256), up_3 =
128 then 64 channels at 256x256 (256x512).

Every (implementation, size) runs in a fresh subprocess, so one measurement cannot inherit the
allocator state or the high-water mark of another. Inputs x [1,C,H,W], kernels [1,9C,H,W] (leaf
tensors requiring grad) and the output gradient are allocated before measuring.

Memory, CPU (two independent measures):
- ``torch_peak``: the peak of live bytes allocated by torch during one forward+backward, from the
  allocation and free events of ``torch.profiler`` (profile_memory=True), summed in time order.
  This is what the implementation itself needs, independent of the C allocator.
- ``rss_peak``: growth of the process's peak resident set size (``ru_maxrss``) over the first
  forward+backward of the fresh process (no warm-up before it, so the high-water mark is this
  iteration's). It includes allocator slack and freed-but-kept pages, so it is an upper bound.
Memory, CUDA: ``torch.cuda.max_memory_allocated()`` minus the allocation before the iteration.
Both include the kernels' gradient (9*C*H*W floats), which any implementation must produce.

Time: median wall time of ``--repeats`` forward+backward iterations after one warm-up
(CUDA: synchronised).

Usage::

    OMP_NUM_THREADS=1 python bench/conditional_conv/bench.py              # CPU, all sizes
    python bench/conditional_conv/bench.py --device cuda --dtype bf16     # on a GPU
    python bench/conditional_conv/bench.py --only up_2@256x256 --repeats 5

Prints a markdown table on stdout (progress on stderr).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# name -> (channels, height, width); each block has two conditional convolutions
SIZES = {
    "up_2@256x256": [(256, 128, 128), (128, 128, 128)],
    "up_3@256x256": [(128, 256, 256), (64, 256, 256)],
    "up_2@512x256": [(256, 128, 256), (128, 128, 256)],
    "up_3@512x256": [(128, 256, 512), (64, 256, 512)],
}
IMPLEMENTATIONS = ("lean", "unfold")
MiB = 2 ** 20


def _child(impl: str, c: int, h: int, w: int, device: str, dtype_name: str, repeats: int) -> dict:
    """Runs inside the fresh subprocess: measure one configuration, return a JSON-able dict."""
    import torch
    from methods.ccfpse.conditional_conv import IMPLEMENTATIONS as FUNCS

    fn = FUNCS[impl]
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype_name]
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(1, c, h, w, generator=g).to(device, dtype).requires_grad_()
    kernels = torch.randn(1, 9 * c, h, w, generator=g).to(device, dtype).requires_grad_()
    grad_out = torch.randn(1, c, h, w, generator=g).to(device, dtype)

    def step():
        x.grad = kernels.grad = None
        fn(x, kernels).backward(grad_out)

    result = {"kernels_mib": kernels.numel() * kernels.element_size() / MiB}
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        result["torch_peak_mib"] = (torch.cuda.max_memory_allocated() - base) / MiB
    else:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        step()
        result["rss_peak_mib"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        x.grad = kernels.grad = None
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            step()
        events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                        if e.name() == "[memory]")
        live = peak = 0
        for _, nbytes in events:
            live += nbytes
            peak = max(peak, live)
        result["torch_peak_mib"] = peak / MiB
    step()  # warm-up for timing
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    result["time_ms"] = 1000 * statistics.median(times)
    return result


def run_one(impl, c, h, w, args) -> dict:
    cmd = [sys.executable, __file__, "--child", json.dumps([impl, c, h, w, args.device, args.dtype,
                                                           args.repeats])]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.setdefault("KINETO_LOG_LEVEL", "5")  # keep the profiler quiet
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed for {impl} C={c} {h}x{w}:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", action="append", choices=sorted(SIZES), help="benchmark only these sizes")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(*json.loads(args.child))))
        return

    import torch
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    where = (torch.cuda.get_device_name() if args.device == "cuda" else
             f"{platform.processor() or platform.machine()}, torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}")
    print(f"torch {torch.__version__}, {args.device} ({where}), {args.dtype}, batch 1, "
          f"median of {args.repeats}", file=sys.stderr)
    rows = []
    for name in args.only or SIZES:
        for c, h, w in SIZES[name]:
            for impl in IMPLEMENTATIONS:
                print(f"{name} C={c} {h}x{w} {impl} ...", file=sys.stderr, flush=True)
                rows.append((name, c, h, w, impl, run_one(impl, c, h, w, args)))
    mem_cols = "torch peak MiB | RSS peak MiB" if args.device == "cpu" else "CUDA peak MiB"
    print(f"| block | C | H x W | kernels MiB | impl | fwd+bwd ms | {mem_cols} |")
    print("|---|---:|---|---:|---|---:|---:|" + ("---:|" if args.device == "cpu" else ""))
    for name, c, h, w, impl, r in rows:
        mem = f"{r['torch_peak_mib']:.0f}" + (f" | {r['rss_peak_mib']:.0f}" if args.device == "cpu" else "")
        print(f"| {name} | {c} | {h} x {w} | {r['kernels_mib']:.0f} | {impl} | {r['time_ms']:.0f} | {mem} |")


if __name__ == "__main__":
    main()
