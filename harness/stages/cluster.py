"""`cluster-features`: re-run a method's after-training step (pix2pixHD: K-means of the encoder's
instance features) and save the result as a new checkpoint."""
from __future__ import annotations

import time
from typing import Any

from harness.core.config import ExperimentConfig
from harness.rundir import RunDir
from harness.stages.common import build_dataset, checkpoint_file, jsonable, load_method


def cluster_features(rd: RunDir, cfg: ExperimentConfig, *, which: str = "latest",
                     batch_size: int = 1, device: Any = None) -> dict:
    """Re-run ``method.after_training`` on the train split and save the result as a new
    checkpoint of the same step (pix2pixHD: K-means of the encoder's instance features).
    Samples generated from the old checkpoint are regenerated on the next generate/run."""
    from harness.train import checkpoint as ckpt
    from harness.train.holdout import split_holdout

    path = checkpoint_file(rd, which)
    state = ckpt.read(path)
    method = load_method(rd, cfg, which=str(path), device=device)
    # The images the run trained on: never the held-out slice (harness.train.holdout), which
    # only checkpoint selection reads, and never the evaluation split.
    train_ds, _ = split_holdout(build_dataset(cfg.dataset, "train", train=False,
                                              seed=cfg.train.seed),
                                cfg.train.holdout, cfg.train.holdout_seed)
    start = time.perf_counter()
    with rd.stage_timer("cluster_features", checkpoint=path.name) as stage:
        method.eval()
        summary = method.after_training(train_ds, batch_size=batch_size) or {}
        state["method"]["state"] = method.state_dict()
        state["after_training"] = jsonable(summary)
        new = ckpt.write(rd.checkpoints, state, keep_last=max(1, cfg.train.keep_last))
        stage.update(summary=jsonable(summary), new_checkpoint=new.name)
    return {"run_dir": str(rd.path), "checkpoint": str(new), "summary": jsonable(summary),
            "seconds": round(time.perf_counter() - start, 3)}
