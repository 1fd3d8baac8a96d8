"""Synthetic metrics.json files in the real run layout runs/<dataset>/<method>/<run-id>/.

The values are made up but fixed, so the leaderboard snapshots are meaningful; the structure is
the evaluators' record schema 1 (see docs/leaderboard.md).
"""
from __future__ import annotations

import json
from pathlib import Path

PROTO_A = {"name": "cityscapes-val", "hash": "aaaaaaaaaaaa", "id": "cityscapes-val-aaaaaaaaaaaa",
           "fields": {"dataset": "cityscapes", "resolution": [256, 512], "num_images": 500,
                      "diversity": {"net": "alex"}}}
PROTO_B = {"name": "cityscapes-val-upsampled", "hash": "bbbbbbbbbbbb",
           "id": "cityscapes-val-upsampled-bbbbbbbbbbbb",
           "fields": {"dataset": "cityscapes", "resolution": [256, 512], "num_images": 500,
                      "diversity": {"net": "vgg"}}}
PROTO_C = {"name": "ade20k-val", "hash": "cccccccccccc", "id": "ade20k-val-cccccccccccc",
           "fields": {"dataset": "ade20k", "resolution": [256, 256], "num_images": 2000,
                      "diversity": {"net": "alex"}}}

SKIP_INCEPTION = "Inception weights pt_inception-2015-12-05 not found offline (HARNESS_OFFLINE=1)"
SKIP_DRN = "segmenter weights drn-d-105_ms_cityscapes.pth not found offline"
LOSSY_NOTE = ("12 of 500 generated images are stored in a lossy format (JPEG/WebP); "
              "compression changes FID and segmentation scores")
NA_DETERMINISTIC = "deterministic method: one output per label map"


def ok(value, **extra) -> dict:
    return {"status": "ok", "value": value, **extra}


def fid(value, per_seed=None) -> dict:
    per_seed = per_seed or [value]
    return ok(value, ci95=[value - 1.0, value + 1.0], n=500, per_seed=per_seed, std=None)


def skipped(reason: str) -> dict:
    return {"status": "skipped", "reason": reason}


def not_applicable(reason: str) -> dict:
    return {"status": "n/a", "reason": reason}


def record(*, method, dataset, protocol, inference="random", variant=None, run_id=None,
           train_seed=None, n_images=500, seeds=(0,), metrics, notes=()) -> dict:
    return {"schema": 1, "method": method, "dataset": dataset, "variant": variant,
            "run_id": run_id, "config_hash": None if run_id is None else f"cfg-{run_id}",
            "train_seed": train_seed, "protocol": protocol, "inference": inference,
            "n_images": n_images, "seeds": list(seeds), "metrics": metrics,
            "weights": {}, "environment": {"torch": "x"}, "notes": list(notes)}


