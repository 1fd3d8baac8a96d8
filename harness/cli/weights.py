"""The `weights` verb: every weight file the harness may load (where it looks, present / verified,
how to get it), narrowed to one run or protocol; `weights add FILE` verifies and copies a file
into the weights folder (the listing itself: :mod:`harness.weights_catalog`; docs/weights.md)."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from harness.cli.common import emit_json


def add_parser(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("weights", "list every weight file (expected sha256, where it is looked for, "
                       "present / verified, where to get it); `weights add FILE` verifies one "
                       "and copies it into the weights folder",
            """
            python -m harness weights
            python -m harness weights --protocol cityscapes-paper --json
            python -m harness weights --for runs/synthetic/spade/<run-id>
            python -m harness --weights-dir ~/weights weights add ~/Downloads/vgg19-dcbb9e9d.pth
            python -m harness weights add drn.pth --as drn-d-105-cityscapes
            """)
    p.add_argument("action", nargs="?", choices=("list", "add"), default="list",
                   help="list (default) or add FILE")
    p.add_argument("file", nargs="?", help="add: the file to verify and copy")
    p.add_argument("--as", dest="key", metavar="KEY",
                   help="add: the weights key the file is (default: found by its file name)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--for", dest="run", metavar="RUN",
                       help="only the files this run directory needs (training + its protocol)")
    group.add_argument("--protocol", metavar="P", help="only the files protocol P needs")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p.set_defaults(func=cmd_weights)


def cmd_weights(args: argparse.Namespace) -> int:
    from harness.core.config import ConfigError
    from harness import weights_catalog as wc

    if args.action == "add":
        if not args.file:
            raise ConfigError("weights add: give the FILE to add")
        result = wc.add(args.file, args.key)
        if args.json:
            emit_json(result)
        else:
            sys.stdout.write(f"{result['status']}: {result['key']} -> {result['path']}\n")
        return 0
    if args.file or args.key:
        raise ConfigError("FILE and --as are for `weights add`")
    if args.run:
        rows = wc.rows(needs=wc.needs_for_run(args.run))
    elif args.protocol:
        rows = wc.rows(needs=wc.needs_for_protocol(args.protocol))
    else:
        rows = wc.rows()
    if args.json:
        emit_json({"weights_dir": str(wc.target_dir()), "files": rows})
        return 0
    out = []
    for r in rows:
        out.append(f"{r['key']}  [{r['status']}]")
        out.append(f"  file:     {r['file']}")
        out.append(f"  sha256:   {r['sha256'] or 'not published (not checked)'}")
        if r["path"]:
            found = r["found_sha256"]
            out.append(f"  found:    {r['path']} ({r['origin']}; sha256 {found[:16]}…)")
        out.append("  looks in: " + "\n            ".join(r["search"]))
        out.append(f"  get:      {r['get']}")
        if r.get("used_by"):
            out.append("  used by:  " + "; ".join(r["used_by"]))
    n_missing = sum(r["status"] == "missing" for r in rows)
    n_bad = sum(r["status"] == "unverified" for r in rows)
    out.append(f"{len(rows)} files: {len(rows) - n_missing - n_bad} present, {n_missing} "
               f"missing, {n_bad} unverified (sha256 differs); `python -m harness weights add "
               f"FILE` copies a file into {wc.target_dir()}")
    sys.stdout.write("\n".join(out) + "\n")
    return 0
