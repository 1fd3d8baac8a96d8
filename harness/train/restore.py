"""The method of a trained run, loaded from one of its checkpoints (for generation / evaluation),
and the check that a checkpoint's state fits the method as configured now."""
from __future__ import annotations

from pathlib import Path

import torch

from harness.core import dist as hdist
from harness.core.config import ExperimentConfig
from harness.train import checkpoint as ckpt
from harness.train.placement import resolve_device


def restore_method(run_dir: str | Path, cfg: ExperimentConfig | None = None, *,
                   which: str | Path = "latest", device: torch.device | str | None = None):
    """The method of a run, loaded from a checkpoint and put in eval mode on ``device``.

    ``which``: 'latest' (falls back to the previous checkpoint if the newest is unreadable),
    'best', or the path of a checkpoint file. ``cfg`` defaults to the run's config.yaml, or the
    configuration stored in the checkpoint. ``device`` defaults to cfg.train.device ('auto':
    this rank's GPU, else the CPU).
    """
    from methods import METHODS
    from methods.base import Runtime

    run_dir = Path(run_dir)
    directory = ckpt.checkpoint_dir(run_dir)
    if str(which) == ckpt.LATEST:
        found = ckpt.read_latest(directory)
        if found is None:
            raise ckpt.CheckpointError(f"{run_dir} has no checkpoint (looked in {directory}); train "
                                       "it first or import official weights")
        path, state = found
    else:
        path = ckpt.find_checkpoint(directory, str(which))
        if path is None:
            where = which if str(which) == ckpt.BEST else Path(which)
            raise ckpt.CheckpointError(f"no checkpoint {where!s} for run {run_dir} (looked in "
                                       f"{directory})")
        state = ckpt.read(path)
    if cfg is None:
        cfg = config_of(run_dir, path, state)
    info = ckpt.dataset_info(state)
    ckpt.check_compatible(state, path, method=cfg.method.name, dataset=cfg.dataset.name, info=None)
    dev = torch.device(device) if device is not None else resolve_device(cfg.train.device,
                                                                          hdist.info())
    spe = int((state.get("sampler") or {}).get("steps_per_epoch", 1) or 1)
    method = METHODS.get(cfg.method.name).build(cfg.method.config, info,
                                               Runtime(dev, 1, 0, spe))
    load_method_state(method, state, path)
    method.to(dev)
    method.eval()
    return method


def config_of(run_dir: Path, path: Path, state: dict) -> ExperimentConfig:
    from harness.core.config import Provenance
    from harness.experiment import build_experiment, load_resolved

    resolved = run_dir / "config.yaml"
    if resolved.is_file():
        return load_resolved(resolved)
    return build_experiment(dict(state["config"]), Provenance(), [f"{path} (stored config)"])


def load_method_state(method, state: dict, path: Path) -> None:
    try:
        method.load_state_dict(state["method"]["state"])
    except (KeyError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:500] if str(exc).strip() else type(exc).__name__
        raise ckpt.CheckpointMismatch(
            f"checkpoint {path} does not fit method '{state['method']['name']}' as configured now "
            f"(were its hyper-parameters changed?): {first}") from exc
