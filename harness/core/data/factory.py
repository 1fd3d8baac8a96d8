"""The dataset registry, and building a dataset from its registered name or from an experiment
configuration."""
from __future__ import annotations

from typing import Any

from harness.core.data.base import DatasetOptions, SemanticDataset
from harness.core.registry import Registry


def _validate(name, cls):
    if not (isinstance(cls, type) and issubclass(cls, SemanticDataset)):
        raise TypeError(f"dataset {name!r} must be a SemanticDataset subclass, got {cls!r}")


DATASETS: Registry[type[SemanticDataset]] = Registry(
    "dataset", builtin_packages=("harness.core.data",), entry_point_group="harness.datasets",
    validate=_validate)


def build_dataset(spec_name: str, options: DatasetOptions | dict[str, Any] | None = None,
                  split: str = "train", *, train: bool = False, seed: int = 0) -> SemanticDataset:
    """``DATASETS[spec_name](options, split, train=train, seed=seed)``.

    ``options`` may be the dataset's Options instance, a mapping (validated strictly like a
    config section, e.g. ``{"root": "...", "max_images": 8}``) or None for the defaults."""
    from harness.core.config import from_dict

    cls = DATASETS.get(spec_name)
    if options is None:
        options = cls.Options()
    elif isinstance(options, dict):
        options = from_dict(cls.Options, options, prefix="dataset.")
    return cls(options, split, train=train, seed=seed)


def build_dataset_from_config(cfg: Any, split: str, train: bool) -> SemanticDataset:
    """The dataset of an ``ExperimentConfig``; augmentation seeded by ``cfg.train.seed``."""
    return build_dataset(cfg.dataset.name, cfg.dataset.options, split, train=train,
                         seed=cfg.train.seed)
