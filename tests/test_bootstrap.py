"""Bootstrap intervals (evaluators/bootstrap.py) against direct numpy computations on hand-made
per-image data, the degenerate cases, the per-image file, and paired comparisons
(harness/compare.py) on hand-made records."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from evaluators import bootstrap as boot
from harness.core.per_image import PerImageError, load_per_image
from harness.core.records import with_per_image, write_record

# 3 classes; rows = ground truth (+ last row: ignored pixels), columns = prediction.
# Class 2 occurs only in image 3, so many resamples lack it entirely.
PER_IMAGE = np.array([
    [[8, 1, 0], [2, 5, 0], [0, 0, 0], [1, 0, 0]],
    [[6, 0, 0], [0, 9, 1], [0, 0, 0], [0, 2, 0]],
    [[3, 3, 0], [1, 4, 0], [0, 0, 0], [0, 0, 0]],
    [[5, 0, 1], [0, 2, 0], [1, 0, 7], [2, 0, 1]],
    [[9, 0, 0], [3, 3, 0], [0, 0, 0], [0, 0, 0]],
], dtype=np.int64)


def direct_scores(cm: np.ndarray, policy: str, ignored: str) -> tuple[float, float]:
    """mIoU / accuracy in percent from one summed [C + 1, C] matrix, written out by hand."""
    c = cm.shape[1]
    scored = cm[:c].astype(float)
    ious, counted = [], []
    for k in range(c):
        tp = scored[k, k]
        union = scored[k, :].sum() + scored[:, k].sum() - tp
        iou = tp / union if union > 0 else None
        if policy == "exclude-absent":
            keep = iou is not None
        elif policy == "present-in-gt":
            keep = scored[k, :].sum() > 0
        else:
            keep = True
        if keep:
            ious.append(iou if iou is not None else 0.0)
    miou = 100 * sum(ious) / len(ious) if ious else float("nan")
    total = scored.sum() + (cm[c].sum() if ignored == "count-as-wrong" else 0)
    acc = 100 * np.trace(scored) / total if total else float("nan")
    return miou, acc


@pytest.mark.parametrize("policy,ignored", [("exclude-absent", "exclude"),
                                            ("present-in-gt", "count-as-wrong"),
                                            ("zero", "exclude")])
def test_confusion_bootstrap_equals_a_numpy_loop_over_the_same_indices(policy, ignored):
    conf = boot.SparseConfusions.from_dense(PER_IMAGE)
    assert torch.equal(conf.total(), torch.from_numpy(PER_IMAGE.sum(0)))
    idx = boot.resample_indices(5, 300, seed=3)
    assert np.array_equal(idx, boot.resample_indices(5, 300, seed=3))
    reps = boot.confusion_replicates(conf, idx, policy, ignored)
    direct = np.array([direct_scores(PER_IMAGE[row].sum(0), policy, ignored) for row in idx])
    np.testing.assert_allclose(reps["miou"], direct[:, 0], rtol=1e-12)
    np.testing.assert_allclose(reps["accuracy"], direct[:, 1], rtol=1e-12)
    # The degenerate case the bootstrap must survive: class 2 is absent from some resamples.
    absent = [3 not in row for row in idx]
    assert 0 < sum(absent) < len(idx)

    point = direct_scores(PER_IMAGE.sum(0), policy, ignored)[0]
    f = boot.interval_fields(reps["miou"], point, boot.BootstrapSettings(300, 0.9, 3), n=5,
                             method=boot.METHOD_IMAGES)
    lo, hi = np.quantile(direct[:, 0], [0.05, 0.95])
    assert f["ci"] == pytest.approx([lo, hi]) and f["ci_level"] == 0.9
    assert f["ci_resamples"] == 300 and f["ci_degenerate"] is False
    assert lo < hi


def test_sparse_confusions_round_trip_through_arrays():
    conf = boot.SparseConfusions.from_dense(PER_IMAGE)
    again = boot.SparseConfusions.from_arrays(conf.arrays("x"), "x")
    weights = np.array([0, 2, 1, 0, 3])
    expected = np.tensordot(weights, PER_IMAGE, axes=1)
    assert np.array_equal(again.total(weights).numpy(), expected)
    cells = [(np.flatnonzero(m.reshape(-1)), m.reshape(-1)[np.flatnonzero(m.reshape(-1))])
             for m in PER_IMAGE]
    assert torch.equal(boot.sparse_from_cells(cells, 3).total(weights), again.total(weights))


def test_one_image_gives_a_flagged_degenerate_interval():
    conf = boot.SparseConfusions.from_dense(PER_IMAGE[:1])
    idx = boot.resample_indices(1, 50, seed=0)
    reps = boot.confusion_replicates(conf, idx, "exclude-absent", "exclude")
    point = direct_scores(PER_IMAGE[0], "exclude-absent", "exclude")[0]
    f = boot.interval_fields(reps["miou"], point, boot.BootstrapSettings(50), n=1,
                             method=boot.METHOD_IMAGES)
    assert f["ci"] == pytest.approx([point, point])
    assert f["ci_degenerate"] is True and "one evaluation image" in f["ci_note"]


def test_undefined_replicates_are_dropped_and_counted():
    # Image 1 has only ignored pixels: a resample of it alone has no scored pixel (NaN).
    only_void = np.zeros((1, 4, 3), dtype=np.int64)
    only_void[0, 3, 0] = 5
    conf = boot.SparseConfusions.from_dense(np.concatenate([PER_IMAGE[:1], only_void]))
    idx = boot.resample_indices(2, 200, seed=1)
    reps = boot.confusion_replicates(conf, idx, "exclude-absent", "exclude")
    n_nan = sum(set(row) == {1} for row in idx)
    assert n_nan > 0 and int(np.isnan(reps["miou"]).sum()) == n_nan
    f = boot.interval_fields(reps["miou"], 50.0, boot.BootstrapSettings(200), n=2,
                             method=boot.METHOD_IMAGES)
    assert f["ci_dropped"] == n_nan and f["ci"] is not None
    all_nan = boot.interval_fields(np.full(5, np.nan), 1.0, boot.BootstrapSettings(5), n=3,
                                   method="x")
    assert all_nan["ci"] is None


def test_lpips_mean_replicates_equal_a_loop():
    values = [0.31, 0.12, 0.55, 0.40]
    idx = boot.resample_indices(4, 100, seed=5)
    expected = [sum(values[i] for i in row) / 4 for row in idx]
    np.testing.assert_allclose(boot.mean_replicates(values, idx), expected, rtol=1e-12)


def _features(seed: int, n: int, d: int = 16, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64).float() + shift


def _direct_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with torch-fidelity's polynomial kernel, written out."""
    d = x.shape[1]

    def k(a, b):
        return (a @ b.T / d + 1.0) ** 3
    n, m = len(x), len(y)
    kxx, kyy = k(x, x), k(y, y)
    return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1))
                 + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * k(x, y).mean())


