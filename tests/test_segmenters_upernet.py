"""UPerNet-101 (ADE20K, CSAIL): keys incl. SyncBN buffers, counts, fill-rule equivalence, loading,
preprocessing of both checkpoint generations, multi-scale averaging."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from _segmenter_helpers import weights_dir  # noqa: F401 (fixture)
from _segmenter_helpers import deterministic_input, filled_state_dict, key_list, save_state_dict, top_classes
from evaluators.segmenters import SEGMENTERS
from evaluators.segmenters._common import CheckpointMismatch, load_strict
from evaluators.segmenters.upernet import (CSAILBatchNorm2d, UPerNetADE20KSegmenter,
                                           eval_input_size, weight_specs)
from harness.core.weights import WeightsUnavailable

NAME = "upernet-101-ade20k"
EXTRAS = ("_tmp_running_mean", "_tmp_running_var", "_running_iter")

# segmenters.md §5 (float64, original modules filled by the rule, per file).
REF_256 = {"c5": 140299.27057, "log_softmax": -3241091.2010,
           "top": [(8, 50278), (132, 6134), (25, 3220), (21, 2564), (102, 975)]}
REF_320 = {"c5": 229564.45140, "log_softmax": -5093063.0009}


@pytest.fixture(scope="module")
def filled() -> tuple[dict, dict]:
    return filled_state_dict("upernet-encoder"), filled_state_dict("upernet-decoder")


@pytest.fixture(scope="module")
def seg32() -> UPerNetADE20KSegmenter:
    """One float32 UPerNet for the key and loading checks (built once: 83 M parameters)."""
    return UPerNetADE20KSegmenter()


@pytest.fixture(scope="module")
def seg64(filled) -> UPerNetADE20KSegmenter:
    seg = UPerNetADE20KSegmenter(img_sizes=(32,))
    load_strict(seg.encoder, filled[0], "encoder fill")
    load_strict(seg.decoder, filled[1], "decoder fill")
    return seg.double()


def _without(state: dict, suffixes: tuple[str, ...]) -> dict:
    return {k: v for k, v in state.items() if not k.endswith(suffixes)}


def test_keys_shapes_and_counts_match_the_original_files(seg32):
    seg = seg32
    for module, name, n_keys, n_params, n_bn in ((seg.encoder, "upernet-encoder", 954, 42_623_936, 106),
                                                 (seg.decoder, "upernet-decoder", 110, 40_590_486, 12)):
        own = module.state_dict()
        ref = key_list(name)
        assert sorted(own) == [k.key for k in ref]
        for k in ref:
            assert tuple(own[k.key].shape) == k.shape, k.key
        assert len(own) == n_keys
        assert len(_without(own, ("num_batches_tracked",))) == n_keys - n_bn
        assert len(_without(own, ("num_batches_tracked", *EXTRAS))) == n_keys - 4 * n_bn
        assert sum(p.numel() for p in module.parameters()) == n_params
        assert sum(isinstance(m, CSAILBatchNorm2d) for m in module.modules()) == n_bn
    assert len(_without(seg.encoder.state_dict(), ("num_batches_tracked", *EXTRAS))) == 530
    assert len(_without(seg.decoder.state_dict(), ("num_batches_tracked", *EXTRAS))) == 62


def test_fill_rule_reproduces_the_original_outputs_in_float64(seg64):
    x = deterministic_input((1, 3, 256, 256))
    with torch.no_grad():
        feats = seg64.encoder(x)
        logits = seg64.decoder.logits(feats)
    assert [tuple(f.shape[1:]) for f in feats] == [(256, 64, 64), (512, 32, 32), (1024, 16, 16),
                                                    (2048, 8, 8)]
    assert float(feats[-1].sum()) == pytest.approx(REF_256["c5"], abs=2e-5)
    log_probs = F.log_softmax(logits, dim=1)              # the decoder's training-form output
    assert tuple(log_probs.shape) == (1, 150, 64, 64)
    assert float(log_probs.sum()) == pytest.approx(REF_256["log_softmax"], abs=3e-4)
    with torch.no_grad():
        probs = seg64.decoder(feats, seg_size=(256, 256))
    assert float(probs.sum()) == pytest.approx(65536.0, rel=1e-12)
    assert top_classes(probs.argmax(1)) == REF_256["top"]


def test_preprocessing_ade20k_generation_is_rgb_imagenet(seg64):
    img = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    img[0, :, 0, 0] = torch.tensor([10, 200, 255], dtype=torch.uint8)
    x = seg64.network_input(img, (32, 32))
    hand = [(10 / 255 - 0.485) / 0.229, (200 / 255 - 0.456) / 0.224, (255 / 255 - 0.406) / 0.225]
    assert x[0, :, 0, 0].tolist() == pytest.approx(hand, rel=1e-12)
    assert x[0, 1, 3, 3].item() == pytest.approx(-0.456 / 0.224, rel=1e-12)


def test_preprocessing_baseline_generation_is_bgr_minus_mean(seg32):
    seg32.generation = "baseline"
    try:
        img = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
        img[0, :, 0, 0] = torch.tensor([10, 200, 255], dtype=torch.uint8)    # R, G, B
        x = seg32.network_input(img, (32, 32))
        assert x[0, :, 0, 0].tolist() == pytest.approx(
            [255 - 102.9801, 200 - 115.9465, 10 - 122.7717], abs=1e-4)
        # The 2018 loader resized the BGR uint8 image with OpenCV.
        cv2 = pytest.importorskip("cv2")
        g = torch.Generator().manual_seed(1)
        img = torch.randint(0, 256, (1, 3, 20, 30), generator=g, dtype=torch.uint8)
        x = seg32.network_input(img, (32, 64))
        bgr = np.ascontiguousarray(img[0].permute(1, 2, 0).numpy()[:, :, ::-1])
        ref = cv2.resize(bgr, (64, 32), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        ref -= np.array([102.9801, 115.9465, 122.7717], dtype=np.float32)
        assert torch.allclose(x[0], torch.from_numpy(ref).permute(2, 0, 1), atol=1e-4)
    finally:
        seg32.generation = "ade20k"


def test_eval_input_sizes_round_up_to_multiples_of_32():
    assert [eval_input_size(256, 256, s, 1000, 32) for s in (300, 375, 450, 525, 600)] == \
        [(320, 320), (384, 384), (480, 480), (544, 544), (608, 608)]
    assert eval_input_size(256, 512, 300, 1000, 32) == (320, 608)          # 300 x 600, rounded up
    assert eval_input_size(256, 512, 600, 1000, 32) == (512, 1024)         # capped by imgMaxSize
    assert eval_input_size(256, 256, 256, 1000, 32) == (256, 256)          # native: no resize


def test_predict_averages_softmax_over_img_sizes(seg64):
    seg64.img_sizes = (32, 48)
    try:
        g = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (2, 3, 24, 40), generator=g, dtype=torch.uint8)
        out = (20, 30)
        expected = 0
        for short in (32, 48):
            th, tw = eval_input_size(24, 40, short, 1000, 32)
            xs = []
            for im in images:
                pil = Image.fromarray(im.permute(1, 2, 0).numpy()).resize((tw, th), Image.BILINEAR)
                arr = np.asarray(pil, dtype=np.float32) / 255.0
                arr = (arr - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
                xs.append(torch.from_numpy(arr).permute(2, 0, 1))
            with torch.no_grad():
                logits = seg64.decoder.logits(seg64.encoder(torch.stack(xs).double()))
            up = F.interpolate(logits, size=out, mode="bilinear", align_corners=False)
            expected = expected + F.softmax(up, dim=1) / 2
        probs = seg64.probabilities(images, out)
        assert torch.allclose(probs, expected, atol=1e-6)
        pred = seg64.predict(images, out)
        assert pred.dtype == torch.int64 and tuple(pred.shape) == (2, 20, 30)
        assert (pred == expected.argmax(1)).double().mean() > 0.999
    finally:
        seg64.img_sizes = (32,)


def test_builder_loads_both_files_strictly_and_matches_float32_reference(filled, weights_dir):
    enc_spec, dec_spec = weight_specs("ade20k")
    assert enc_spec.filename == "ade20k-resnet101-upernet/encoder_epoch_50.pth"
    (weights_dir / "ade20k-resnet101-upernet").mkdir()
    save_state_dict(weights_dir / enc_spec.filename, filled[0])
    save_state_dict(weights_dir / dec_spec.filename, filled[1])
    seg = SEGMENTERS.get(NAME).build(img_sizes=(320,))
    assert [w.origin for w in seg.resolved_weights] == ["weights-dir", "weights-dir"]
    assert seg.label_space == "ade20k-150" and seg.num_classes == 150
    x = deterministic_input((1, 3, 320, 320)).float()
    with torch.no_grad():
        feats = seg.encoder(x)
        log_probs = F.log_softmax(seg.decoder.logits(feats), dim=1)
    assert float(feats[-1].sum()) == pytest.approx(REF_320["c5"], rel=1e-6)
    assert float(log_probs.sum()) == pytest.approx(REF_320["log_softmax"], rel=1e-6)
    # The same two files given as a folder, or as a pair of paths.
    folder = weights_dir / "ade20k-resnet101-upernet"
    again = SEGMENTERS.get(NAME).build(weights=folder)
    assert [w.origin for w in again.resolved_weights] == ["explicit", "explicit"]
    del again
    with pytest.raises(ValueError, match="encoder path, decoder path"):
        SEGMENTERS.get(NAME).build(weights=[folder / "encoder_epoch_50.pth"])


def test_syncbn_extra_buffers_are_optional_but_not_partially(filled, seg32):
    seg = seg32
    enc, dec = filled
    load_strict(seg.encoder, enc, "with SyncBN buffers")                       # 954 keys
    load_strict(seg.encoder, _without(enc, EXTRAS), "without SyncBN buffers")  # 848 keys
    plain = _without(enc, ("num_batches_tracked", *EXTRAS))                    # 530 keys, no metadata
    assert len(plain) == 530
    load_strict(seg.encoder, plain, "plain")
    load_strict(seg.decoder, _without(dec, ("num_batches_tracked", *EXTRAS)), "plain decoder")
    partial = {k: v for k, v in dec.items() if k != "conv_last.0.1._running_iter"}
    with pytest.raises(CheckpointMismatch, match=r"missing keys conv_last\.0\.1\._running_iter"):
        load_strict(seg.decoder, partial, "decoder_epoch_50.pth")
    with pytest.raises(CheckpointMismatch, match=r"encoder_epoch_50\.pth.*unexpected keys conv_last\.0\.0\.weight.*\(110 in all\)"):
        load_strict(seg.encoder, dict(enc, **dec), "encoder_epoch_50.pth")


def test_missing_weights_name_files_of_the_chosen_generation(weights_dir):
    for generation, folder in (("ade20k", "ade20k-resnet101-upernet"),
                               ("baseline", "baseline-resnet101-upernet")):
        with pytest.raises(WeightsUnavailable) as info:
            SEGMENTERS.get(NAME).build(generation=generation)
        msg = str(info.value)
        assert f"{folder}/encoder_epoch_50.pth" in msg
        assert f"http://sceneparsing.csail.mit.edu/model/pytorch/{folder}/encoder_epoch_50.pth" in msg
    with pytest.raises(ValueError, match="unknown UPerNet generation"):
        SEGMENTERS.get(NAME).build(generation="2017")
