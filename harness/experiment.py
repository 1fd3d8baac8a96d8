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
    """Resolve the layered configuration for (method, dataset) and validate it strictly.

    A plugin method needs a preset (:func:`require_plugin_preset`): its defaults are not guessed."""
    require_plugin_preset(method, dataset, config_files=config_files, configs_root=configs_root)
    return config.load_experiment(method, dataset, config_files=config_files, overrides=overrides,
                                  configs_root=configs_root, section_type=section_type)


def build_experiment(data: dict, prov: Provenance,
                     sources: list[str] | None = None) -> ExperimentConfig:
    """Validate a merged mapping into an ExperimentConfig."""
    return config.build_experiment(data, prov, sources, section_type=section_type)


def load_resolved(path: str | Path) -> ExperimentConfig:
    """Load a run directory's resolved config.yaml (a single, complete layer)."""
    return config.load_resolved(path, section_type=section_type)


def require_plugin_preset(method: str | None, dataset: str | None, *,
                          config_files: list[str | Path] = (),
                          configs_root: Path | None = None) -> None:
    """A plugin method without ``methods/<method>.yaml`` or ``experiments/<method>-<dataset>.yaml``
    in configs/ or in any plugin's config folder (:mod:`harness.core.presets`) is an error naming
    where it looked, unless a --config file gives the method's settings itself."""
    from harness.core.presets import PresetError, config_roots, find_preset
    from harness.core.registry import RegistryError

    layers = [config.load_yaml(f) for f in config_files]
    sections = [layer.get("method") for layer in layers if isinstance(layer.get("method"), dict)]
    method = method or next((s["name"] for s in sections if s.get("name")), None)
    dataset = dataset or next((layer["dataset"]["name"] for layer in layers
                               if isinstance(layer.get("dataset"), dict)
                               and layer["dataset"].get("name")), None)
    if not method or any(set(s) - {"name"} for s in sections):
        return
    from methods import METHODS
    try:
        source = METHODS.entry(method).source
    except RegistryError:
        return  # the unknown name is reported where the method section is validated
    if not source.startswith("plugin"):
        return
    roots = config_roots(Path(configs_root) if configs_root is not None else config.CONFIGS_ROOT)
    wanted = [f"methods/{method}.yaml"] + ([f"experiments/{method}-{dataset}.yaml"] if dataset
                                           else [])
    if any(find_preset(roots, w) is not None for w in wanted):
        return
    where = "; ".join(f"{r.path} ({r.source})" if r.source != str(r.path) else str(r.path)
                      for r in roots)
    raise PresetError(
        f"method {method!r} ({source}) has no preset: looked for {' and '.join(wanted)} in "
        f"{where}. A plugin ships its presets in its package under a 'harness.configs' entry "
        "point (docs/plugins.md#presets); or pass --config FILE with the method's settings")
