"""The `generate` verb (a run's evaluation set) and the `evaluate` verb (a run's samples, or a folder
of images); their work: :mod:`harness.stages.generate`, :mod:`harness.stages.evaluate`."""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Callable

from harness.cli.run_verbs import segmenter_weights_arg
from harness.cli.common import (data_identity_args, emit_json, no_wait_arg, open_run,
                                show_progress, skipped_status, strict_arg)


def add_parsers(add: Callable[..., argparse.ArgumentParser]) -> None:
    """The `generate`, `evaluate` sub-commands."""
    p = add("generate", "generate a run's evaluation set as PNGs plus manifest.json",
            """
            python -m harness generate --run runs/synthetic/spade/spade-synthetic-0123456789
            """)
    p.add_argument("--run", required=True, help="run directory")
    p.add_argument("--protocol", help="protocol name or YAML path (default: the run's)")
    p.add_argument("--inference", choices=("random", "encoded"),
                   help="z ~ N(0,I), or the style encoded from the real image (default: the run's)")
    p.add_argument("--checkpoint", default="latest", help="latest | best | a checkpoint path")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--force", action="store_true",
                   help="delete the existing samples and generate them again (says what it "
                        "replaced)")
    data_identity_args(p)
    no_wait_arg(p)
    p.set_defaults(func=cmd_generate)

    p = add("evaluate", "evaluate a run's samples, or a folder of images named after the "
                        "split's keys",
            """
            python -m harness evaluate --run runs/synthetic/spade/spade-synthetic-0123456789
            python -m harness evaluate --images out/pngs --dataset cityscapes --split val \\
                --label official-spade --set dataset.root=/data/cityscapes
            python -m harness evaluate --run runs/folder/spade/spade-folder-0123456789 \\
                --segmenter-weights seg/mine.pt   # from `train-segmenter --out seg/mine.pt`
            """)
    p.add_argument("--run", help="run directory (its samples are generated first if missing)")
    p.add_argument("--images", help="a folder of images named <key>.png (or .jpg)")
    p.add_argument("--dataset", help="dataset of --images")
    p.add_argument("--split", help="split of --images (default: the protocol's)")
    p.add_argument("--protocol", help="protocol name or YAML path (default: the dataset's)")
    p.add_argument("--inference", choices=("random", "encoded"))
    p.add_argument("--out", help="metrics.json folder for --images (default: the images folder)")
    p.add_argument("--label", help="name of the --images row in tables (default: folder name)")
    p.add_argument("--config", action="append", default=[], metavar="FILE",
                   help="YAML layer(s) for the dataset options of --images")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="dataset option override for --images, e.g. dataset.root=/data")
    p.add_argument("--skip", action="append", default=[], metavar="METRIC",
                   help="metric not to compute (fid, kid, miou, accuracy, lpips; repeatable)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--device", default="auto")
    p.add_argument("--force", action="store_true",
                   help="compute the metrics again even when recorded (says what it replaced)")
    p.add_argument("--results-dir", default=os.environ.get("HARNESS_RESULTS_DIR", "results"),
                   help="where the leaderboard is refreshed and --images rows are kept as "
                        "external rows (default: $HARNESS_RESULTS_DIR, else results)")
    p.add_argument("--runs-dir", default=None,
                   help="runs folder the refreshed leaderboard reads (default: the run's, "
                        "else runs)")
    p.add_argument("--no-leaderboard", action="store_true",
                   help="do not refresh results/leaderboard.* (and keep no external row)")
    strict_arg(p)
    segmenter_weights_arg(p)
    data_identity_args(p)
    no_wait_arg(p)
    p.set_defaults(func=cmd_evaluate)


