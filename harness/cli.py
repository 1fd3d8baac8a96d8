"""The command line: ``python -m harness <verb> ...`` (see docs/cli.md).

Machine output (JSON, tables) goes to stdout; logs and progress bars go to stderr. A user error
(bad configuration, dataset, missing weights, unwritable output, ...) exits with status 2 and
ONE line on stderr; ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import errno
import logging
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable, Sequence

LOG = logging.getLogger("harness")

EXIT_USER_ERROR = 2


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exceptions that are the user's to fix: one line, exit status 2."""
    from evaluators.evaluate import EvaluationError
    from evaluators.pairing import PairingError
    from harness.core.records import RecordError
    from evaluators.segmenters._common import CheckpointMismatch as SegmenterCheckpointMismatch
    from evaluators.segmenters.trained import TrainedSegmenterError
    from harness.core.weights import WeightsHashMismatch, WeightsUnavailable
    from harness.core.config import ConfigError
    from harness.core.data.base import DatasetError
    from harness.core.errors import UserError
    from harness.generate import GenerationError
    from harness.core.io import OutputError, UnreadableFileError
    from harness.core.registry import RegistryError
    from harness.rundir import RunError
    from harness.train.checkpoint import CheckpointMismatch
    from methods.base import NotSupported

    return (ConfigError, DatasetError, RegistryError, WeightsUnavailable, WeightsHashMismatch,
            OutputError, RunError, NotSupported, GenerationError, EvaluationError, PairingError,
            RecordError, TrainedSegmenterError, SegmenterCheckpointMismatch, CheckpointMismatch,
            UserError, UnreadableFileError)



# An OSError with one of these errno values is the environment's (a full disk, a read-only or
# missing folder), not a bug: one line naming the path, exit status 2.
_ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES,
                                 errno.EPERM, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG})


