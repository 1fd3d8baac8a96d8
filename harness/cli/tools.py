"""The verbs around the pipeline: `train-segmenter`, `import-official`, `cluster-features`,
`check-data`; their work: :mod:`harness.stages` (segmenter, import_official, cluster, check_data)."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from harness.cli.common import config_args, emit_json, load_cfg, no_wait_arg, open_run, show_progress


def add_parsers(add: Callable[..., argparse.ArgumentParser]) -> None:
    """The `train-segmenter`, `import-official`, `cluster-features`, `check-data` sub-commands."""
    p = add("train-segmenter", "train (or fetch from the cache) the harness segmenter of a "
                               "dataset without a published one (synthetic, folder datasets)",
            """
            python -m harness train-segmenter --dataset synthetic
            python -m harness train-segmenter --dataset folder --set dataset.root=/data/mine \
                --set segmenter.steps=600 --out mine-segmenter.pt
            """)
    p.add_argument("--dataset", required=True)
    p.add_argument("--config", action="append", default=[], metavar="FILE",
                   help="YAML layer(s) for the dataset options")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="dataset.* options, or segmenter.steps / segmenter.batch_size / "
                        "segmenter.seed of the training recipe")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", help="also write the checkpoint here (plus <out>.json)")
    p.set_defaults(func=cmd_train_segmenter)

    p = add("import-official", "create a run from checkpoints released by a method's authors",
            """
            python -m harness import-official --method spade --dataset cityscapes \\
                --checkpoint G=checkpoints/cityscapes_pretrained/latest_net_G.pth \\
                --set dataset.root=/data/cityscapes
            python -m harness evaluate --run runs/cityscapes/spade/official
            """)
    config_args(p)
    p.add_argument("--checkpoint", nargs="+", required=True, metavar="NAME=PATH",
                   help="released files by network: G=path [D=path E=path features=path]")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--run-id", default="official", help="run directory name (default: official)")
    p.add_argument("--force", action="store_true", help="replace an existing run of that name "
                   "(the new run is built and checked first, then swapped in)")
    no_wait_arg(p)
    p.set_defaults(func=cmd_import_official)

    p = add("cluster-features", "re-run the method's after-training step (pix2pixHD K-means of "
                                "instance features) and save a new checkpoint",
            """
            python -m harness cluster-features --run runs/cityscapes/pix2pixhd/pix2pixhd-cityscapes-0123456789
            """)
    p.add_argument("--run", required=True)
    p.add_argument("--checkpoint", default="latest")
    p.add_argument("--batch-size", type=int, default=1)
    no_wait_arg(p)
    p.set_defaults(func=cmd_cluster_features)

    p = add("check-data", "validate a dataset's layout and every file; print what is missing",
            """
            python -m harness check-data --dataset cityscapes --set dataset.root=/data/cityscapes
            """)
    p.add_argument("--dataset", required=True)
    p.add_argument("--split", action="append", default=None,
                   help="split(s) to check (default: train and val)")
    p.add_argument("--config", action="append", default=[], metavar="FILE")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_check_data)


def cmd_train_segmenter(args: argparse.Namespace) -> int:
    from harness.stages.segmenter import train_segmenter

    result = train_segmenter(args.dataset, config_files=args.config, overrides=args.overrides,
                             device=args.device, out=args.out, progress=show_progress(args))
    emit_json(result)
    return 0


def cmd_import_official(args: argparse.Namespace) -> int:
    from harness.core.config import ConfigError
    from harness.stages.import_official import import_official

    paths = {}
    for item in args.checkpoint:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"--checkpoint {item!r}: expected NAME=PATH, e.g. G=latest_net_G.pth")
        if name in paths:
            raise ConfigError(f"--checkpoint {name} given twice")
        paths[name] = path
    if not args.method or not args.dataset:
        raise ConfigError("import-official needs --method and --dataset")
    cfg = load_cfg(args)
    result = import_official(cfg, paths, runs_dir=args.runs_dir, run_id=args.run_id,
                             force=args.force, wait=not args.no_wait)
    emit_json(result)
    return 0


def cmd_cluster_features(args: argparse.Namespace) -> int:
    from harness.stages.cluster import cluster_features

    from harness.runlock import run_lock

    rd, cfg = open_run(args.run)
    with run_lock(rd.path, wait=not args.no_wait):
        result = cluster_features(rd, cfg, which=args.checkpoint, batch_size=args.batch_size)
    emit_json(result)
    return 0


def cmd_check_data(args: argparse.Namespace) -> int:
    from harness.stages.check_data import check_data

    report = check_data(args.dataset, splits=args.split, config_files=args.config,
                        overrides=args.overrides)
    if args.json:
        emit_json(report)
    else:
        for split in report["splits"]:
            status = "ok" if split["ok"] else "PROBLEMS"
            sys.stdout.write(f"{report['dataset']} {split['split']}: {split['samples']} samples, "
                             f"{status}\n")
            for problem in split["problems"]:
                lines = str(problem).splitlines() or [""]
                sys.stdout.write(f"  - {lines[0]}\n")
                for line in lines[1:]:
                    sys.stdout.write(f"      {line}\n")
    return 0 if report["ok"] else 1
