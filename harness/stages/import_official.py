"""`import-official`: a run directory whose checkpoint holds the weights a method's authors released."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from harness.core.config import ConfigError, ExperimentConfig
from harness.rundir import RunDir, RunError
from harness.stages.common import build_dataset, make_run_dir, resolve_protocol


def _build_method(cfg: ExperimentConfig, info: Any, device: Any = None):
    from methods import METHODS
    from methods.base import Runtime

    import torch
    device = torch.device(device) if device is not None else torch.device("cpu")
    cls = METHODS.get(cfg.method.name)
    return cls.build(cfg.method.config, info, Runtime(device=device)).to(device)


def import_official(cfg: ExperimentConfig, paths: Mapping[str, str | Path], *,
                    runs_dir: str | Path = "runs", run_id: str = "official",
                    force: bool = False, wait: bool = True) -> dict:
    """A run directory whose checkpoint holds weights released by the method's authors.

    ``paths``: network -> file, as the method's ``import_official`` expects (e.g. G, D, E,
    features). The checkpoint is a regular harness checkpoint at step 0, marked finished, so
    ``generate --run`` / ``evaluate --run`` work on it as on a trained run.

    Everything is validated and the new run is built in a hidden sibling folder before an
    existing run is touched; ``force`` then swaps it in (:func:`harness.rundir.replace_run`), so
    a bad file or a failure at any point leaves the old run as it was."""
    from harness.core.weights import file_sha256
    from harness.rundir import replace_run
    from harness.runlock import run_lock
    from harness.train import checkpoint as ckpt

    for name, p in paths.items():
        if not Path(p).is_file():
            raise RunError(f"--checkpoint {name}={p}: file does not exist")
    rd = RunDir.for_config(cfg, runs_dir, run_id)

    def check_target() -> None:
        if rd.path.exists() and (not rd.path.is_dir() or any(rd.path.iterdir())):
            if not force:
                raise RunError(f"{rd.path} already exists; pass --force to replace it or choose "
                               "another --run-id")
            rd.check_replaceable()

    check_target()  # before the (slow) import: fail fast
    from methods import METHODS
    from methods.base import Method, NotSupported

    if METHODS.get(cfg.method.name).import_official is Method.import_official:
        raise NotSupported(f"method {cfg.method.name!r} has no importer for official checkpoints")
    try:  # the label semantics come from the split that will be evaluated
        split = resolve_protocol(cfg.eval.protocol, cfg.dataset.name).split
    except ConfigError:
        split = "val"
    info = build_dataset(cfg.dataset, split, train=False, seed=cfg.train.seed).info
    method = _build_method(cfg, info)
    report = method.import_official({k: Path(v) for k, v in paths.items()})
    files = {k: {"path": str(Path(v).resolve()), "sha256": file_sha256(Path(v))}
             for k, v in paths.items()}
    summary = {"loaded": dict(report.loaded), "dropped": dict(report.dropped),
               "notes": list(report.notes), "files": files}
    state = ckpt.make_state(method=method, cfg=cfg, info=info, step=0, finished=True,
                            after_training={"imported": True})
    state["imported"] = summary
    with run_lock(rd.path, wait=wait):
        check_target()  # again: another process may have created it meanwhile
        with rd.staging() as new:
            make_run_dir(new.path)
            new.write_config(cfg)
            path = ckpt.write(new.checkpoints, state, keep_last=1)
            new.update_status(run_id=rd.run_id, method=cfg.method.name, dataset=cfg.dataset.name,
                              config_hash=cfg.hash(), imported=True)
            new.set_stage("train", status="done", imported=True, checkpoint=path.name, **summary)
            replace_run(new, rd)
    return {"run_dir": str(rd.path), "run_id": rd.run_id,
            "checkpoint": str(rd.checkpoints / path.name), **summary}
