"""The `run` verb (train -> generate -> evaluate -> record -> leaderboard, for one or several methods)
and the `train` verb (training alone); their work: :mod:`harness.stages`."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, Callable, Sequence

from harness.cli.common import (config_args, data_identity_args, emit_json, load_cfg,
                                run_dir_args, show_progress, skipped_status, strict_arg)
from harness.cli.errors import message

LOG = logging.getLogger("harness")


def add_parsers(add: Callable[..., argparse.ArgumentParser]) -> None:
    """The `run`, `train` sub-commands."""
    p = add("run", "train -> generate -> evaluate -> record -> refresh the leaderboard "
                   "(re-running resumes)",
            """
            python -m harness run --method all --dataset synthetic --allow-missing-weights
            python -m harness run --method spade,pix2pixhd --dataset cityscapes \\
                --set dataset.root=/data/cityscapes --set train.batch_size=4
            python -m harness run --method all --dataset synthetic --seeds 0,1,2 \\
                --allow-missing-weights
            python -m harness run --method spade --dataset folder --set dataset.root=/data/mine \\
                --segmenter-weights seg/mine.pt     # from `train-segmenter --out seg/mine.pt`
            """)
    config_args(p)
    run_dir_args(p)
    p.add_argument("--seeds", metavar="S,S,...",
                   help="training seeds (train.seed): one run per method and seed, each its own "
                        "run directory (the seed is part of the run id's hash), trained one after "
                        "the other; re-running resumes at the seed and step where it stopped. The "
                        "leaderboard shows mean ± std over the seeds. Not the protocol's "
                        "generation seeds (docs/statistics.md#training-seeds)")
    p.add_argument("--results-dir", default="results",
                   help="where leaderboard.{csv,md,tex} are written (default: results)")
    p.add_argument("--protocol", help="evaluation protocol name or YAML path (default: the "
                   "config's eval.protocol, else the dataset's default)")
    p.add_argument("--allow-missing-weights", action="store_true",
                   help="train even when a metric's weight file (Inception, LPIPS backbone, "
                        "segmenter) is missing; that metric is recorded as skipped. Without it "
                        "the preflight stops the run (exit 2) before anything is built")
    strict_arg(p)
    segmenter_weights_arg(p)
    data_identity_args(p)
    p.set_defaults(func=cmd_run)

    p = add("train", "train one configuration (resumes from 'latest'; works under torchrun)",
            """
            python -m harness train --method spade --dataset synthetic --set train.max_steps=20
            torchrun --nproc_per_node 2 -m harness train --method spade --dataset cityscapes
            """)
    config_args(p)
    run_dir_args(p)
    data_identity_args(p)
    p.set_defaults(func=cmd_train)


def segmenter_weights_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--segmenter-weights", metavar="FILE",
                   help="score mIoU / accuracy with this checkpoint of the protocol's segmenter "
                        "instead of its default (e.g. one written by `python -m harness "
                        "train-segmenter --dataset D --out FILE`, or the paper segmenter's file). "
                        "Checked before anything runs; the record names it by sha256 and, unless "
                        "it is the published file, its rows get their own table "
                        "(docs/segmenters.md#your-own-segmenter)")


def _methods_of(text: str | None) -> list[str | None]:
    from methods import METHODS

    if text is None:
        return [None]
    if text.strip() == "all":
        names = METHODS.names()
        if not names:
            from harness.core.registry import RegistryError
            raise RegistryError("no methods are registered")
        return names
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        from harness.core.config import ConfigError
        raise ConfigError(f"--method {text!r}: expected a name, a comma-separated list or 'all'")
    for n in names:
        METHODS.entry(n)  # unknown names fail before anything runs
    return names


def cmd_run(args: argparse.Namespace) -> int:
    from harness.core import dist as hdist
    from harness.stages.pipeline import run_experiment

    from harness.cli.training_seeds import configs_per_seed

    methods = _methods_of(args.method)
    if args.run_id and len(methods) > 1:
        from harness.core.config import ConfigError
        raise ConfigError("--run-id names one run; it cannot be used with several methods")
    # every config (one per method and training seed) is validated before training
    cfgs = configs_per_seed(args, methods, load_cfg)
    hdist.init(cfgs[0].train.device)
    seg_weights = getattr(args, "segmenter_weights", None)
    if seg_weights is not None:
        from harness.stages.pipeline import check_run_segmenter_weights
        from harness.stages.common import resolve_protocol
        for cfg in cfgs:  # the file fits every run's protocol and data, before any training
            check_run_segmenter_weights(
                cfg, resolve_protocol(args.protocol or cfg.eval.protocol, cfg.dataset.name),
                seg_weights)
    _preflight_runs(cfgs, args)  # every weight file of every run, before any training
    summaries, failed = [], []
    for cfg in cfgs:
        LOG.info("== %s on %s (training seed %d) ==", cfg.method.name, cfg.dataset.name,
                 cfg.train.seed)
        try:
            s = run_experiment(cfg, runs_dir=args.runs_dir, results_dir=args.results_dir,
                               protocol=args.protocol, run_id=args.run_id, fresh=args.fresh,
                               progress=show_progress(args), leaderboard=True, preflight=False,
                               allow_data_change=args.allow_data_change,
                               wait=not args.no_wait, segmenter_weights=seg_weights)
        except Exception as exc:
            # With several methods one failure (a diverged training, a missing file) must not
            # cost the others: report it, go on, exit non-zero at the end.
            if len(cfgs) == 1 or getattr(args, "debug", False):
                raise
            LOG.error("%s (training seed %d) failed: %s", cfg.method.name, cfg.train.seed,
                      message(exc))
            failed.append(f"{cfg.method.name} (training seed {cfg.train.seed})"
                          if getattr(args, "seeds", None) else cfg.method.name)
            summaries.append({"method": cfg.method.name, "dataset": cfg.dataset.name,
                              "train_seed": cfg.train.seed,
                              "error": f"{type(exc).__name__}: {message(exc)}"})
            continue
        summaries.append(s.__dict__)
    if hdist.info().is_main:
        emit_json(summaries if len(summaries) > 1 else summaries[0])
    status = skipped_status(args, [(s["method"], s.get("skipped") or {}) for s in summaries])
    if failed:
        sys.stderr.write(f"error: {len(failed)} of {len(cfgs)} runs failed: {', '.join(failed)}\n")
        return 1
    return status


def _preflight_runs(cfgs: Sequence[Any], args: argparse.Namespace) -> None:
    from harness.preflight import preflight, training_finished
    from harness.stages.common import resolve_protocol

    items = [(cfg, resolve_protocol(args.protocol or cfg.eval.protocol, cfg.dataset.name),
              not training_finished(cfg, args.runs_dir, args.run_id, args.fresh))
             for cfg in cfgs]
    preflight(items, allow_missing_weights=args.allow_missing_weights)


def cmd_train(args: argparse.Namespace) -> int:
    from harness.core import dist as hdist
    from harness.preflight import preflight, training_finished
    from harness.stages.common import prepare_run
    from harness.stages.train import train_stage

    from harness.rundir import RunDir
    from harness.runlock import claimed_run

    cfg = load_cfg(args)
    hdist.init(cfg.train.device)
    if not training_finished(cfg, args.runs_dir, args.run_id, args.fresh):
        preflight([(cfg, None, True)])  # the files training loads, before anything is built
    with claimed_run(RunDir.for_config(cfg, args.runs_dir, args.run_id).path,
                     wait=not args.no_wait):
        rd = prepare_run(cfg, args.runs_dir, run_id=args.run_id, fresh=args.fresh)
        LOG.info("run %s: %s", rd.run_id, rd.path)
        summary = train_stage(cfg, rd, progress=show_progress(args),
                              allow_data_change=args.allow_data_change)
    if hdist.info().is_main:
        emit_json({"run_dir": str(rd.path), "run_id": rd.run_id, "train": summary})
    return 0
