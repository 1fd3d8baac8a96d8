"""Experiment configurations validated against every registered method and dataset.

:mod:`harness.core.config` layers the YAML files and validates them strictly, but it is part of the
foundation and must not import what registers into it; this module sits above methods/ and the
datasets and hands it the registries' lookup. Same arguments and errors as the core functions,
without ``section_type``.
"""
from __future__ import annotations

from pathlib import Path

from harness.core import config
from harness.core.config import ExperimentConfig, Provenance


def section_type(section: str, name: str) -> type:
    """The dataclass that validates a config section: the method's ``Config`` for ``"method"``,
    the dataset's ``Options`` for ``"dataset"``; an unknown name raises RegistryError."""
    # Imported here so that loading a config file does not import torch before it is needed.
    if section == "method":
        from methods import METHODS
        return METHODS.get(name).Config
    if section == "dataset":
        from harness.core.data import DATASETS
        return DATASETS.get(name).Options
    raise ValueError(f"no registry for config section {section!r}")


def load_experiment(method: str | None = None, dataset: str | None = None, *,
                    config_files: list[str | Path] = (), overrides: list[str] = (),
                    configs_root: Path | None = None) -> ExperimentConfig:
    """Resolve the layered configuration for (method, dataset) and validate it strictly."""
    return config.load_experiment(method, dataset, config_files=config_files, overrides=overrides,
                                  configs_root=configs_root, section_type=section_type)


def build_experiment(data: dict, prov: Provenance,
                     sources: list[str] | None = None) -> ExperimentConfig:
    """Validate a merged mapping into an ExperimentConfig."""
    return config.build_experiment(data, prov, sources, section_type=section_type)


def load_resolved(path: str | Path) -> ExperimentConfig:
    """Load a run directory's resolved config.yaml (a single, complete layer)."""
    return config.load_resolved(path, section_type=section_type)