def test_kid_point_equals_torch_fidelity_and_replicates_equal_a_direct_formula():
    from evaluators.fid import kid_value
    gen, real = _features(0, 12, shift=0.3), _features(1, 12)
    kernel = boot.KidKernel(gen, real)
    # One subset holding every image: torch-fidelity's KID is the full-sample unbiased MMD^2.
    tf = kid_value(gen, real, subsets=1, subset_size=12)["value"]
    assert kernel.mmd2(np.arange(12)) == pytest.approx(tf, rel=1e-6)
    idx = boot.resample_indices(12, 40, seed=2)
    x, y = gen.numpy().astype(np.float64), real.numpy().astype(np.float64)
    direct = [_direct_mmd2(x[row], y) for row in idx]
    np.testing.assert_allclose(boot.kid_replicates(gen, real, idx, kernel), direct, rtol=1e-9)
    f = boot.interval_fields(np.asarray(direct), tf, boot.BootstrapSettings(40), n=12,
                             method=boot.METHOD_FEATURES, shift_bias=True)
    bias = np.mean(direct) - tf
    assert f["ci"] == pytest.approx(list(np.quantile(direct, [0.025, 0.975]) - bias))
    assert f["ci"][0] < tf < f["ci"][1]


# --- the per-image file and paired comparisons ---------------------------------------------
def _protocol(hash_: str = "h" * 64) -> dict:
    return {"name": "p", "hash": hash_, "id": f"p-{hash_[:12]}",
            "fields": {"fid": {"bootstrap_resamples": 400, "confidence": 0.95,
                               "bootstrap_seed": 0},
                       "segmentation": {"absent_classes": "exclude-absent",
                                        "accuracy_ignored_pixels": "exclude"}}}


