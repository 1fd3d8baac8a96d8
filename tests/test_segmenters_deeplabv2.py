"""DeepLab-v2 R101 MSC (COCO-Stuff 164k): keys, counts, fill-rule equivalence, loading, BGR preprocessing."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from _segmenter_helpers import weights_dir  # noqa: F401 (fixture)
from _segmenter_helpers import deterministic_input, filled_state_dict, key_list, save_state_dict, top_classes
from evaluators.segmenters import SEGMENTERS
from evaluators.segmenters._common import CheckpointMismatch, load_strict
from evaluators.segmenters.deeplabv2 import MEAN_BGR, DeepLabV2CocoStuffSegmenter
from harness.core.weights import WeightsUnavailable

NAME = "deeplabv2-resnet101-cocostuff164k"
FILE = "deeplabv2_resnet101_msc-cocostuff164k-100000.pth"

# segmenters.md §5 (float64, original MSC(DeepLabV2) filled by the rule).
REF_256 = {"base": -42026.087755, "msc": 158395.16662, "up": 9532713.6103,
           "top": [181, 152, 90, 23, 107]}
REF_321 = {"base": -79818.472956, "msc": 253625.18058, "up": 15546780.394}


@pytest.fixture(scope="module")
def filled() -> dict:
    return filled_state_dict("deeplab")


@pytest.fixture(scope="module")
def seg32() -> DeepLabV2CocoStuffSegmenter:
    """One float32 network for the key and loading checks (built once: 56 M parameters)."""
    return DeepLabV2CocoStuffSegmenter()


@pytest.fixture(scope="module")
def seg64(filled) -> DeepLabV2CocoStuffSegmenter:
    seg = DeepLabV2CocoStuffSegmenter()
    load_strict(seg.net, filled, "fill rule")
    return seg.double()


def _run_with_base_output(seg, x):
    """MSC logits, plus the full-scale base logits (the first base call inside MSC)."""
    seen = []
    handle = seg.net.base.register_forward_hook(lambda m, i, o: seen.append(o))
    try:
        with torch.no_grad():
            msc = seg.net(x)
    finally:
        handle.remove()
    return seen[0], msc


def test_keys_shapes_and_counts_match_the_original(seg32):
    net = seg32.net
    own = net.state_dict()
    ref = key_list("deeplab")
    assert sorted(own) == [k.key for k in ref]
    for k in ref:
        assert tuple(own[k.key].shape) == k.shape, k.key
    assert len(own) == 632
    assert len([k for k in own if not k.endswith("num_batches_tracked")]) == 528
    assert sum(p.numel() for p in net.parameters()) == 55_919_384
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == 104
    per_stage = {s: sum(p.numel() for n, p in net.named_parameters() if n.startswith(f"base.{s}."))
                 for s in ("layer1", "layer2", "layer3", "layer4", "layer5", "aspp")}
    assert per_stage == {"layer1": 9_536, "layer2": 215_808, "layer3": 1_219_584,
                         "layer4": 26_090_496, "layer5": 14_964_736, "aspp": 13_419_224}


def test_fill_rule_reproduces_the_original_outputs_in_float64(seg64):
    x = deterministic_input((1, 3, 256, 256))
    base, msc = _run_with_base_output(seg64, x)
    assert tuple(base.shape) == tuple(msc.shape) == (1, 182, 33, 33)
    assert float(base.sum()) == pytest.approx(REF_256["base"], abs=2e-6)
    assert float(msc.sum()) == pytest.approx(REF_256["msc"], abs=2e-5)
    up = F.interpolate(msc, size=(256, 256), mode="bilinear", align_corners=False)
    assert float(up.sum()) == pytest.approx(REF_256["up"], abs=3e-4)
    assert [c for c, _ in top_classes(up.argmax(1))] == REF_256["top"]


def test_preprocessing_is_bgr_minus_mean_without_scaling(seg64, seg32):
    img = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    img[0, :, 0, 0] = torch.tensor([10, 200, 255], dtype=torch.uint8)      # R, G, B
    x = seg64.network_input(img)
    assert x.dtype == torch.float64
    assert x[0, :, 0, 0].tolist() == pytest.approx([255 - 104.008, 200 - 116.669, 10 - 122.675],
                                                   abs=1e-12)
    assert x[0, :, 2, 2].tolist() == pytest.approx([-m for m in MEAN_BGR], abs=1e-12)
    # float32 model: the float64 difference rounded once (numpy's float32 -= float64)
    x32 = seg32.network_input(img)
    assert x32.dtype == torch.float32
    assert x32[0, 0, 0, 0].item() == torch.tensor(255 - 104.008, dtype=torch.float32).item()


def test_predict_is_argmax_of_softmax_of_bilinear_logits(seg64):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 41, 33), generator=g, dtype=torch.uint8)
    with torch.no_grad():
        logits = seg64.net(seg64.network_input(images))
    for size in ((41, 33), (64, 50), (20, 16)):
        expected = F.softmax(F.interpolate(logits, size=size, mode="bilinear", align_corners=False),
                             dim=1).argmax(1)
        pred = seg64.predict(images, size)
        assert pred.dtype == torch.int64 and torch.equal(pred, expected)


def test_builder_loads_the_release_file_and_uses_scale_factor_resizing(filled, weights_dir):
    save_state_dict(weights_dir / FILE, filled)
    seg = SEGMENTERS.get(NAME).build()
    assert seg.resolved_weights[0].origin == "weights-dir" and seg.label_space == "cocostuff-182"
    # 321 x 321: 321 * 0.75 is not an integer, so only scale_factor resizing gives these numbers.
    x = deterministic_input((1, 3, 321, 321)).float()
    base, msc = _run_with_base_output(seg, x)
    assert tuple(msc.shape) == (1, 182, 41, 41)
    assert float(base.sum()) == pytest.approx(REF_321["base"], rel=1e-6)
    assert float(msc.sum()) == pytest.approx(REF_321["msc"], rel=1e-6)
    up = F.interpolate(msc, size=(321, 321), mode="bilinear", align_corners=False)
    assert float(up.sum()) == pytest.approx(REF_321["up"], rel=1e-6)


def test_wrong_files_fail_clearly(filled, seg32, tmp_path):
    net = seg32.net
    unwrapped = {k.removeprefix("base."): v for k, v in filled.items()}   # the bare DeepLabV2
    with pytest.raises(CheckpointMismatch, match=r"bare\.pth.*missing keys base\.layer1.*unexpected keys aspp\.c0\.bias"):
        load_strict(net, unwrapped, "bare.pth")
    save_state_dict(tmp_path / "other.pth", {"base.aspp.c0.bias": torch.zeros(21)})
    with pytest.raises(CheckpointMismatch, match=r"other\.pth.*base\.aspp\.c0\.bias \(21,\) \(expected \(182,\)\)"):
        SEGMENTERS.get(NAME).build(weights=tmp_path / "other.pth")


def test_missing_weights_message(weights_dir):
    with pytest.raises(WeightsUnavailable) as info:
        SEGMENTERS.get(NAME).build()
    msg = str(info.value)
    assert FILE in msg and "HARNESS_OFFLINE" in msg
    assert "github.com/kazuto1011/deeplab-pytorch/releases/download/v1.0/" + FILE in msg
