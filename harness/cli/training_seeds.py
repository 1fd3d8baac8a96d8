"""`run --seeds 0,1,2`: one configuration per method and training seed (``train.seed``).

Training seeds are not the protocol's generation seeds (``seeds`` in a protocol and in metrics
records): a training seed changes the trained weights (initialisation, data order, noise), so
each is its own run directory, whose run id hashes the seed with the rest of the configuration.
The runs are trained one after the other; re-running the same command skips the finished ones
and resumes the interrupted one from its latest checkpoint (docs/statistics.md#training-seeds).
"""
from __future__ import annotations

import argparse
import copy
from typing import Any, Callable, Sequence

from harness.core.config import ConfigError


def parse_training_seeds(text: str) -> list[int]:
    """'0,1,2' -> [0, 1, 2]; an error naming --seeds for anything else (empty, repeated,
    negative, not an integer)."""
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise ConfigError(f"--seeds {text!r}: expected training seeds such as 0,1,2")
    seeds = []
    for item in items:
        try:
            seed = int(item)
        except ValueError:
            raise ConfigError(f"--seeds {text!r}: {item!r} is not an integer; expected training "
                              "seeds such as 0,1,2") from None
        if seed < 0:
            raise ConfigError(f"--seeds {text!r}: training seeds are >= 0, got {seed}")
        if seed in seeds:
            raise ConfigError(f"--seeds {text!r}: seed {seed} is given twice")
        seeds.append(seed)
    return seeds


def configs_per_seed(args: argparse.Namespace, methods: Sequence[str | None],
                     load_cfg: Callable[..., Any]) -> list[Any]:
    """The configurations to run, method-major: [m1 s1, m1 s2, ..., m2 s1, ...]. Without
    ``--seeds``, one per method with the configured train.seed."""
    text = getattr(args, "seeds", None)
    if text is None:
        return [load_cfg(args, m) for m in methods]
    seeds = parse_training_seeds(text)
    if any(o.split("=", 1)[0].strip() == "train.seed" for o in args.overrides):
        raise ConfigError("--seeds and --set train.seed=... both set the training seed; use one")
    if args.run_id and len(seeds) > 1:
        raise ConfigError("--run-id names one run; it cannot be used with several --seeds")
    cfgs = []
    for m in methods:
        for seed in seeds:
            one = copy.copy(args)
            one.overrides = [*args.overrides, f"train.seed={seed}"]
            cfgs.append(load_cfg(one, m))
    return cfgs