def cmd_generate(args: argparse.Namespace) -> int:
    from harness.core import dist as hdist
    from harness.stages.common import resolve_protocol
    from harness.stages.generate import generate_stage

    from harness.runlock import run_lock

    rd, cfg = open_run(args.run, args.verify_content)
    hdist.init(cfg.train.device)
    protocol = resolve_protocol(args.protocol or cfg.eval.protocol, cfg.dataset.name)
    with run_lock(rd.path, wait=not args.no_wait):
        manifest = generate_stage(rd, cfg, protocol, inference=args.inference,
                                  which=args.checkpoint, batch_size=args.batch_size,
                                  progress=show_progress(args), force=args.force,
                                  allow_data_change=args.allow_data_change)
    if hdist.info().is_main:
        out = rd.samples_dir(protocol.id, manifest["inference"])
        emit_json({"samples": str(out), "manifest": str(out / "manifest.json"),
                   "images": manifest["num_images"], "seeds": manifest["seeds"],
                   "diversity_maps": len(manifest.get("diversity") or {})})
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from harness.core import dist as hdist
    from harness.core.config import ConfigError
    from harness.stages.common import resolve_device, resolve_protocol
    from harness.stages.evaluate import evaluate_folder, evaluate_stage, metric_values
    from harness.stages.generate import generate_stage

    if bool(args.run) == bool(args.images):
        raise ConfigError("evaluate: pass either --run RUN or --images DIR --dataset D")
    if args.run:
        for flag in ("dataset", "split", "out", "label"):
            if getattr(args, flag):
                raise ConfigError(f"evaluate --run: --{flag} applies to --images only")
        rd, cfg = open_run(args.run, args.verify_content)
        hdist.init(cfg.train.device)
        if args.skip:
            cfg.eval.skip = sorted(set(cfg.eval.skip) | set(args.skip))
        protocol = resolve_protocol(args.protocol or cfg.eval.protocol, cfg.dataset.name)
        device = resolve_device(args.device if args.device != "auto" else cfg.train.device)
        if args.segmenter_weights is not None:  # a bad file stops before any generation
            from harness.stages.pipeline import check_run_segmenter_weights
            check_run_segmenter_weights(cfg, protocol, args.segmenter_weights)
        from harness.runlock import run_lock
        with run_lock(rd.path, wait=not args.no_wait):  # the whole evaluation: docs/reliability.md
            generate_stage(rd, cfg, protocol, inference=args.inference,
                           batch_size=args.batch_size, device=device, progress=show_progress(args),
                           allow_data_change=args.allow_data_change)
            record = evaluate_stage(rd, cfg, protocol, inference=args.inference,
                                    batch_size=args.batch_size, device=device,
                                    progress=show_progress(args), force=args.force,
                                    allow_data_change=args.allow_data_change,
                                    segmenter_weights=args.segmenter_weights)
        out = rd.metrics_file
    else:
        if not args.dataset:
            raise ConfigError("evaluate --images: --dataset is required")
        hdist.init(args.device)
        if args.allow_data_change:
            raise ConfigError("evaluate --images: --allow-data-change applies to --run only")
        overrides = [*args.overrides, *(["dataset.verify_content=true"]
                                        if args.verify_content else [])]
        record, out = evaluate_folder(
            Path(args.images), args.dataset, split=args.split, protocol=args.protocol,
            out=args.out, label=args.label, config_files=args.config, overrides=overrides,
            skip=args.skip, batch_size=args.batch_size or 8, device=resolve_device(args.device),
            progress=show_progress(args), segmenter_weights=args.segmenter_weights)
    if hdist.info().is_main and not args.no_leaderboard:
        from harness.report.refresh import after_evaluate
        after_evaluate(record, run_dir=Path(args.run) if args.run else None,
                       runs_dir=args.runs_dir, results_dir=args.results_dir)
    if hdist.info().is_main:
        emit_json({"metrics_file": str(out), "key": f"{record['protocol']['id']}/"
                   f"{record.get('inference')}", "metrics": metric_values(record)})
    from harness.skip_report import unrequested_skips
    label = record.get("variant") or record.get("method") or str(out)
    return skipped_status(args, [(label, unrequested_skips(record))])
