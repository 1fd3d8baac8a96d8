"""train_runner (by name only): training throughput through the real runner, `python -m harness
train` (torchrun on CUDA), the same code path users run (formerly bench/training/bench_train.py;
its history stays in bench/training/results.jsonl). Per-step wall times are read back from the
run's train_log.jsonl (log_every 1) after the warm-up steps; CUDA peak = the log's
gpu_mem_max_gib. CPU: the tiny *-synthetic presets, fp32; CUDA: official widths at 256x256,
bf16, per-GPU batch of the paper recipes."""
from __future__ import annotations

DESCRIPTION = "training steps through `harness train` (per-step times from train_log.jsonl)"
DEVICES = ("cpu", "cuda")
DEFAULT = False
METHODS = ("pix2pixhd", "spade", "ccfpse")
GPU_BATCH = {"pix2pixhd": 1, "spade": 4, "ccfpse": 1}
NO_VGG = {"pix2pixhd": {"lambda_vgg": 0.0}, "spade": {"lambda_vgg": 0.0},
          "ccfpse": {"vgg_loss": False}}


def official_section(method: str) -> dict:
    """Every field of the method's Config at its default (official) value, overlaid with the
    ADE20K recipe's method section - explicit, so the tiny synthetic preset cannot shrink it."""
    import yaml

    from bench.isolate import REPO
    from harness.core.config import to_dict
    from methods import METHODS as REGISTRY
    section = to_dict(REGISTRY.get(method).Config())
    recipe = REPO / "configs" / "experiments" / f"{method}-ade20k.yaml"
    if recipe.is_file():
        section.update({k: v for k, v in (yaml.safe_load(recipe.read_text()).get("method") or {})
                        .items() if k != "name"})
    return {k: v for k, v in section.items() if v is not None}


def run(ctx):
    import json
    import os
    import statistics
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    import yaml

    from bench.isolate import REPO
    from bench.measure import Timing
    warmup, steps = ctx.warmup + 1, ctx.repeats
    cuda = ctx.device == "cuda"
    for method in METHODS:
        with tempfile.TemporaryDirectory(prefix="bench-runner-") as tmp:
            tmp = Path(tmp)
            section = {"name": method, **(official_section(method) if cuda and not ctx.quick else {}),
                       **NO_VGG[method]}
            layer = tmp / "method.yaml"
            layer.write_text(yaml.safe_dump({"method": section}))
            sets = {"train.max_steps": warmup + steps, "train.log_every": 1,
                    "train.sample_every": 0, "train.checkpoint_every": 10 ** 9,
                    "train.tensorboard": "false", "train.num_workers": 4 if cuda else 0,
                    "train.device": ctx.device, "train.precision": "bf16" if cuda else "fp32"}
            if cuda and not ctx.quick:
                sets.update({"train.batch_size": GPU_BATCH[method], "dataset.size": 256,
                             "dataset.num_train": 64, "dataset.num_val": 1,
                             "dataset.preprocess": "none"})
            launcher = ([str(Path(sys.executable).with_name("torchrun")), "--standalone",
                         "--nproc_per_node", "1"] if cuda else [sys.executable])
            cmd = [*launcher, "-m", "harness", "train", "--method", method, "--dataset",
                   "synthetic", "--runs-dir", str(tmp / "runs"), "--quiet", "--config", str(layer)]
            for k, v in sets.items():
                cmd += ["--set", f"{k}={v}"]
            env = dict(os.environ, HARNESS_CACHE=os.environ.get("HARNESS_CACHE", str(tmp / "cache")),
                       PYTHONPATH=str(REPO))
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                raise RuntimeError(f"{method}: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
            summary = json.loads(proc.stdout)
            log = Path(summary["run_dir"]) / "train_log.jsonl"
            records = [json.loads(line) for line in log.read_text().splitlines()]
            times = [b["time_s"] - a["time_s"] for a, b in zip(records, records[1:])
                     if a["step"] >= warmup]
            train = summary["train"].get("summary", summary["train"])
            gib = records[-1].get("gpu_mem_max_gib")
            import resource
            child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            t = Timing(statistics.median(times), min(times), max(times), len(times), warmup,
                       gib * 1024 if gib else child,
                       "cuda_max_allocated" if gib else "rss_peak_largest_child")
            yield {"variant": method, "parameters": {"method_section": section, "sets": sets},
                   "timing": t, "images_per_s": round(train["global_batch"] / t.median_s, 4),
                   "runner_command": " ".join(cmd[len(launcher) - 1:])}