def _environment_error(exc: BaseException) -> OSError | None:
    """The OSError of ``exc`` or of its causes that is the environment's to fix, if any."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS:
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


from harness.cli_common import emit_json, open_run  # noqa: E402

# ----------------------------------------------------------------------------------------------
# Parser
# ----------------------------------------------------------------------------------------------
class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def _example(text: str) -> str:
    return "example:\n" + textwrap.indent(textwrap.dedent(text).strip("\n"), "  ")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show tracebacks and debug logs")
    p.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="no progress bars, warnings only")


def _config_args(p: argparse.ArgumentParser, *, method: bool = True) -> None:
    if method:
        p.add_argument("--method", help="method name (see `harness list methods`); "
                       "may also come from a --config file")
    p.add_argument("--dataset", help="dataset name (see `harness list datasets`)")
    p.add_argument("--config", action="append", default=[], metavar="FILE",
                   help="extra YAML layer(s), applied after the built-in presets (repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override one key, e.g. --set train.batch_size=4 (YAML-typed, repeatable)")


def _run_dir_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs-dir", default="runs", help="root of the run directories (default: runs)")
    p.add_argument("--run-id", help="run directory name (default: <config name>-<config hash>)")
    p.add_argument("--fresh", action="store_true",
                   help="delete this configuration's run directory and start over")
    _no_wait_arg(p)


def _no_wait_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-wait", action="store_true",
                   help="when another process is writing to the run directory, fail at once "
                        "(exit status 2) instead of waiting for it to finish")


def _strict_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strict", action="store_true",
                   help="exit with status 3 when a requested metric was skipped (e.g. for a "
                        "missing weights file); the summary on stderr names each one")


def _data_identity_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--verify-content", action="store_true",
                   help="fingerprint the dataset by file contents (sha256) instead of size + "
                        "mtime (same as --set dataset.verify_content=true; slower)")
    p.add_argument("--allow-data-change", action="store_true",
                   help="go on when the dataset's files differ from those this run recorded "
                        "(recorded in run.json; samples and metrics are recomputed); without "
                        "it a changed dataset is an error")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness", formatter_class=_Formatter,
        description="Train, generate, evaluate and compare semantic image synthesis methods "
                    "under one hashed evaluation protocol.",
        epilog=_example("python -m harness run --method all --dataset synthetic "
                        "--allow-missing-weights"))
    _common(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add(name: str, help: str, example: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, formatter_class=_Formatter,
                           epilog=_example(example))
        _common(p)
        return p

    p = add("run", "train -> generate -> evaluate -> record -> refresh the leaderboard "
                   "(re-running resumes)",
            """
            python -m harness run --method all --dataset synthetic --allow-missing-weights
            python -m harness run --method spade,pix2pixhd --dataset cityscapes \\
                --set dataset.root=/data/cityscapes --set train.batch_size=4
            """)
    _config_args(p)
    _run_dir_args(p)
    p.add_argument("--results-dir", default="results",
                   help="where leaderboard.{csv,md,tex} are written (default: results)")
    p.add_argument("--protocol", help="evaluation protocol name or YAML path (default: the "
                   "config's eval.protocol, else the dataset's default)")
    p.add_argument("--allow-missing-weights", action="store_true",
                   help="train even when a metric's weight file (Inception, LPIPS backbone, "
                        "segmenter) is missing; that metric is recorded as skipped. Without it "
                        "the preflight stops the run (exit 2) before anything is built")
    _strict_arg(p)
    _data_identity_args(p)
    p.set_defaults(func=cmd_run)

    p = add("train", "train one configuration (resumes from 'latest'; works under torchrun)",
            """
            python -m harness train --method spade --dataset synthetic --set train.max_steps=20
            torchrun --nproc_per_node 2 -m harness train --method spade --dataset cityscapes
            """)
    _config_args(p)
    _run_dir_args(p)
    _data_identity_args(p)
    p.set_defaults(func=cmd_train)

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
    _data_identity_args(p)
    _no_wait_arg(p)
    p.set_defaults(func=cmd_generate)

    p = add("evaluate", "evaluate a run's samples, or a folder of images named after the "
                        "split's keys",
            """
            python -m harness evaluate --run runs/synthetic/spade/spade-synthetic-0123456789
            python -m harness evaluate --images out/pngs --dataset cityscapes --split val \\
                --label official-spade --set dataset.root=/data/cityscapes
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
    _strict_arg(p)
    _data_identity_args(p)
    _no_wait_arg(p)
    p.set_defaults(func=cmd_evaluate)

    p = add("leaderboard", "write results/leaderboard.{csv,md,tex} from every metrics.json",
            """
            python -m harness leaderboard --format csv,md
            """)
    p.add_argument("--format", default="csv,latex,md",
                   help="comma-separated: csv, latex, md (default: all)")
    p.add_argument("--runs-dir", action="append", default=None,
                   help="folder(s) searched for metrics.json (default: runs)")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--no-published", action="store_true",
                   help="leave out the paper numbers of results/published.csv")
    p.add_argument("--print", dest="print_format", choices=("csv", "md", "latex", "none"),
                   default="md", help="also print this table on stdout (default: md)")
    p.set_defaults(func=cmd_leaderboard)

    p = add("list", "list methods, datasets, protocols or segmenters",
            """
            python -m harness list methods
            python -m harness list protocols --json
            """)
    p.add_argument("what", choices=("methods", "datasets", "protocols", "segmenters"))
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p.set_defaults(func=cmd_list)

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
    _config_args(p)
    p.add_argument("--checkpoint", nargs="+", required=True, metavar="NAME=PATH",
                   help="released files by network: G=path [D=path E=path features=path]")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--run-id", default="official", help="run directory name (default: official)")
    p.add_argument("--force", action="store_true", help="replace an existing run of that name "
                   "(the new run is built and checked first, then swapped in)")
    _no_wait_arg(p)
    p.set_defaults(func=cmd_import_official)

    p = add("cluster-features", "re-run the method's after-training step (pix2pixHD K-means of "
                                "instance features) and save a new checkpoint",
            """
            python -m harness cluster-features --run runs/cityscapes/pix2pixhd/pix2pixhd-cityscapes-0123456789
            """)
    p.add_argument("--run", required=True)
    p.add_argument("--checkpoint", default="latest")
    p.add_argument("--batch-size", type=int, default=1)
    _no_wait_arg(p)
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

    from harness import edit_cli
    edit_cli.add_parser(add)
    return parser


