"""The ``figure`` verb: figures papers print, from what runs already wrote (harness/figures/).

Every sub-command writes PNG + PDF + a sidecar JSON (what each panel shows and which run it came
from) under ``--out`` (default results/figures/) with a name derived from its arguments, and
prints ``{"figures": [...], ...}`` on stdout.
"""
from __future__ import annotations

import argparse
from typing import Callable

from harness.cli.common import Formatter, common_options, emit_json, example

EXAMPLE = """
python -m harness figure compare --dataset synthetic --methods ccfpse,spade,pix2pixhd,groupdnet --n 4
python -m harness figure multimodal --dataset synthetic --method groupdnet --k 4
python -m harness figure edits --run runs/synthetic/groupdnet/<run-id>
python -m harness figure classes --dataset synthetic --methods ccfpse,spade,pix2pixhd,groupdnet
python -m harness figure curves runs/synthetic/spade/<run-id> runs/synthetic/ccfpse/<run-id>
"""


def _methods(text: str) -> list[str]:
    return [m.strip() for m in text.split(",") if m.strip()]


def add_parser(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("figure", "draw comparison grids, multimodal samples, GroupDNet edits, per-class IoU "
                      "and training curves from existing runs (PNG + PDF + JSON under "
                      "results/figures/)", EXAMPLE)
    kinds = p.add_subparsers(dest="kind", metavar="KIND")
    kinds.required = True

    def kind(name: str, help: str, example_text: str) -> argparse.ArgumentParser:
        q = kinds.add_parser(name, help=help, description=help, formatter_class=Formatter,
                             epilog=example(example_text))
        common_options(q)
        q.add_argument("--out", default="results/figures",
                       help="output folder (default: results/figures)")
        return q

    def selection(q: argparse.ArgumentParser) -> None:
        q.add_argument("--dataset", required=True, help="dataset name (runs/<dataset>/...)")
        q.add_argument("--runs-dir", default="runs", help="where the runs are (default: runs)")
        q.add_argument("--protocol", default=None,
                       help="protocol name or id of the samples / evaluation (default: the "
                            "first found)")
        q.add_argument("--inference", default=None, choices=("random", "encoded"),
                       help="inference mode of the samples (default: the first found)")

    q = kind("compare", "rows = label maps; columns = label map, real image, each method",
             "python -m harness figure compare --dataset synthetic --methods spade,ccfpse --n 4")
    selection(q)
    q.add_argument("--methods", required=True, type=_methods, help="comma-separated methods")
    keys = q.add_mutually_exclusive_group()
    keys.add_argument("--keys", type=_methods, default=None, help="comma-separated sample keys")
    keys.add_argument("--n", type=int, default=6, help="first N common keys (default 6)")
    q.set_defaults(func=cmd_compare)

    q = kind("multimodal", "K samples per label map of a multimodal method (its diversity "
                           "samples)",
             "python -m harness figure multimodal --dataset synthetic --method groupdnet --k 4")
    selection(q)
    q.add_argument("--method", required=True)
    q.add_argument("--k", type=int, default=None, help="samples per label map (default: all)")
    keys = q.add_mutually_exclusive_group()
    keys.add_argument("--keys", type=_methods, default=None, help="comma-separated sample keys")
    keys.add_argument("--n", type=int, default=4, help="first N keys (default 4)")
    q.set_defaults(func=cmd_multimodal)

    q = kind("edits", "one figure per `harness edit` result of a run (GroupDNet re-sampling, "
                      "morphing, ...)",
             "python -m harness figure edits --run runs/synthetic/groupdnet/<run-id>")
    q.add_argument("--run", required=True, help="the run directory")
    q.add_argument("--operations", type=_methods, default=["resample", "morph", "mix",
                                                           "manipulate"],
                   help="comma-separated edit operations (default: all)")
    q.set_defaults(func=cmd_edits)

    q = kind("classes", "per-class IoU heatmap (classes x methods) and the classes where the "
                        "methods differ most",
             "python -m harness figure classes --dataset synthetic --methods spade,ccfpse")
    selection(q)
    q.add_argument("--methods", required=True, type=_methods, help="comma-separated methods")
    q.add_argument("--top", type=int, default=8, help="classes in the bar chart (default 8)")
    q.set_defaults(func=cmd_classes)

    q = kind("curves", "training losses (and any other logged number) from train_log.jsonl, "
                       "one panel per quantity",
             "python -m harness figure curves runs/synthetic/spade/<run-id>")
    q.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    q.add_argument("--quantity", action="append", default=None,
                   help="only this quantity, e.g. loss/G_GAN (repeatable)")
    q.set_defaults(func=cmd_curves)


def _emit(paths) -> int:
    import json
    from pathlib import Path

    out = []
    for png in paths:
        side = Path(png).with_suffix(".json")
        out.append({"png": str(png), "pdf": str(Path(png).with_suffix(".pdf")),
                    "sidecar": str(side), **_sources(json.loads(side.read_text()))})
    emit_json({"figures": out})
    return 0


def _sources(sidecar: dict) -> dict:
    """Which run each column / panel came from, for stdout."""
    if "columns" in sidecar:
        return {"columns": [{k: c[k] for k in ("title", "run", "protocol_id", "inference", "seed")
                             if k in c} for c in sidecar["columns"]]}
    if "source" in sidecar:
        return {"run": sidecar["source"]["run"]}
    if "methods" in sidecar:
        return {"columns": [{k: m[k] for k in ("display_name", "run", "evaluation")}
                            for m in sidecar["methods"]]}
    return {k: sidecar[k] for k in ("runs", "run") if k in sidecar}


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.figures.compare import compare_figure

    return _emit([compare_figure(args.dataset, args.methods, keys=args.keys, n=args.n,
                                 runs_dir=args.runs_dir, out_dir=args.out,
                                 protocol=args.protocol, inference=args.inference)])


def cmd_multimodal(args: argparse.Namespace) -> int:
    from harness.figures.multimodal import multimodal_figure

    return _emit([multimodal_figure(args.dataset, args.method, k=args.k, keys=args.keys,
                                    n=args.n, runs_dir=args.runs_dir, out_dir=args.out,
                                    protocol=args.protocol, inference=args.inference)])


def cmd_edits(args: argparse.Namespace) -> int:
    from harness.figures.multimodal import edit_figures

    return _emit(edit_figures(args.run, operations=args.operations, out_dir=args.out))


def cmd_classes(args: argparse.Namespace) -> int:
    from harness.figures.classes import classes_figure

    return _emit(list(classes_figure(args.dataset, args.methods, runs_dir=args.runs_dir,
                                     out_dir=args.out, protocol=args.protocol,
                                     inference=args.inference, top=args.top)))


def cmd_curves(args: argparse.Namespace) -> int:
    from harness.figures.curves import curves_figure

    return _emit([curves_figure(args.runs, out_dir=args.out, quantities=args.quantity)])
