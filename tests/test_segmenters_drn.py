"""DRN-D-105 (Cityscapes): keys, counts, fill-rule equivalence with the original, loading, preprocessing."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from _segmenter_helpers import weights_dir  # noqa: F401 (fixture)
from _segmenter_helpers import (deterministic_input, filled_state_dict, key_list, pil_bilinear_float,
                                save_state_dict, top_classes)
from evaluators.segmenters import SEGMENTERS
from evaluators.segmenters._common import CheckpointMismatch, load_strict
from evaluators.segmenters.drn import (CITYSCAPES_MEAN, CITYSCAPES_STD, MS_SCALES,
                                       DRNCityscapesSegmenter, bilinear_upsampling_kernel)
from harness.core.weights import WeightsUnavailable

NAME = "drn-d-105-cityscapes"
FILE = "drn-d-105_ms_cityscapes.pth"

# segmenters.md §5: the original DRNSeg filled by the key-driven rule, input 1x3x256x512, float64.
REF_SEG_SUM = -5588.385568776
REF_LOGSOFTMAX_SUM = -8121268.4957
REF_TOP = [(8, 120286), (11, 7940), (2, 2464), (9, 359), (4, 23)]


@pytest.fixture(scope="module")
def filled() -> dict[str, torch.Tensor]:
    """All 651 original keys filled by the rule (float32); up.weight is the bilinear kernel."""
    state = filled_state_dict("drn")
    state["up.weight"] = bilinear_upsampling_kernel(19, 16)
    return state


@pytest.fixture(scope="module")
def net32() -> torch.nn.Module:
    """One float32 DRNSeg for the key and loading checks (built once: 54 M parameters)."""
    return DRNCityscapesSegmenter().net


@pytest.fixture(scope="module")
def seg64(filled) -> DRNCityscapesSegmenter:
    seg = DRNCityscapesSegmenter()
    load_strict(seg.net, filled, "fill rule")
    return seg.double()


def test_state_dict_keys_shapes_and_counts_match_the_original(net32):
    net = net32
    own = net.state_dict()
    ref = key_list("drn")
    assert sorted(own) == [k.key for k in ref]
    for k in ref:
        assert tuple(own[k.key].shape) == k.shape, k.key
        assert str(own[k.key].dtype).removeprefix("torch.") == k.dtype, k.key
        assert (k.key in dict(net.named_parameters())) == (k.kind == "param"), k.key
    assert len(own) == 651
    assert len([k for k in own if not k.endswith("num_batches_tracked")]) == 543
    assert sum(p.numel() for p in net.parameters()) == 54_302_915
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == 54_298_051
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == 108


def test_up_weight_is_the_fixed_bilinear_kernel(net32):
    w = net32.up.weight
    assert tuple(w.shape) == (19, 1, 16, 16) and not w.requires_grad
    ramp = [1 / 16, 3 / 16, 5 / 16, 7 / 16, 9 / 16, 11 / 16, 13 / 16, 15 / 16]
    ramp = torch.tensor(ramp + ramp[::-1], dtype=torch.float64)
    # segmenters.md: first row 0.003906, 0.011719, ..., 0.058594, 0.058594, ..., 0.003906
    assert w[0, 0, 0].tolist()[:3] == pytest.approx([0.003906, 0.011719, 0.019531], abs=1e-6)
    assert w[0, 0, 0, 7].item() == pytest.approx(0.058594, abs=1e-6)
    for c in (0, 18):
        assert torch.equal(w[c, 0], torch.outer(ramp, ramp).float())
    assert float(w[0, 0].sum()) == pytest.approx(64.0)


def test_fill_rule_reproduces_the_original_outputs_in_float64(seg64):
    x = deterministic_input((1, 3, 256, 512))
    with torch.no_grad():
        log_probs, logits = seg64.net(x)
    assert tuple(logits.shape) == (1, 19, 32, 64)
    assert tuple(log_probs.shape) == (1, 19, 256, 512)
    assert float(logits.sum()) == pytest.approx(REF_SEG_SUM, rel=1e-11)
    assert float(log_probs.sum()) == pytest.approx(REF_LOGSOFTMAX_SUM, abs=2e-4)
    assert top_classes(log_probs.argmax(1)) == REF_TOP


def test_preprocessing_is_rgb_over_255_with_cityscapes_mean_std(seg64):
    img = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    img[0, :, 0, 0] = torch.tensor([10, 200, 255], dtype=torch.uint8)   # R, G, B
    img[0, :, 5, 3] = torch.tensor([0, 0, 1], dtype=torch.uint8)
    x = seg64.normalize(img)
    hand = [(10 / 255 - 0.29010095242892997) / 0.1829540508368939,
            (200 / 255 - 0.32808144844279574) / 0.18656561047509476,
            (255 / 255 - 0.28696394422942517) / 0.18447508988480435]
    assert x.dtype == torch.float64
    assert x[0, :, 0, 0].tolist() == pytest.approx(hand, rel=1e-12)
    assert x[0, 2, 5, 3].item() == pytest.approx((1 / 255 - CITYSCAPES_MEAN[2]) / CITYSCAPES_STD[2])
    assert x[0, 0, 1, 1].item() == pytest.approx(-CITYSCAPES_MEAN[0] / CITYSCAPES_STD[0])


def _images(h: int, w: int, n: int = 1, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, h, w), generator=g, dtype=torch.uint8)


def test_predict_is_argmax_of_log_probs_at_native_size_and_pil_bilinear_otherwise(seg64):
    images = _images(24, 40, n=2)
    with torch.no_grad():
        log_probs = seg64.net(seg64.normalize(images))[0]
    pred = seg64.predict(images, (24, 40))
    assert pred.dtype == torch.int64 and tuple(pred.shape) == (2, 24, 40)
    assert torch.equal(pred, log_probs.argmax(1))
    # Another output size: the log-probabilities resized per channel with PIL BILINEAR (float
    # images), as segment.py --ms and GAN-Compression do; shrinking too (PIL antialiases).
    for size in ((48, 80), (13, 17)):
        ref = torch.stack([pil_bilinear_float(log_probs[i], size) for i in range(2)])
        ours = seg64.log_probs(images, size)
        assert torch.allclose(ours, ref, atol=2e-5)
        agree = (seg64.predict(images, size) == ref.argmax(1)).double().mean()
        assert agree > 0.995


def test_multi_scale_sums_pil_bicubic_rescaled_inputs(seg64):
    seg = seg64
    images = _images(16, 24)
    h, w = 16, 24
    total = 0
    for s in (1.0, *MS_SCALES):
        arr = images[0].permute(1, 2, 0).numpy()
        if s != 1.0:
            arr = np.asarray(Image.fromarray(arr).resize((int(w * s), int(h * s)), Image.BICUBIC))
        x = torch.from_numpy(arr.copy()).permute(2, 0, 1)[None]
        with torch.no_grad():
            lp = seg.net(seg.normalize(x))[0]
        total = total + pil_bilinear_float(lp[0], (h, w))[None]
    seg.multi_scale = True
    try:
        ours = seg.log_probs(images, (h, w))
    finally:
        seg.multi_scale = False
    assert torch.allclose(ours, total, atol=1e-4)
    assert MS_SCALES == (0.5, 0.75, 1.25, 1.5, 1.75)


def test_builder_loads_a_2017_style_file_through_the_weights_dir(filled, weights_dir):
    # The real file predates num_batches_tracked: 543 keys, no version metadata.
    state = {k: v for k, v in filled.items() if not k.endswith("num_batches_tracked")}
    assert len(state) == 543
    save_state_dict(weights_dir / FILE, state, keep_metadata=False)
    seg = SEGMENTERS.get(NAME).build()
    assert seg.resolved_weights[0].origin == "weights-dir"
    assert seg.label_space == "cityscapes-trainid" and seg.num_classes == 19
    ident = seg.identity()
    assert ident["weights"][0]["file"] == FILE and str(weights_dir) not in repr(ident)
    x = deterministic_input((1, 3, 256, 512)).float()
    with torch.no_grad():
        log_probs, logits = seg.net(x)
    assert float(logits.sum()) == pytest.approx(REF_SEG_SUM, rel=1e-6)
    assert float(log_probs.sum()) == pytest.approx(REF_LOGSOFTMAX_SUM, rel=1e-6)


def test_strict_loading_accepts_nbt_only_without_version_metadata(filled, net32):
    net = net32
    load_strict(net, filled, "all 651 keys")
    no_nbt = {k: v for k, v in filled.items() if not k.endswith("num_batches_tracked")}
    load_strict(net, no_nbt, "543 keys, no metadata")
    # The same keys with version-2 BatchNorm metadata: PyTorch requires num_batches_tracked.
    v2 = type(net.state_dict())(no_nbt)
    v2._metadata = net.state_dict()._metadata
    with pytest.raises(CheckpointMismatch, match=r"missing keys base\.0\.1\.num_batches_tracked"):
        load_strict(net, v2, "v2.pth")


def test_wrong_keys_fail_with_one_clear_message(filled, net32, tmp_path):
    net = net32
    extra = dict(filled, **{"seg.extra": torch.zeros(1)})
    with pytest.raises(CheckpointMismatch, match=r"x\.pth.*unexpected keys seg\.extra"):
        load_strict(net, extra, "x.pth")
    missing = {k: v for k, v in filled.items() if k != "seg.bias"}
    with pytest.raises(CheckpointMismatch, match=r"missing keys seg\.bias"):
        load_strict(net, missing, "x.pth")
    shaped = dict(filled, **{"seg.weight": torch.zeros(20, 512, 1, 1)})
    with pytest.raises(CheckpointMismatch, match=r"seg\.weight \(20, 512, 1, 1\) \(expected \(19, 512, 1, 1\)\)"):
        load_strict(net, shaped, "x.pth")
    save_state_dict(tmp_path / "wrapped.pth", {"module.seg.bias": torch.zeros(19)})
    with pytest.raises(CheckpointMismatch,
                       match=r"wrapped\.pth.*missing keys base\.0\.0\.weight.*unexpected keys module\.seg\.bias"):
        SEGMENTERS.get(NAME).build(weights=tmp_path / "wrapped.pth")
    (tmp_path / "truncated.pth").write_bytes(b"PK\x03\x04 not a checkpoint")
    with pytest.raises(CheckpointMismatch, match=r"truncated\.pth could not be read"):
        SEGMENTERS.get(NAME).build(weights=tmp_path / "truncated.pth")


def test_missing_weights_name_the_file_its_source_and_where_to_put_it(weights_dir):
    with pytest.raises(WeightsUnavailable) as info:
        SEGMENTERS.get(NAME).build()
    msg = str(info.value)
    assert FILE in msg and "go.yf.io/drn-cityscapes-models" in msg
    assert "HARNESS_WEIGHTS_DIR" in msg and "hub/checkpoints" in msg


def test_entry_identity_and_description():
    entry = SEGMENTERS.get(NAME)
    assert entry.label_space == "cityscapes-trainid"
    assert entry.identity["weights"] == [{"key": NAME, "filename": FILE, "sha256": None,
                                          "sha256_prefix": None}]
    assert math.isclose(entry.identity["preprocessing"]["mean"][0], 0.29010095242892997)
