"""The leaderboard fixture runs (tests/_leaderboard_helpers.py) plus what a real run folder holds
beside metrics.json: config.yaml (with its layer comments) and train_log.jsonl, so the budget and
command of a row can be read back; and one run whose skipped metric carries network error text
and a local path (which must never reach a paper table)."""
from __future__ import annotations

import json
from pathlib import Path

from _leaderboard_helpers import (PROTO_A, fid, ok, record, skipped, write_fixture_runs,
                                  write_metrics, write_published)

NETWORK_REASON = ("download of https://github.com/x/pt_inception.pth failed: <urlopen error "
                  "[Errno -2] Name or service not known>; put it at /root/.cache/torch/hub/x.pth")

CONFIG = """\
# resolved configuration; sha256 of its identity: 0
# layer: /repo/configs/methods/spade.yaml
# layer: /repo/configs/datasets/synthetic.yaml
# layer: /repo/configs/experiments/spade-synthetic.yaml
# layer: --set train.max_steps=8
name: spade-synthetic
method:
  name: spade
dataset:
  name: cityscapes
  crop_size: 64
  aspect_ratio: 1.0
train:
  batch_size: 4
  grad_accum: 1
  epochs_constant: 4
  epochs_decay: 0
  max_steps: 8
"""


def write_report_fixture(root: Path) -> dict[str, Path]:
    paths = write_fixture_runs(root)
    runs = paths["runs"]
    for run in sorted((runs / "cityscapes" / "spade").iterdir()):
        (run / "config.yaml").write_text(CONFIG)
        (run / "train_log.jsonl").write_text(
            "\n".join(json.dumps({"step": s, "loss": {"G": 1.0}}) for s in (4, 8)) + "\n")
    # GroupDNet under protocol A, FID skipped with a network error and a local path.
    write_metrics(runs / "cityscapes" / "groupdnet" / "groupdnet-x" / "metrics.json", record(
        method="groupdnet", dataset="cityscapes", protocol=PROTO_A, variant="groupdnet-x",
        run_id="groupdnet-x", train_seed=0, metrics={
            "fid": skipped(NETWORK_REASON), "kid": skipped(NETWORK_REASON),
            "miou": ok(57.5), "accuracy": ok(87.0), "lpips_diversity": ok(0.3)}))
    paths["published"] = write_published(root / "results" / "published.csv")
    paths["results"] = root / "results"
    return paths


def narrow_record(root: Path) -> Path:
    """A dataset with two methods and two metrics only: its paper table fits one column."""
    proto = {"name": "ade20k-val", "hash": "dddddddddddd", "id": "ade20k-val-dddddddddddd",
             "fields": {"dataset": "ade20k", "split": "val", "resolution": [256, 256]}}
    for m, f, mi in (("spade", 33.5, 38.25), ("ccfpse", 31.0, 43.5)):
        write_metrics(root / "runs2" / "ade20k" / m / f"{m}-r" / "metrics.json", record(
            method=m, dataset="ade20k", protocol=proto, variant=f"{m}-ade20k", run_id=f"{m}-r",
            n_images=2000, metrics={"fid": fid(f), "miou": ok(mi)}))
    return root / "runs2"
