"""`train-segmenter`: train (or fetch from the cache) the harness segmenter of a dataset without a
published one (the recipe itself: :mod:`evaluators.segmenters.trained`)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

from harness.core.config import ConfigError, parse_override
from harness.stages.common import dataset_spec, jsonable, resolve_device


def train_segmenter(dataset: str, *, config_files: Sequence[str | Path] = (),
                    overrides: Sequence[str] = (), device: str = "auto", out: str | None = None,
                    progress: bool = True) -> dict:
    """Train (or fetch from the cache) the harness segmenter of a dataset without a published
    one. ``overrides``: ``dataset.*`` keys for the dataset options, ``segmenter.steps`` /
    ``segmenter.batch_size`` / ``segmenter.seed`` for the recipe."""
    from evaluators.segmenters.trained import TrainRecipe, train_segmenter as _train

    recipe_keys = {"steps": int, "batch_size": int, "seed": int}
    recipe: dict[str, Any] = {}
    data_overrides = []
    for text in overrides:
        key, value = parse_override(text)
        if key.startswith("dataset."):
            data_overrides.append(text)
        elif key.startswith("segmenter.") and key.split(".", 1)[1] in recipe_keys:
            name = key.split(".", 1)[1]
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"--set {text!r}: {key} expects int, got {value!r}")
            recipe[name] = value
        else:
            raise ConfigError(f"--set {text!r}: train-segmenter takes dataset.* keys and "
                              f"segmenter.{{{','.join(recipe_keys)}}}")
    spec = dataset_spec(dataset, config_files=config_files, overrides=data_overrides)
    try:
        recipe_obj = TrainRecipe(**recipe)
    except ValueError as exc:
        raise ConfigError(f"--set segmenter.*: {exc}") from None
    dev = resolve_device(device)
    start = time.perf_counter()
    result = _train(dataset, spec.options, device=dev, out_path=out, progress=progress,
                    recipe=recipe_obj)
    return {"dataset": dataset, "checkpoint": str(result.checkpoint), "cached": result.cached,
            "miou": result.miou, "accuracy": result.accuracy,
            "seconds": round(time.perf_counter() - start, 3), "record": jsonable(result.record)}
