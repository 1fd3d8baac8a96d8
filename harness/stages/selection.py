"""Checkpoint selection on the held-out slice of the training split (never the evaluation split).

With ``train.select_every = N`` (and ``train.holdout > 0``) the trainer scores the generator every
N steps and at the end on the held-out training images (:mod:`harness.train.holdout`): it
generates them at the protocol's resolution, measures FID and mIoU / accuracy with the protocol's
settings (its split replaced by the held-out slice, one generation seed) and

- appends ``{"step": k, "holdout_eval": {...}}`` to ``train_log.jsonl``;
- moves the 'best' pointer to the checkpoint with the best ``train.select_metric``;
- records in ``<run>/selection.json`` every score and the keys it read.

A metric that cannot be computed (its weights are missing, offline) is recorded as skipped with
the reason; when the selection metric is skipped at every point the final checkpoint is 'best'
and the record says so. :func:`checkpoint_choice` tells the metrics record which checkpoint was
evaluated and how it was chosen.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from harness.core import dist as hdist
from harness.core.config import ExperimentConfig
from harness.rundir import RunDir

LOG = logging.getLogger("harness")
SELECTION_FILE = "selection.json"
# What a held-out evaluation measures: FID and the segmentation scores, nothing else.
_NOT_MEASURED = ("kid", "real", "diversity", "classwise")


def selection_path(rd: RunDir) -> Path:
    return rd.path / SELECTION_FILE


def read_selection(rd: RunDir) -> dict | None:
    path = selection_path(rd)
    return json.loads(path.read_text()) if path.is_file() else None


def holdout_protocol(protocol: Any) -> Any:
    """The protocol with its split replaced by the held-out slice (split 'train', every held-out
    image, the first generation seed). A distinct name, so its reference statistics are cached
    apart (the cache is keyed by protocol hash and the slice's content anyway)."""
    return dataclasses.replace(protocol, name=f"{protocol.name}-holdout", split="train",
                               num_images=None, seeds=tuple(protocol.seeds[:1]))


class HoldoutSelector:
    """``best_metric(method, step)`` for :func:`harness.train.trainer.train`: lower is better
    (mIoU is negated); None when the selection metric could not be computed."""

    def __init__(self, cfg: ExperimentConfig, rd: RunDir, protocol: Any, *,
                 device: Any = None) -> None:
        from harness.stages.common import build_dataset
        from harness.train.holdout import split_holdout

        self.cfg, self.rd, self.metric = cfg, rd, cfg.train.select_metric
        self.protocol = holdout_protocol(protocol)
        full = build_dataset(cfg.dataset, "train", train=False, seed=cfg.train.seed)
        _, self.holdout = split_holdout(full, cfg.train.holdout, cfg.train.holdout_seed)
        self.device = device
        self.skip = tuple(dict.fromkeys([*_NOT_MEASURED, *cfg.eval.skip]))

    def __call__(self, method: Any, step: int) -> float | None:
        from harness.train import rng

        saved = rng.capture()  # scoring must not move the training's random streams
        try:
            metrics, keys = self._score(method, step)
        finally:
            rng.restore(saved)
            method.train()
        m = metrics.get(self.metric) or {}
        value = m.get("value") if m.get("status", "ok") == "ok" else None
        if value is None:
            LOG.warning("checkpoint selection: held-out %s at step %d not computed (%s)",
                        self.metric, step, m.get("reason", "not recorded"))
        if hdist.info().is_main:
            self._record(step, metrics, keys, value)
        if value is None:
            return None
        return -float(value) if self.metric == "miou" else float(value)

    def _score(self, method: Any, step: int) -> tuple[dict, list[str]]:
        from evaluators.evaluate import evaluate_images
        from harness.generate import generate_samples, manifest_images
        from harness.train.placement import resolve_device

        d = hdist.info()
        out = self.rd.path / "selection_samples" / f"step_{step:08d}"
        device = self.device if self.device is not None else resolve_device(self.cfg.train.device, d)
        method.eval()
        manifest = generate_samples(method, self.holdout, self.protocol, out, inference="random",
                         batch_size=self.cfg.eval.batch_size, dist=d, progress=False,
                         origin={"run_id": self.rd.run_id, "step": step, "holdout": True})
        hdist.barrier()
        seed = int(self.protocol.seeds[0])
        record = evaluate_images(manifest_images(manifest, out, seed), self.holdout, self.protocol, multimodal=False,
                                 device=device, batch_size=self.cfg.eval.batch_size,
                                 skip=self.skip, dist=d, seed=seed,
                                 progress=False, method=self.cfg.method.name)
        hdist.barrier()
        if d.is_main:
            shutil.rmtree(out, ignore_errors=True)  # scored; the numbers are what is kept
        keys = [r.key for r in self.holdout.records()]
        metrics = {k: v for k, v in (record.get("metrics") or {}).items()
                   if k in ("fid", "miou", "accuracy")}
        return metrics, keys

    def _record(self, step: int, metrics: dict, keys: list[str], value: float | None) -> None:
        from harness.core.io import atomic_write_text
        from harness.train.logs import LOG_FILE

        short = {k: (v.get("value") if v.get("status", "ok") == "ok"
                     else f"{v.get('status')}: {v.get('reason', '')}".strip())
                 for k, v in metrics.items()}
        line = {"step": step, "holdout_eval": {"images": len(keys), "metrics": short,
                                               "selection_metric": self.metric},
                "wall": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        with open(self.rd.path / LOG_FILE, "a") as f:
            f.write(json.dumps(line) + "\n")
        data = read_selection(self.rd) or {}
        # A resumed run re-scores the steps after its checkpoint: keep one entry per step.
        evals = [e for e in data.get("evaluations", []) if e.get("step") != step]
        evals.append({"step": step, "metrics": short, "value": value})
        data.update({"metric": self.metric, "split": self.holdout.split,
                     "protocol": self.protocol.name, "keys_read": keys,
                     "evaluations": sorted(evals, key=lambda e: e["step"])})
        atomic_write_text(selection_path(self.rd), json.dumps(data, indent=1) + "\n")


def holdout_selector(cfg: ExperimentConfig, rd: RunDir, protocol: Any | None = None
                     ) -> HoldoutSelector | None:
    """The selector of ``cfg`` (None when ``train.select_every`` is 0)."""
    if not cfg.train.select_every:
        return None
    if protocol is None:
        from harness.stages.common import resolve_protocol
        protocol = resolve_protocol(cfg.eval.protocol, cfg.dataset.name)
    return HoldoutSelector(cfg, rd, protocol)


def evaluated_checkpoint(cfg: ExperimentConfig) -> str:
    """Which pointer the run generates from: 'best' when a selection is configured, else
    'latest' (then 'best' and 'latest' are the same final checkpoint)."""
    return "best" if cfg.train.select_every else "latest"


def checkpoint_choice(rd: RunDir, cfg: ExperimentConfig, checkpoint: str | None) -> dict:
    """For the metrics record: which checkpoint was evaluated and how it was chosen."""
    from harness.train import checkpoint as ckpt

    # The pointers that name the evaluated file now (the generate verb may have used another).
    named = [w for w in (ckpt.BEST, ckpt.LATEST)
             if (p := ckpt.read_pointer(rd.checkpoints, w)) is not None and p.name == checkpoint]
    out: dict[str, Any] = {"file": checkpoint, "pointer": evaluated_checkpoint(cfg),
                           "named_by": named, "holdout": cfg.train.holdout,
                           "holdout_seed": cfg.train.holdout_seed}
    sel = read_selection(rd) if cfg.train.select_every else None
    if checkpoint is not None and ckpt.BEST not in named and ckpt.LATEST not in named:
        out["chosen_by"] = "chosen by the user (neither the 'best' nor the 'latest' checkpoint)"
        return out
    if sel and ckpt.BEST not in named:
        out["chosen_by"] = ("the 'latest' checkpoint, not the one selected on the held-out "
                            "slice ('best')")
        return out
    if not sel:
        out["chosen_by"] = "final checkpoint of training (no selection configured)"
        return out
    scored = [e for e in sel.get("evaluations", []) if e.get("value") is not None]
    if not scored:
        out["chosen_by"] = (f"final checkpoint of training: the held-out {sel.get('metric')} "
                            "could not be computed at any selection point")
    else:
        word = "highest" if sel.get("metric") == "miou" else "lowest"
        out["chosen_by"] = (f"{word} {sel.get('metric')} on {len(sel.get('keys_read', []))} "
                            f"held-out training images, scored every "
                            f"{cfg.train.select_every} steps and at the end")
    out["selection"] = {"metric": sel.get("metric"), "split": sel.get("split"),
                        "steps_scored": [e["step"] for e in sel.get("evaluations", [])],
                        "values": {str(e["step"]): e["value"] for e in sel.get("evaluations", [])}}
    return out
