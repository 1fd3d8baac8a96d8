"""mmsegmentation segmenters: presets build and run on CPU from seeded checkpoints saved in the
runner format, strict loading, the test pipeline's preprocessing, the COCO-Stuff 171 -> 182 map."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("mmseg")
pytest.importorskip("mmengine")

from _segmenter_helpers import weights_dir  # noqa: E402,F401 (fixture)
from evaluators.segmenters import SEGMENTERS  # noqa: E402
from evaluators.segmenters._common import CheckpointMismatch  # noqa: E402
from evaluators.segmenters._mmseg_compat import (MMCVOpUnavailable, find_config,  # noqa: E402
                                                 import_mmseg)
from evaluators.segmenters.mmseg_models import (COCOSTUFF_171_TO_182, COCOSTUFF_UNUSED_IDS,  # noqa: E402
                                                PRESETS)
from harness.core.weights import WeightsUnavailable  # noqa: E402

pytestmark = pytest.mark.mmseg

SPACES = {"mmseg-deeplabv3plus-r101-cityscapes": ("cityscapes-trainid", 19),
          "mmseg-upernet-r101-ade20k": ("ade20k-150", 150),
          "mmseg-deeplabv3-r101-cocostuff164k": ("cocostuff-182", 182)}
SMALL = (64, 32)   # test-time Resize scale for CPU tests (the configs use 2048x1024 / 2048x512)


def _seeded_model(preset: str):
    import_mmseg()
    from mmseg.apis import init_model
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return init_model(str(find_config(PRESETS[preset]["config"])), None, device="cpu")


def _save_runner_checkpoint(path: Path, state: dict) -> Path:
    # The layout OpenMMLab's runners write: meta (with non-tensor objects), state_dict, optimizer.
    torch.save({"meta": {"CLASSES": ("a", "b"), "PALETTE": [[0, 0, 0], [1, 1, 1]],
                         "mmseg_version": "0.x", "iter": 80000, "seed": np.int64(0)},
                "state_dict": state, "optimizer": {"state": {}, "param_groups": []}}, path)
    return path


def _images(n=2, h=24, w=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, h, w), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_builds_from_a_runner_checkpoint_and_predicts_on_cpu(preset, weights_dir):
    model = _seeded_model(preset)
    spec = PRESETS[preset]["weights"]
    _save_runner_checkpoint(weights_dir / spec.filename, model.state_dict())
    reference = {k: v.clone() for k, v in list(model.state_dict().items())[:3]}
    del model
    seg = SEGMENTERS.get(preset).build(scale=SMALL)
    assert seg.resolved_weights[0].origin == "weights-dir"
    assert seg.resolved_weights[0].verified is False        # seeded stand-in, not the release
    for k, v in reference.items():
        assert torch.equal(seg.model.state_dict()[k], v), k
    space, n = SPACES[preset]
    assert (seg.label_space, seg.num_classes) == (space, n) == (SEGMENTERS.get(preset).label_space, n)
    pred = seg.predict(_images(), (30, 50))
    assert pred.dtype == torch.int64 and tuple(pred.shape) == (2, 30, 50)
    assert int(pred.min()) >= 0 and int(pred.max()) < n
    if space == "cocostuff-182":
        assert not set(pred.unique().tolist()) & set(COCOSTUFF_UNUSED_IDS)
    ident = seg.identity()
    assert ident["weights"][0]["file"] == spec.filename
    assert str(weights_dir) not in repr(ident)
    assert ident["config"]["test_pipeline"][1] == {"type": "Resize", "scale": SMALL, "keep_ratio": True}


def test_predictions_equal_mmseg_inference_model(weights_dir):
    """Our wrapper against mmseg's own high-level API on the same model and pipeline."""
    from mmseg.apis import inference_model
    preset = "mmseg-deeplabv3plus-r101-cityscapes"
    model = _seeded_model(preset)
    path = _save_runner_checkpoint(weights_dir / "seeded.pth", model.state_dict())
    del model
    seg = SEGMENTERS.get(preset).build(weights=path, scale=SMALL)
    seg.model.cfg.test_pipeline[1]["scale"] = SMALL            # the same Resize for mmseg's API
    images = _images(n=2, h=24, w=40, seed=3)
    ours = seg.predict(images, (24, 40))
    for i in range(2):
        bgr = np.ascontiguousarray(images[i].permute(1, 2, 0).numpy()[:, :, ::-1])
        with torch.no_grad():
            theirs = inference_model(seg.model, bgr).pred_sem_seg.data[0]
        assert torch.equal(ours[i], theirs.to(torch.int64))