# ----------------------------------------------------------------------------------------------
# Output helpers
# ----------------------------------------------------------------------------------------------


def emit_table(rows: list[dict], columns: Sequence[str]) -> None:
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip()]
    for r in rows:
        lines.append("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns).rstrip())
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def _progress(args: argparse.Namespace) -> bool:
    return not getattr(args, "quiet", False)


def _load_cfg(args: argparse.Namespace, method: str | None = None):
    from harness.experiment import load_experiment

    overrides = list(args.overrides)
    if getattr(args, "verify_content", False):
        overrides.append("dataset.verify_content=true")
    return load_experiment(method if method is not None else args.method, args.dataset,
                           config_files=args.config, overrides=overrides)


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


# ----------------------------------------------------------------------------------------------
# Verbs
# ----------------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from harness.core import dist as hdist
    from harness.run import run_experiment

    methods = _methods_of(args.method)
    if args.run_id and len(methods) > 1:
        from harness.core.config import ConfigError
        raise ConfigError("--run-id names one run; it cannot be used with several methods")
    cfgs = [_load_cfg(args, m) for m in methods]  # every config is validated before training
    hdist.init(cfgs[0].train.device)
    _preflight_runs(cfgs, args)  # every weight file of every run, before any training
    summaries, failed = [], []
    for cfg in cfgs:
        LOG.info("== %s on %s ==", cfg.method.name, cfg.dataset.name)
        try:
            s = run_experiment(cfg, runs_dir=args.runs_dir, results_dir=args.results_dir,
                               protocol=args.protocol, run_id=args.run_id, fresh=args.fresh,
                               progress=_progress(args), leaderboard=True, preflight=False,
                               allow_data_change=args.allow_data_change,
                               wait=not args.no_wait)
        except Exception as exc:
            # With several methods one failure (a diverged training, a missing file) must not
            # cost the others: report it, go on, exit non-zero at the end.
            if len(cfgs) == 1 or getattr(args, "debug", False):
                raise
            LOG.error("%s failed: %s", cfg.method.name, _message(exc))
            failed.append(cfg.method.name)
            summaries.append({"method": cfg.method.name, "dataset": cfg.dataset.name,
                              "error": f"{type(exc).__name__}: {_message(exc)}"})
            continue
        summaries.append(s.__dict__)
    if hdist.info().is_main:
        emit_json(summaries if len(summaries) > 1 else summaries[0])
    status = _skipped_status(args, [(s["method"], s.get("skipped") or {}) for s in summaries])
    if failed:
        sys.stderr.write(f"error: {len(failed)} of {len(cfgs)} runs failed: {', '.join(failed)}\n")
        return 1
    return status


def _preflight_runs(cfgs: Sequence[Any], args: argparse.Namespace) -> None:
    from harness.preflight import preflight, training_finished
    from harness.run import resolve_protocol

    items = [(cfg, resolve_protocol(args.protocol or cfg.eval.protocol, cfg.dataset.name),
              not training_finished(cfg, args.runs_dir, args.run_id, args.fresh))
             for cfg in cfgs]
    preflight(items, allow_missing_weights=args.allow_missing_weights)


def _skipped_status(args: argparse.Namespace, entries: Sequence[tuple[str, dict]]) -> int:
    """Print the skipped-metrics summary on stderr (rank 0); 3 with --strict when any."""
    from harness.core import dist as hdist
    from harness.skip_report import EXIT_SKIPPED_METRICS, summary

    text = summary(entries)
    if text is not None and hdist.info().is_main:
        sys.stderr.write(text + "\n")
    return EXIT_SKIPPED_METRICS if text is not None and args.strict else 0


def cmd_train(args: argparse.Namespace) -> int:
    from harness.core import dist as hdist
    from harness.preflight import preflight, training_finished
    from harness.run import prepare_run, train_stage

    from harness.rundir import RunDir
    from harness.runlock import claimed_run

    cfg = _load_cfg(args)
    hdist.init(cfg.train.device)
    if not training_finished(cfg, args.runs_dir, args.run_id, args.fresh):
        preflight([(cfg, None, True)])  # the files training loads, before anything is built
    with claimed_run(RunDir.for_config(cfg, args.runs_dir, args.run_id).path,
                     wait=not args.no_wait):
        rd = prepare_run(cfg, args.runs_dir, run_id=args.run_id, fresh=args.fresh)
        LOG.info("run %s: %s", rd.run_id, rd.path)
        summary = train_stage(cfg, rd, progress=_progress(args),
                              allow_data_change=args.allow_data_change)
    if hdist.info().is_main:
        emit_json({"run_dir": str(rd.path), "run_id": rd.run_id, "train": summary})
    return 0


def _open_run(path: str, verify_content: bool = False):
    rd, cfg = open_run(path)
    if verify_content:
        cfg.dataset.options.verify_content = True
    return rd, cfg


def cmd_generate(args: argparse.Namespace) -> int:
    from harness.core import dist as hdist
    from harness.run import generate_stage, resolve_protocol

    from harness.runlock import run_lock

    rd, cfg = _open_run(args.run, args.verify_content)
    hdist.init(cfg.train.device)
    protocol = resolve_protocol(args.protocol or cfg.eval.protocol, cfg.dataset.name)
    with run_lock(rd.path, wait=not args.no_wait):
        manifest = generate_stage(rd, cfg, protocol, inference=args.inference,
                                  which=args.checkpoint, batch_size=args.batch_size,
                                  progress=_progress(args), force=args.force,
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
    from harness.run import (evaluate_folder, evaluate_stage, generate_stage, metric_values,
                             resolve_device, resolve_protocol)

    if bool(args.run) == bool(args.images):
        raise ConfigError("evaluate: pass either --run RUN or --images DIR --dataset D")
    if args.run:
        for flag in ("dataset", "split", "out", "label"):
            if getattr(args, flag):
                raise ConfigError(f"evaluate --run: --{flag} applies to --images only")
        rd, cfg = _open_run(args.run, args.verify_content)
        hdist.init(cfg.train.device)
        if args.skip:
            cfg.eval.skip = sorted(set(cfg.eval.skip) | set(args.skip))
        protocol = resolve_protocol(args.protocol or cfg.eval.protocol, cfg.dataset.name)
        device = resolve_device(args.device if args.device != "auto" else cfg.train.device)
        from harness.runlock import run_lock
        with run_lock(rd.path, wait=not args.no_wait):  # the whole evaluation: docs/reliability.md
            generate_stage(rd, cfg, protocol, inference=args.inference,
                           batch_size=args.batch_size, device=device, progress=_progress(args),
                           allow_data_change=args.allow_data_change)
            record = evaluate_stage(rd, cfg, protocol, inference=args.inference,
                                    batch_size=args.batch_size, device=device,
                                    progress=_progress(args), force=args.force,
                                    allow_data_change=args.allow_data_change)
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
            progress=_progress(args))
    if hdist.info().is_main:
        emit_json({"metrics_file": str(out), "key": f"{record['protocol']['id']}/"
                   f"{record.get('inference')}", "metrics": metric_values(record)})
    from harness.skip_report import unrequested_skips
    label = record.get("variant") or record.get("method") or str(out)
    return _skipped_status(args, [(label, unrequested_skips(record))])


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from harness.core.config import ConfigError
    from harness.run import refresh_leaderboard

    from harness.results.build import parse_formats

    try:
        formats = parse_formats(args.format)
    except ValueError as exc:
        raise ConfigError(f"--format {args.format!r}: {exc}") from None
    runs = args.runs_dir or ["runs"]
    written = refresh_leaderboard(runs, args.results_dir, formats=formats,
                                  published=not args.no_published)
    for p in written:
        LOG.info("wrote %s", p)
    if args.print_format != "none":
        suffix = {"csv": ".csv", "md": ".md", "latex": ".tex"}[args.print_format]
        shown = [p for p in written if Path(p).suffix == suffix]
        if shown:
            sys.stdout.write(Path(shown[0]).read_text())
    return 0


def _source_fields(source: str) -> dict:
    """'builtin (mod.Cls)' / 'plugin <dist> <version> (mod:attr)' -> structured fields."""
    kind, _, rest = source.partition(" ")
    out: dict[str, Any] = {"source": kind}
    if kind == "plugin":
        head, _, target = rest.partition(" (")
        dist, _, version = head.partition(" ")
        out.update(source=f"plugin {dist} {version}".strip(), distribution=dist,
                   version=version or None, target=target.rstrip(")") or None)
    else:
        out["target"] = rest.strip("()") or None
    return out


def list_rows(what: str) -> tuple[list[dict], list[str]]:
    """Rows and table columns of `harness list <what>`."""
    from harness.core.registry import summary_line

    if what == "methods":
        from methods import METHODS
        rows = []
        for e in METHODS.entries():
            cls = e.obj
            caps = _class_capabilities(cls)
            rows.append({"name": e.name, **_source_fields(e.source),
                         "description": summary_line(cls), "capabilities": caps})
        return rows, ["name", "source", "capabilities", "description"]
    if what == "datasets":
        from harness.core.data import DATASETS
        rows = [{"name": e.name, **_source_fields(e.source), "description": summary_line(e.obj),
                 "default_protocol": getattr(e.obj, "default_protocol", None)}
                for e in DATASETS.entries()]
        return rows, ["name", "source", "default_protocol", "description"]
    if what == "segmenters":
        from evaluators.segmenters import SEGMENTERS
        rows = [{"name": e.name, **_source_fields(e.source), "label_space": e.obj.label_space,
                 "description": e.obj.description} for e in SEGMENTERS.entries()]
        return rows, ["name", "source", "label_space", "description"]
    if what == "protocols":
        from evaluators.protocol import load_protocol, protocol_names
        from harness.core.config import ConfigError
        rows = []
        for name in protocol_names():
            try:
                p = load_protocol(name)
            except ConfigError as exc:  # one broken file must not hide the others
                LOG.warning("protocol %s cannot be loaded: %s", name, exc)
                rows.append({"name": name, "error": str(exc), "description": f"ERROR: {exc}"})
                continue
            rows.append({"name": p.name, "id": p.id, "hash": p.hash(), "dataset": p.dataset,
                         "split": p.split, "resolution": "x".join(map(str, p.resolution)),
                         "num_images": p.num_images, "seeds": list(p.seeds),
                         "segmenter": p.segmentation.segmenter,
                         "description": (p.description or "").strip().splitlines()[0]
                         if p.description else "", "source": p.source})
        return rows, ["name", "hash", "dataset", "split", "resolution", "segmenter", "description"]
    raise ValueError(what)


def _class_capabilities(cls: type) -> dict[str, bool]:
    """Capabilities a method class declares without building it (multimodal is a property of
    the configuration, e.g. SPADE with or without its encoder, so it is reported as declared)."""
    from methods.base import Method
    caps = {"encode_style": getattr(cls, "encode_style", None) is not Method.encode_style,
            "import_official": getattr(cls, "import_official", None) is not Method.import_official}
    declared = cls.__dict__.get("multimodal") if "multimodal" in cls.__dict__ else \
        next((k.__dict__["multimodal"] for k in cls.__mro__ if "multimodal" in k.__dict__), None)
    if isinstance(declared, bool):
        caps["multimodal"] = declared
    else:  # a property: multimodal when overridden (it may still depend on the configuration)
        caps["multimodal"] = declared is not Method.__dict__["multimodal"]
    return caps


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        on = [k for k, v in value.items() if v is True]
        return ",".join(on) if on else "-"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12]
    return str(value)