def write_metrics(path: Path, *records: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    evaluations = {f"{r['protocol']['id']}/{r['inference'] or 'none'}": r for r in records}
    path.write_text(json.dumps({"schema": 1, "evaluations": evaluations}, indent=2))
    return path


REAL_A = {"real_miou": ok(71.25), "real_accuracy": ok(93.75)}
REAL_B = {"real_miou": ok(68.5), "real_accuracy": ok(92.0)}

# Three training seeds of one SPADE variant under protocol A (the std over runs).
SPADE_FID = (60.1, 61.3, 59.5)
SPADE_MIOU = (55.0, 56.5, 54.25)


def write_fixture_runs(root: Path) -> dict[str, Path]:
    """The fixed set behind the snapshots. Returns {'runs': runs root, 'images': image folder}."""
    runs = root / "runs"
    for seed, (f, m) in enumerate(zip(SPADE_FID, SPADE_MIOU)):
        rid = f"spade-synthetic-s{seed}"
        kid = ok(0.0125 + 0.001 * seed, std=0.0004, subset_size=100, note="") if seed < 2 \
            else skipped(SKIP_INCEPTION)
        write_metrics(runs / "cityscapes" / "spade" / rid / "metrics.json", record(
            method="spade", dataset="cityscapes", protocol=PROTO_A, variant="spade-synthetic",
            run_id=rid, train_seed=seed, metrics={
                "fid": fid(f), "kid": kid, "miou": ok(m, per_class={}),
                "accuracy": ok(88.0 + seed), "lpips_diversity": ok(0.2 + 0.01 * seed),
                **REAL_A}))
    # pix2pixHD: deterministic (LPIPS N/A); evaluated under protocols A and B in one file.
    p2p_metrics = {"fid": fid(70.0), "kid": ok(0.03, std=0.001, subset_size=100, note=""),
                   "miou": ok(50.0, per_class={}), "accuracy": ok(85.5),
                   "lpips_diversity": not_applicable(NA_DETERMINISTIC)}
    write_metrics(runs / "cityscapes" / "pix2pixhd" / "pix2pixhd-cityscapes-0123456789" /
                  "metrics.json",
                  record(method="pix2pixhd", dataset="cityscapes", protocol=PROTO_A,
                         variant="pix2pixhd-cityscapes", run_id="pix2pixhd-cityscapes-0123456789",
                         train_seed=0, metrics={**p2p_metrics, **REAL_A}),
                  record(method="pix2pixhd", dataset="cityscapes", protocol=PROTO_B,
                         variant="pix2pixhd-cityscapes", run_id="pix2pixhd-cityscapes-0123456789",
                         train_seed=0, metrics={**p2p_metrics, "miou": ok(52.0, per_class={}),
                                                **REAL_B}))
    # CC-FPSE: one run, three generation seeds (the per-seed spread); segmenter skipped;
    # random and encoded inference are separate rows.
    ccfpse_rid = "ccfpse-cityscapes-abcdef0123"
    write_metrics(runs / "cityscapes" / "ccfpse" / ccfpse_rid / "metrics.json",
                  *[record(method="ccfpse", dataset="cityscapes", protocol=PROTO_A,
                           inference=inf, variant="ccfpse-cityscapes", run_id=ccfpse_rid,
                           train_seed=0, seeds=(0, 1, 2), metrics={
                               "fid": fid(base, [base - 0.5, base, base + 0.5]),
                               "kid": ok(0.011, std=0.0005, subset_size=100, note=""),
                               "miou": skipped(SKIP_DRN), "accuracy": skipped(SKIP_DRN),
                               "lpips_diversity": ok(0.0731 if inf == "random" else 0.01),
                               "real_miou": skipped(SKIP_DRN), "real_accuracy": skipped(SKIP_DRN)})
                    for inf, base in (("random", 54.0), ("encoded", 48.0))])
    # ADE20K: a single SPADE run.
    write_metrics(runs / "ade20k" / "spade" / "spade-ade20k-9876543210" / "metrics.json",
                  record(method="spade", dataset="ade20k", protocol=PROTO_C, variant="spade-ade20k",
                         run_id="spade-ade20k-9876543210", train_seed=0, n_images=2000,
                         metrics={"fid": fid(35.5), "kid": ok(0.009, std=0.0003, subset_size=1000,
                                                             note=""),
                                  "miou": ok(37.0, per_class={}), "accuracy": ok(79.0),
                                  "lpips_diversity": ok(0.15),
                                  "real_miou": ok(42.0), "real_accuracy": ok(80.75)}))
    # A bare image folder (no method / variant / run) evaluated under protocol B.
    images = root / "evaluated" / "my_images"
    write_metrics(images / "metrics.json",
                  record(method=None, dataset="cityscapes", protocol=PROTO_B, inference=None,
                         notes=[LOSSY_NOTE],
                         metrics={"fid": fid(66.0), "kid": ok(0.028, std=0.001, subset_size=100,
                                                            note=""),
                                  "miou": ok(53.0, per_class={}), "accuracy": ok(86.0),
                                  "lpips_diversity": not_applicable("one image per label map"),
                                  **REAL_B}))
    return {"runs": runs, "images": images}


PUBLISHED_CSV = """\
dataset,method,label,fid,kid,miou,accuracy,lpips,source,protocol_note
cityscapes,SPADE,SPADE (paper),71.8,,62.3,81.9,,"SPADE paper, Table 1","SPADE protocol"
cityscapes,SPADE,SPADE (re-measured by GroupDNet authors),,,62.3,93.5,,SMIS issue #6,void ignored
cityscapes,CC-FPSE,CC-FPSE (paper),54.3,,65.5,82.3,0.073,CC-FPSE paper,
coco-stuff,SPADE,SPADE (paper),22.6,,37.4,67.9,,"SPADE paper, Table 1",SPADE protocol
"""


def write_published(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(PUBLISHED_CSV)
    return path


# --------------------------------------------------------------------------------------------
# snapshots
# --------------------------------------------------------------------------------------------
SNAPSHOT_DIR = Path(__file__).resolve().parent / "snapshots" / "leaderboard"
UPDATE_ENV = "UPDATE_SNAPSHOTS"


def check_snapshot(name: str, actual: str) -> None:
    """Compare with tests/snapshots/leaderboard/<name>; ``UPDATE_SNAPSHOTS=1`` rewrites it."""
    import difflib
    import os

    import pytest

    from harness.core.io import atomic_write_text

    path = SNAPSHOT_DIR / name
    if os.environ.get(UPDATE_ENV) == "1":
        atomic_write_text(path, actual)
        return
    if not path.is_file():
        pytest.fail(f"snapshot {path} is missing; create it with "
                    f"{UPDATE_ENV}=1 python -m pytest tests/test_leaderboard.py")
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                            f"expected/{name}", f"actual/{name}"))
        pytest.fail(f"{name} differs from its snapshot (if the change is intended, regenerate "
                    f"with {UPDATE_ENV}=1 and review the diff):\n{diff}")
