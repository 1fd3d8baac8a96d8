"""The ``edit`` verb: class-wise control of a trained GroupDNet run (see :mod:`harness.edit`)."""
from __future__ import annotations

import argparse
from typing import Any, Callable

EXAMPLE = """
python -m harness edit resample --run runs/synthetic/groupdnet/<run-id> --key 000003 --class 2 --k 6
python -m harness edit mix --run RUN --key 000003 --take sky=000007 --take road=000011
python -m harness edit manipulate --run RUN --key 000003 --replace 2:4 --box 0,0,32,64
python -m harness edit morph --run RUN --key 000003 --to 000007 --steps 8
"""


def add_parser(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("edit", "class-wise control of a GroupDNet run: re-sample one class, mix class codes "
                    "from reference images, edit the label map, morph between two images "
                    "(PNGs + grid + manifest.json under <run>/edits/)", EXAMPLE)
    ops = p.add_subparsers(dest="operation", metavar="OPERATION")
    ops.required = True

    def op(name: str, help: str) -> argparse.ArgumentParser:
        q = ops.add_parser(name, help=help, description=help)
        q.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks and debug logs")
        q.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                       help="no progress bars, warnings only")
        q.add_argument("--run", required=True, help="the run directory")
        q.add_argument("--key", required=True, help="the label map's key in the split")
        q.add_argument("--split", default="val", help="dataset split of the keys (default: val)")
        q.add_argument("--checkpoint", default="latest", help="'latest', 'best' or a file")
        q.add_argument("--seed", type=int, default=0, help="seed of the drawn codes (default 0)")
        q.set_defaults(func=cmd_edit)
        return q

    q = op("resample", "K images that differ only in one class's code")
    q.add_argument("--class", dest="class_", required=True, help="class id or name")
    q.add_argument("--k", type=int, default=4, help="number of samples (default 4)")
    q = op("mix", "take class codes from reference images: --take CLASS=KEY (repeatable)")
    q.add_argument("--take", action="append", default=[], metavar="CLASS=KEY", required=True)
    q.add_argument("--codes", choices=("random", "encoded"), default="random",
                   help="codes of the other classes: a seeded draw or the encoded real image")
    q = op("manipulate", "replace class A by class B in the label map, keeping the codes")
    q.add_argument("--replace", required=True, metavar="A:B", help="class ids or names")
    q.add_argument("--box", metavar="Y0,X0,Y1,X1", help="only inside this box (pixels)")
    q.add_argument("--codes", choices=("random", "encoded"), default="random")
    q = op("morph", "interpolate the codes of two encoded images in N steps (frames + GIF)")
    q.add_argument("--to", required=True, help="key of the second image")
    q.add_argument("--steps", type=int, default=8, help="frames, both ends included (default 8)")


def cmd_edit(args: argparse.Namespace) -> int:
    from harness import edit
    from harness.cli.common import emit_json, open_run
    from harness.stages.common import build_dataset, checkpoint_origin, load_method

    rd, cfg = open_run(args.run)
    method = load_method(rd, cfg, which=args.checkpoint)
    edit.require_classwise(method)
    method.eval()
    dataset = build_dataset(cfg.dataset, args.split, train=False, seed=cfg.train.seed)
    names = list(dataset.info.class_names)
    batch = edit.item(dataset, args.key)
    result: Any
    if args.operation == "resample":
        result = edit.resample(method, batch, edit.class_id(args.class_, names), k=args.k,
                               seed=args.seed, names=names)
    elif args.operation == "mix":
        takes = []
        for text in args.take:
            cls, sep, key = text.partition("=")
            if not sep or not cls or not key:
                raise edit.EditError(f"--take {text!r}: expected CLASS=KEY, e.g. sky=000007")
            takes.append((edit.class_id(cls, names), edit.item(dataset, key)))
        result = edit.mix(method, batch, takes, codes=args.codes, seed=args.seed, names=names)
    elif args.operation == "manipulate":
        a, sep, b = args.replace.partition(":")
        if not sep:
            raise edit.EditError(f"--replace {args.replace!r}: expected A:B, e.g. 2:4 or sky:tree")
        box = None
        if args.box:
            try:
                box = tuple(int(v) for v in args.box.split(","))
            except ValueError:
                box = ()
            if len(box) != 4:
                raise edit.EditError(f"--box {args.box!r}: expected four integers Y0,X0,Y1,X1")
        result = edit.manipulate(method, batch, edit.class_id(a, names), edit.class_id(b, names),
                                 box=box, codes=args.codes, seed=args.seed, names=names)
    else:
        result = edit.morph(method, batch, edit.item(dataset, args.to), steps=args.steps)
    origin = checkpoint_origin(rd, args.checkpoint)
    out = edit.write_edit(result, rd.path, num_classes=dataset.info.num_label_channels,
                          class_names=names, origin={"origin": origin, "split": args.split})
    emit_json({"edit": str(out), "operation": result.operation,
               "images": [str(out / f"{i:02d}.png") for i in range(len(result.images))],
               "grid": str(out / "grid.png"), "manifest": str(out / "manifest.json")})
    return 0