def cmd_list(args: argparse.Namespace) -> int:
    rows, columns = list_rows(args.what)
    if args.json:
        emit_json(rows)
    else:
        emit_table([{c: _cell(r.get(c)) for c in columns} for r in rows], columns)
    return 0


def cmd_train_segmenter(args: argparse.Namespace) -> int:
    from harness.run import train_segmenter

    result = train_segmenter(args.dataset, config_files=args.config, overrides=args.overrides,
                             device=args.device, out=args.out, progress=_progress(args))
    emit_json(result)
    return 0


def cmd_import_official(args: argparse.Namespace) -> int:
    from harness.core.config import ConfigError
    from harness.run import import_official

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
    cfg = _load_cfg(args)
    result = import_official(cfg, paths, runs_dir=args.runs_dir, run_id=args.run_id,
                             force=args.force, wait=not args.no_wait)
    emit_json(result)
    return 0


def cmd_cluster_features(args: argparse.Namespace) -> int:
    from harness.run import cluster_features

    from harness.runlock import run_lock

    rd, cfg = _open_run(args.run)
    with run_lock(rd.path, wait=not args.no_wait):
        result = cluster_features(rd, cfg, which=args.checkpoint, batch_size=args.batch_size)
    emit_json(result)
    return 0


def cmd_check_data(args: argparse.Namespace) -> int:
    from harness.run import check_data

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