def _record(method: str, per_image: np.ndarray, lpips: list[float], protocol: dict) -> dict:
    conf = boot.SparseConfusions.from_dense(per_image)
    miou, acc = direct_scores(per_image.sum(0), "exclude-absent", "exclude")
    rec = {"schema": 1, "method": method, "variant": method, "dataset": "synthetic",
           "run_id": f"{method}-run", "protocol": protocol, "inference": "random",
           "n_images": len(per_image), "seeds": [0],
           "metrics": {"miou": {"status": "ok", "value": miou},
                       "accuracy": {"status": "ok", "value": acc},
                       "lpips_diversity": {"status": "ok", "value": float(np.mean(lpips))},
                       "fid": {"status": "skipped", "reason": "no weights"}},
           "data": {"content": "c" * 64}}
    keys = np.asarray([f"k{i}" for i in range(len(per_image))])
    return with_per_image(rec, {"keys": keys, **conf.arrays("gen_confusion"),
                                "lpips_per_map": np.asarray(lpips), "lpips_keys": keys[:3]})


def test_write_record_stores_per_image_arrays_and_compare_pairs_them(tmp_path):
    from harness.compare import CompareError, compare, load_sides, table_lines

    proto = _protocol()
    rng = np.random.default_rng(0)
    base = rng.integers(0, 6, size=(20, 4, 3))
    good = base.copy()
    good[:, :3] = base[:, :3] + 6 * np.eye(3, dtype=np.int64)   # more correct pixels per image
    a_dir, b_dir, c_dir = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    write_record(a_dir, _record("good", good, [0.30, 0.31, 0.29], proto))
    write_record(b_dir, _record("base", base, [0.30, 0.32, 0.28], proto))
    write_record(c_dir, _record("same", base, [0.30, 0.32, 0.28], proto))

    stored = json.loads((a_dir / "metrics.json").read_text())["evaluations"]
    rec = next(iter(stored.values()))
    assert rec["per_image"]["file"].startswith("per_image/")
    arrays = load_per_image(a_dir / "metrics.json", rec)
    assert np.array_equal(boot.SparseConfusions.from_arrays(arrays, "gen_confusion")
                          .total().numpy(), good.sum(0))

    a, b = load_sides(a_dir, b_dir)
    result = compare(a, b, resamples=400)
    m = result["metrics"]["miou"]
    assert m["difference"] == pytest.approx(a.record["metrics"]["miou"]["value"]
                                            - b.record["metrics"]["miou"]["value"])
    # The paired interval is the percentile interval of per-replicate differences on the SAME
    # indices, computed here directly.
    idx = boot.resample_indices(20, 400, seed=0)
    diff = [direct_scores(good[r].sum(0), "exclude-absent", "exclude")[0]
            - direct_scores(base[r].sum(0), "exclude-absent", "exclude")[0] for r in idx]
    assert m["ci"] == pytest.approx(list(np.quantile(diff, [0.025, 0.975])))
    assert m["verdict"].startswith("A better")
    assert result["metrics"]["lpips_diversity"]["verdict"].startswith("not distinguishable")
    assert result["metrics"]["fid"]["status"] == "not compared"
    reverse = compare(b, a, resamples=400)
    assert reverse["metrics"]["miou"]["verdict"].startswith("B better")
    same = compare(*load_sides(b_dir, c_dir), resamples=50)
    assert same["metrics"]["miou"]["ci"] == [0.0, 0.0]
    assert same["metrics"]["miou"]["verdict"].startswith("not distinguishable")
    assert any("miou" in line and "A better" in line for line in table_lines(result))

    # Different protocols and different image sets are clear errors.
    other = tmp_path / "other"
    write_record(other, _record("x", base, [0.3, 0.3, 0.3], _protocol("e" * 64)))
    with pytest.raises(CompareError, match="different protocols"):
        load_sides(a_dir, other)
    fewer = tmp_path / "fewer"
    write_record(fewer, _record("y", base[:10], [0.3, 0.3, 0.3], proto))
    with pytest.raises(CompareError, match="different image sets"):
        compare(*load_sides(a_dir, fewer))
    # A changed per-image file is refused.
    npz = a_dir / rec["per_image"]["file"]
    npz.write_bytes(npz.read_bytes() + b"x")
    with pytest.raises(PerImageError, match="changed"):
        load_sides(a_dir, b_dir)