def test_preprocessing_is_rgb_imagenet_mean_std_and_scale_none_keeps_the_size(weights_dir):
    preset = "mmseg-upernet-r101-ade20k"
    model = _seeded_model(preset)
    path = _save_runner_checkpoint(weights_dir / "seeded.pth", model.state_dict())
    del model
    seg = SEGMENTERS.get(preset).build(weights=path, scale="none")
    seen = []
    handle = seg.model.backbone.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    img = torch.zeros(1, 3, 32, 48, dtype=torch.uint8)
    img[0, :, 0, 0] = torch.tensor([10, 200, 255], dtype=torch.uint8)    # R, G, B
    try:
        seg.predict(img, (32, 48))
    finally:
        handle.remove()
    x = seen[0]
    assert tuple(x.shape) == (1, 3, 32, 48)                               # no resize, no padding
    hand = [(10 - 123.675) / 58.395, (200 - 116.28) / 57.12, (255 - 103.53) / 57.375]
    assert x[0, :, 0, 0].tolist() == pytest.approx(hand, rel=1e-6)
    assert x[0, :, 5, 5].tolist() == pytest.approx([-123.675 / 58.395, -116.28 / 57.12,
                                                    -103.53 / 57.375], rel=1e-6)


def test_missing_or_unexpected_keys_fail_with_a_clear_message(weights_dir):
    preset = "mmseg-deeplabv3-r101-cocostuff164k"
    state = _seeded_model(preset).state_dict()
    missing = dict(state)
    del missing["decode_head.conv_seg.bias"]
    bad = _save_runner_checkpoint(weights_dir / "missing.pth", missing)
    with pytest.raises(CheckpointMismatch, match=r"missing\.pth.*missing keys decode_head\.conv_seg\.bias"):
        SEGMENTERS.get(preset).build(weights=bad)
    extra = dict(state, **{"decode_head.extra.weight": torch.zeros(3)})
    bad = _save_runner_checkpoint(weights_dir / "extra.pth", extra)
    with pytest.raises(CheckpointMismatch, match=r"extra\.pth.*unexpected keys decode_head\.extra\.weight"):
        SEGMENTERS.get(preset).build(weights=bad)


def test_generic_entry_infers_the_label_space_and_needs_a_config(weights_dir):
    preset = "mmseg-upernet-r101-ade20k"
    model = _seeded_model(preset)
    path = weights_dir / "bare_state_dict.pth"
    torch.save({"module." + k: v for k, v in model.state_dict().items()}, path)   # DDP-style keys
    del model
    config = find_config("upernet_r101_4xb4-160k_ade20k-512x512")
    seg = SEGMENTERS.get("mmseg").build(config=str(config), checkpoint=str(path), scale=SMALL)
    assert (seg.label_space, seg.num_classes) == ("ade20k-150", 150)
    assert seg.name == "mmseg:upernet_r101_4xb4-160k_ade20k-512x512"
    assert tuple(seg.predict(_images(n=1), (12, 20)).shape) == (1, 12, 20)
    with pytest.raises(ValueError, match="needs config="):
        SEGMENTERS.get("mmseg").build(checkpoint=str(path))
    with pytest.raises(FileNotFoundError, match="no_such_config"):
        SEGMENTERS.get("mmseg").build(config="no_such_config", checkpoint=str(path))
    with pytest.raises(WeightsUnavailable, match="missing.pth"):
        SEGMENTERS.get("mmseg").build(config=str(config), checkpoint=str(weights_dir / "missing.pth"))


def test_cocostuff_map_matches_mmseg_converter():
    import importlib.util
    import mmseg
    script = Path(mmseg.__file__).parent / ".mim" / "tools" / "dataset_converters" / "coco_stuff164k.py"
    if not script.is_file():
        pytest.skip("mmseg's dataset converter is not shipped in this wheel")
    spec = importlib.util.spec_from_file_location("_coco_stuff164k_converter", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    table = module.clsID_to_trID
    assert len(COCOSTUFF_171_TO_182) == 171
    assert {cls: tr for tr, cls in enumerate(COCOSTUFF_171_TO_182)} == \
        {c: t for c, t in table.items() if t != 255}


def test_a_compiled_op_raises_a_clear_error():
    import sys
    import_mmseg()
    if type(sys.modules["mmcv._ext"]).__name__ != "_MissingCompiledOps":
        pytest.skip("a full mmcv with compiled ops is installed")
    from mmcv.ops import nms
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    with pytest.raises(MMCVOpUnavailable, match="compiled mmcv op 'nms'"):
        nms(boxes, torch.tensor([1.0]), 0.5)