# ----------------------------------------------------------------------------------------------
def _setup_logging(debug: bool, quiet: bool) -> None:
    level = logging.DEBUG if debug else (logging.WARNING if quiet else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_harness_cli", False):
            root.removeHandler(h)
    handler._harness_cli = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    if not debug:
        for noisy in ("PIL", "matplotlib", "urllib3", "mmengine"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def _is_training_error(exc: BaseException) -> bool:
    try:
        from harness.train.guards import TrainingError
    except ImportError:
        return False
    return isinstance(exc, TrainingError)


def _message(exc: BaseException) -> str:
    """The error's own message (which names the file / key); continuation lines indented."""
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    if isinstance(exc, OSError) and exc.filename is None and exc.strerror:
        text = exc.strerror  # OutputError(errno, message): the message without "[Errno n]"
    lines = [ln.rstrip() for ln in str(text).strip().splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    return "\n  ".join([lines[0]] + [ln.strip() if not ln.startswith(" ") else ln.rstrip()
                                     for ln in lines[1:]])


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    debug = bool(getattr(args, "debug", False))
    _setup_logging(debug, bool(getattr(args, "quiet", False)))
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        errors = user_error_types()
    except Exception:  # noqa: BLE001 - a broken import must still reach the traceback path
        if debug:
            raise
        errors = ()
    try:
        return int(func(args) or 0)
    except errors as exc:
        if debug:
            raise
        sys.stderr.write(f"error: {_message(exc)}\n")
        return EXIT_USER_ERROR
    except Exception as exc:
        # The runner's TrainingError (non-finite loss, out of memory, interruption, unreadable
        # checkpoint) explains itself and carries its exit status.
        code = getattr(exc, "exit_code", None)
        if not debug and isinstance(code, int) and _is_training_error(exc):
            sys.stderr.write(f"error: {_message(exc)}\n")
            return code
        env = None if debug else _environment_error(exc)
        if env is None:
            raise
        where = f"{env.filename}: " if env.filename else ""
        sys.stderr.write(f"error: {where}{env.strerror or env} (check that the folder exists, "
                         "is writable and has free space)\n")
        return EXIT_USER_ERROR
    except KeyboardInterrupt as exc:
        # Ctrl-C, or SIGTERM turned into harness.interrupt.Interrupted (exit 128 + signal)
        sys.stderr.write(f"{str(exc) or 'interrupted'}\n")
        return int(getattr(exc, "exit_code", 130))
