"""FID / KID through torch-fidelity: independent numpy checks, the library called directly,
batch-size independence, KID subset adaptation, the bootstrap interval."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from _eval_helpers import N_VAL, eval_weights_dir, fid_sets, synthetic_val  # noqa: F401
from evaluators.fid import _fid_against, bootstrap_fid, extract_features, fid_value, kid_value


def _numpy_fid(a: torch.Tensor, b: torch.Tensor) -> float:
    x, y = a.double().numpy(), b.double().numpy()
    mu = x.mean(0) - y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(mu @ mu + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


def test_features_are_not_degenerate(fid_sets):
    real, gen = fid_sets["real"], fid_sets["gen"]
    assert real.shape == gen.shape == (N_VAL, 2048)
    assert real.std(0).mean() > 1e-3  # images differ in feature space
    assert fid_sets["fid"] > 1e-2


@pytest.mark.filterwarnings("ignore:Matrix is singular")
def test_fid_equals_independent_scipy_sqrtm(fid_sets):
    """On the first 256 feature dimensions: scipy's sqrtm of the singular 2048 x 2048 product
    takes ~40 s on one core; the formula does not depend on D, and the full 2048-d value is
    checked against torch_fidelity.calculate_metrics below."""
    real, gen = fid_sets["real"][:, :256], fid_sets["gen"][:, :256]
    assert fid_value(gen, real) == pytest.approx(_numpy_fid(gen, real), rel=1e-6)
    assert fid_value(real, real) == pytest.approx(0.0, abs=1e-4)


def test_fid_and_kid_equal_torch_fidelity_called_directly(fid_sets):
    import torch_fidelity
    out = torch_fidelity.calculate_metrics(
        input1=str(fid_sets["gen_dir"]), input2=str(fid_sets["real_dir"]), fid=True, kid=True,
        kid_subset_size=N_VAL, kid_subsets=20, cuda=False, batch_size=4, verbose=False,
        save_cpu_ram=True, cache=False, samples_shuffle=False,
        feature_extractor_weights_path=str(fid_sets["weights"]))
    real, gen = fid_sets["real"], fid_sets["gen"]
    assert fid_sets["fid"] == pytest.approx(out[torch_fidelity.KEY_METRIC_FID], rel=1e-5)
    kid = kid_value(gen, real, subsets=20, subset_size=N_VAL)
    assert kid["value"] == pytest.approx(out[torch_fidelity.KEY_METRIC_KID_MEAN], rel=1e-5)


def test_features_do_not_depend_on_batch_size(fid_sets):
    one_by_one = extract_features(fid_sets["real_ds"], fid_sets["extractor"], batch_size=1)
    torch.testing.assert_close(one_by_one, fid_sets["real"], rtol=1e-4, atol=1e-5)
    kid = lambda real: kid_value(fid_sets["gen"], real, subsets=3, subset_size=6)["value"]  # noqa
    assert kid(one_by_one) == pytest.approx(kid(fid_sets["real"]), rel=1e-4)


def _numpy_kid_all(a: torch.Tensor, b: torch.Tensor) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel on the whole sets."""
    x, y = a.double().numpy(), b.double().numpy()
    d = x.shape[1]
    k = lambda p, q: (p @ q.T / d + 1.0) ** 3  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    m = x.shape[0]
    off = lambda kk: (kk.sum() - np.trace(kk)) / (m * (m - 1))  # noqa: E731
    return float(off(kxx) + off(kyy) - 2 * kxy.mean())


def test_kid_subset_size_adapts_to_n_with_a_note(fid_sets):
    real, gen = fid_sets["real"], fid_sets["gen"]
    adapted = kid_value(gen, real, subsets=5, subset_size=1000)
    assert adapted["subset_size"] == N_VAL
    assert "reduced from 1000 to 12" in adapted["note"]
    # Every subset is the whole set: the value is the plain unbiased MMD^2, with no spread.
    # torch-fidelity works in float32: ~1e-5 relative of cancellation against float64 here
    assert adapted["value"] == pytest.approx(_numpy_kid_all(gen, real), rel=2e-4)
    assert adapted["std"] == pytest.approx(0.0, abs=1e-6)  # float32 summation order only
    small = kid_value(gen, real, subsets=5, subset_size=6)
    assert small["subset_size"] == 6 and small["note"] is None and small["std"] > 0


def test_kid_and_fid_need_two_images(fid_sets):
    with pytest.raises(ValueError, match="at least 2"):
        fid_value(fid_sets["gen"][:1], fid_sets["real"])
    with pytest.raises(ValueError, match="at least 2"):
        kid_value(fid_sets["gen"][:1], fid_sets["real"], subsets=2, subset_size=2)


def test_low_rank_trace_equals_torch_fidelity_on_a_resample(fid_sets):
    from torch_fidelity.metric_fid import fid_features_to_statistics
    real, gen = fid_sets["real"], fid_sets["gen"]
    idx = torch.from_numpy(np.random.default_rng(3).integers(0, N_VAL, size=N_VAL))
    exact = fid_value(gen[idx], real)
    fast = _fid_against(gen[idx], fid_features_to_statistics(real))
    # The 2048-eigenvalue route adds sqrt(rounding noise) of ~2040 zero eigenvalues: ~1e-6.
    assert fast == pytest.approx(exact, rel=1e-5)


def test_bootstrap_interval_brackets_point_and_is_reproducible(fid_sets):
    real, gen, point = fid_sets["real"], fid_sets["gen"], fid_sets["fid"]
    a = bootstrap_fid(gen, real, resamples=25, seed=7, point=point)
    b = bootstrap_fid(gen, real, resamples=25, seed=7, point=point)
    c = bootstrap_fid(gen, real, resamples=25, seed=8, point=point)
    lo, hi = a["ci"]
    assert lo < point < hi
    assert a == b and a["ci"] != c["ci"]
    assert a["resamples"] == 25
    # Resampling with replacement repeats images, which raises FID: the bias is positive.
    assert a["bias"] > 0
    wider = bootstrap_fid(gen, real, resamples=25, seed=7, confidence=0.99, point=point)
    assert wider["ci"][0] <= lo and wider["ci"][1] >= hi
