"""Training throughput and peak GPU memory of every built-in method, through the real runner.

Each measurement is one `torchrun --nproc_per_node N -m harness train ...` run (the same code path
users run); images/s and peak memory are read back from the run's train_log.jsonl
(`images_per_s` windows after the warm-up steps; `gpu_mem_max_gib` =
torch.cuda.max_memory_allocated). Results are appended to bench/training/results.jsonl with the
command, machine, versions and date; a Markdown table is printed.

GPU (default): the official network widths of each method (its Config defaults + the ADE20K
recipe's method section when one exists) on the built-in synthetic scenes at 256x256 (ADE20K's
training size; 10 label classes instead of 151, which understates the cost of the label-map
convolutions of SPADE-style layers), bf16 autocast, per-GPU batch of the paper recipes on 8-16
GPUs (SPADE 32/8 = 4, pix2pixHD 1, CC-FPSE 1). The VGG perceptual loss is off unless --vgg
(it needs vgg19-dcbb9e9d.pth in $HARNESS_WEIGHTS_DIR).

    python bench/training/bench_train.py                      # all methods, bf16, 1 GPU
    python bench/training/bench_train.py --methods spade --nproc 8 --batch-size 4
    python bench/training/bench_train.py --cpu                # CPU fallback: tiny presets, fp32
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results.jsonl"
METHODS = ("pix2pixhd", "spade", "ccfpse")
GPU_BATCH = {"pix2pixhd": 1, "spade": 4, "ccfpse": 1}
NO_VGG = {"pix2pixhd": {"lambda_vgg": 0.0}, "spade": {"lambda_vgg": 0.0},
          "ccfpse": {"vgg_loss": False}}


def official_method_section(method: str) -> dict:
    """Every field of the method's Config at its default (official) value, overlaid with the
    ADE20K recipe's method section - explicit, so the tiny synthetic preset cannot shrink it."""
    sys.path.insert(0, str(REPO))
    from harness.core.config import to_dict
    from methods import METHODS as REGISTRY

    section = to_dict(REGISTRY.get(method).Config())
    recipe = REPO / "configs" / "experiments" / f"{method}-ade20k.yaml"
    if recipe.is_file():
        section.update({k: v for k, v in (yaml.safe_load(recipe.read_text()).get("method") or {})
                        .items() if k != "name"})
    return {k: v for k, v in section.items() if v is not None}


def command(method: str, runs: Path, args, layer: Path | None) -> list[str]:
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", str(args.nproc), "-m", "harness",
           "train", "--method", method, "--dataset", "synthetic", "--runs-dir", str(runs),
           "--quiet"]
    if layer is not None:
        cmd += ["--config", str(layer)]
    steps = args.warmup + args.steps
    sets = {"train.max_steps": steps, "train.log_every": 1, "train.sample_every": 0,
            "train.checkpoint_every": 10 ** 9, "train.tensorboard": False,
            "train.num_workers": args.workers}
    if args.cpu:
        sets.update({"train.device": "cpu", "train.precision": "fp32"})
    else:
        batch = args.batch_size or GPU_BATCH.get(method, 1)
        sets.update({"train.device": "auto", "train.precision": args.precision,
                     "train.batch_size": batch, "train.channels_last": args.channels_last,
                     "train.compile_generator": args.compile,
                     "dataset.size": args.size, "dataset.num_train": args.images,
                     "dataset.num_val": 1, "dataset.preprocess": "none",
                     "train.epochs_constant": 1000, "train.epochs_decay": 0})
    if args.batch_size and args.cpu:
        sets["train.batch_size"] = args.batch_size
    for k, v in sets.items():
        cmd += ["--set", f"{k}={json.dumps(v) if isinstance(v, bool) else v}"]
    return cmd


def measure(log_file: Path, warmup: int) -> dict:
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    after = [r for r in records if r["step"] > warmup]
    start = max((r for r in records if r["step"] <= warmup), key=lambda r: r["step"], default=None)
    if not after or start is None:
        raise SystemExit(f"{log_file}: not enough logged steps after {warmup} warm-up steps")
    seconds = after[-1]["time_s"] - start["time_s"]
    return {"measured_steps": after[-1]["step"] - start["step"], "seconds": round(seconds, 3),
            "gpu_mem_max_gib": records[-1].get("gpu_mem_max_gib")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--cpu", action="store_true", help="CPU fallback: the tiny *-synthetic presets, fp32")
    p.add_argument("--precision", default="bf16", choices=["bf16", "fp16", "fp32"])
    p.add_argument("--nproc", type=int, default=1, help="GPUs (processes) for torchrun")
    p.add_argument("--batch-size", type=int, help="per-GPU batch (default: paper recipe per GPU)")
    p.add_argument("--size", type=int, default=256, help="synthetic image size (GPU mode)")
    p.add_argument("--images", type=int, default=64, help="synthetic training images (GPU mode)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile the generator")
    p.add_argument("--vgg", action="store_true", help="keep the VGG loss (needs its weights)")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.cpu:
        args.workers = 0

    sys.path.insert(0, str(REPO))
    from harness.core.env import environment

    env = environment()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        tmp = Path(tmp)
        for method in args.methods:
            layer = None
            if not args.cpu:
                section = {"name": method, **official_method_section(method)}
                if not args.vgg:
                    section.update(NO_VGG.get(method, {}))
                layer = tmp / f"{method}.yaml"
                layer.write_text(yaml.safe_dump({"method": section}))
            elif not args.vgg:
                layer = tmp / f"{method}.yaml"
                layer.write_text(yaml.safe_dump({"method": {"name": method, **NO_VGG.get(method, {})}}))
            runs = tmp / "runs"
            cmd = command(method, runs, args, layer)
            print("$", " ".join(cmd), file=sys.stderr)
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                                  env={**os.environ, "PYTHONUNBUFFERED": "1"})
            if proc.returncode != 0:
                print(proc.stderr[-4000:], file=sys.stderr)
                rows.append({"method": method, "error": proc.stderr.strip().splitlines()[-1:]})
                continue
            summary = json.loads(proc.stdout)
            run_dir = Path(summary["run_dir"])
            m = measure(run_dir / "train_log.jsonl", args.warmup)
            train = summary["train"].get("summary", summary["train"])  # TrainResult.summary
            images = m["measured_steps"] * train["global_batch"]
            row = {
                "method": method, "mode": "cpu-tiny" if args.cpu else "gpu-official-widths",
                "precision": train["precision"], "nproc": train["world_size"],
                "batch_per_process": train["batch_size"], "global_batch": train["global_batch"],
                "image_size": args.size if not args.cpu else "preset (64)",
                "images_per_s": round(images / m["seconds"], 3) if m["seconds"] > 0 else None,
                "measured_steps": m["measured_steps"], "gpu_mem_max_gib": m["gpu_mem_max_gib"],
                "channels_last": args.channels_last, "compile_generator": args.compile,
                "vgg_loss": args.vgg, "command": "torchrun " + " ".join(cmd[1:]),
                "config_layer": yaml.safe_load(layer.read_text()) if layer is not None else None,
                "machine": env["hardware"], "versions": env["versions"],
                "git_commit": env["git_commit"],
                "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            }
            rows.append(row)
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
    print("| method | mode | precision | GPUs x batch | images/s | peak GPU memory (GiB) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['method']} | failed: {r['error']} | | | | |")
            continue
        print(f"| {r['method']} | {r['mode']} | {r['precision']} | {r['nproc']} x "
              f"{r['batch_per_process']} | {r['images_per_s']} | {r['gpu_mem_max_gib']} |")
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
