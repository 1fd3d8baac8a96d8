"""Intervals recorded by evaluate_images (every metric, per-image data beside metrics.json) and
`python -m harness compare` on two tiny evaluated runs, checked against direct computations."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from _cli_helpers import call_main
from _eval_helpers import (eval_env, eval_weights_dir, synthetic_val,  # noqa: F401
                           write_generated, write_protocol)
from test_bootstrap import _protocol, _record, direct_scores
from test_eval_evaluate import _diversity_files
from evaluators import bootstrap as boot
from evaluators.evaluate import diversity_keys, evaluate_images
from evaluators.fid import fid_value
from evaluators.protocol import load_protocol
from harness.core.per_image import load_per_image
from harness.core.records import read_metrics, write_record

B = 2   # FID replicates cost a few seconds each on CPU


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, eval_weights_dir, synthetic_val):  # noqa: F811
    import os
    from evaluators.segmenters.trained import train_segmenter
    tmp = tmp_path_factory.mktemp("compare")
    env = {"HARNESS_WEIGHTS_DIR": str(eval_weights_dir), "HARNESS_OFFLINE": "1",
           "HARNESS_ALLOW_UNVERIFIED_WEIGHTS": "1", "HARNESS_CACHE": str(tmp / "cache")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        trained = train_segmenter("synthetic", synthetic_val.options, steps=3, batch_size=2,
                                  out_path=tmp / "unet.pt", progress=False)
        protocol = load_protocol(write_protocol(
            tmp, fid={"bootstrap_resamples": B, "kid_subsets": 5},
            segmentation={"segmenter": "synthetic-unet", "label_space": "synthetic"}))
        keys = diversity_keys(synthetic_val, protocol)
        out = {}
        for name, kind in (("a", "blur"), ("b", "noise")):
            gen = write_generated(synthetic_val, tmp / f"g{name}", kind)
            div = _diversity_files(synthetic_val, tmp / f"d{name}", keys, 3)
            rec = evaluate_images(gen, synthetic_val, protocol, diversity=div, multimodal=True,
                                  progress=False, method=name, variant=name, run_id=f"{name}1",
                                  inference="random", seed=0,
                                  weights={"synthetic-unet": trained.checkpoint})
            run = tmp / "runs" / "synthetic" / name / f"{name}1"
            write_record(run, rec)
            out[name] = run
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return {"runs": out, "root": tmp / "runs", "protocol": protocol}


def _record_of(run):
    path = run / "metrics.json"
    rec = next(iter(read_metrics(path)["evaluations"].values()))
    return rec, load_per_image(path, rec)


def test_every_metric_has_an_interval_and_its_per_image_data(two_runs):
    rec, arrays = _record_of(two_runs["runs"]["a"])
    m = rec["metrics"]
    for name in ("fid", "kid", "miou", "accuracy", "real_miou", "real_accuracy",
                 "lpips_diversity"):
        assert m[name]["status"] == "ok", name
        lo, hi = m[name]["ci"]
        assert lo <= hi and m[name]["ci_level"] == 0.95, name
        assert m[name]["ci_resamples"] == B and m[name]["ci_degenerate"] is False
    assert len(arrays["keys"]) == 12 and len(set(arrays["keys"])) == 12
    seg = two_runs["protocol"].segmentation
    for prefix, name in (("gen_confusion", "miou"), ("real_confusion", "real_miou")):
        conf = boot.SparseConfusions.from_arrays(arrays, prefix)
        total = conf.total().numpy()
        miou, acc = direct_scores(total, seg.absent_classes, seg.accuracy_ignored_pixels)
        assert m[name]["value"] == pytest.approx(miou, abs=1e-9)
        # the interval is the percentile interval of a direct loop over the same indices
        idx = boot.resample_indices(12, B, 0)
        dense = np.zeros((12, *total.shape), dtype=np.int64)
        for i in range(12):
            w = np.zeros(12, dtype=np.int64)
            w[i] = 1
            dense[i] = conf.total(w).numpy()
        direct = [direct_scores(dense[row].sum(0), seg.absent_classes,
                                seg.accuracy_ignored_pixels)[0] for row in idx]
        assert m[name]["ci"] == pytest.approx(list(np.quantile(direct, [0.025, 0.975])))
    assert m["lpips_diversity"]["value"] == pytest.approx(float(arrays["lpips_per_map"].mean()))
    assert arrays["gen_features"].shape == (12, 2048)


def test_compare_cli_pairs_the_same_indices(two_runs):
    a, b = two_runs["runs"]["a"], two_runs["runs"]["b"]
    code, out, err = call_main("compare", str(a), str(b), "--json")
    assert code == 0, err
    result = json.loads(out)
    ra, arr_a = _record_of(a)
    rb, arr_b = _record_of(b)
    assert result["resamples"] == B and result["protocol"] == two_runs["protocol"].id
    fid = result["metrics"]["fid"]
    assert fid["difference"] == pytest.approx(ra["metrics"]["fid"]["value"]
                                              - rb["metrics"]["fid"]["value"])
    idx = boot.resample_indices(12, B, 0)
    real = torch.from_numpy(arr_a["real_features"])
    ga, gb = torch.from_numpy(arr_a["gen_features"]), torch.from_numpy(arr_b["gen_features"])
    diffs = np.array([fid_value(ga[torch.from_numpy(r)], real)
                      - fid_value(gb[torch.from_numpy(r)], real) for r in idx])
    shift = diffs.mean() - fid["difference"]
    assert fid["ci"] == pytest.approx(list(np.quantile(diffs, [0.025, 0.975]) - shift),
                                      rel=1e-3, abs=1e-3)
    for name in ("fid", "kid", "miou", "accuracy", "lpips_diversity"):
        v = result["metrics"][name]["verdict"]
        assert v.startswith(("A better", "B better", "not distinguishable")), (name, v)
    assert result["metrics"]["real_miou"]["status"] == "not compared"

    code, out, err = call_main("compare", "--methods", "a,b", "--dataset", "synthetic",
                               "--runs-dir", str(two_runs["root"]), "--resamples", "3",
                               "--confidence", "0.8")
    assert code == 0, err
    assert "80 % interval" in out and "verdict" in out and "fid" in out


def test_compare_errors_exit_2(two_runs, tmp_path):
    a = two_runs["runs"]["a"]
    other = tmp_path / "other"
    write_record(other, _record("x", np.ones((3, 4, 3), dtype=np.int64), [0.1, 0.2, 0.3],
                                _protocol("f" * 64)))
    code, _, err = call_main("compare", str(a), str(other))
    assert code == 2 and "different protocols" in err
    code, _, err = call_main("compare", str(a))
    assert code == 2 and "needs two runs" in err
    code, _, err = call_main("compare", "--methods", "a,zzz", "--dataset", "synthetic",
                             "--runs-dir", str(two_runs["root"]))
    assert code == 2 and "no evaluated run of method 'zzz'" in err
    # A record written before intervals existed (no per-image file): one clear line.
    old = tmp_path / "old"
    shutil.copytree(a, old)
    data = json.loads((old / "metrics.json").read_text())
    for rec in data["evaluations"].values():
        rec.pop("per_image")
    (old / "metrics.json").write_text(json.dumps(data))
    code, _, err = call_main("compare", str(a), str(old))
    assert code == 2 and "no per-image data" in err
