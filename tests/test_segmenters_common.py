"""The segmenter registry, input checks, the optional mmseg extra and the PIL-equivalent resizing."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from _segmenter_helpers import pil_bilinear_float
from evaluators.segmenters import SEGMENTERS, Segmenter, SegmenterEntry
from evaluators.segmenters import _mmseg_compat
from evaluators.segmenters._common import (SegmenterInputError, check_images, pil_like_resize_scores,
                                           pil_resize_uint8)

EXPECTED = {
    "drn-d-105-cityscapes": "cityscapes-trainid",
    "upernet-101-ade20k": "ade20k-150",
    "deeplabv2-resnet101-cocostuff164k": "cocostuff-182",
    "mmseg-deeplabv3plus-r101-cityscapes": "cityscapes-trainid",
    "mmseg-upernet-r101-ade20k": "ade20k-150",
    "mmseg-deeplabv3-r101-cocostuff164k": "cocostuff-182",
    "synthetic-unet": "synthetic",
    "harness-trained": "dataset",
}


def test_registry_lists_every_segmenter_with_label_space_and_description():
    names = SEGMENTERS.names()
    assert set(EXPECTED) | {"mmseg"} <= set(names)
    for name, space in EXPECTED.items():
        entry = SEGMENTERS.get(name)
        assert isinstance(entry, SegmenterEntry) and entry.name == name
        assert entry.label_space == space and entry.description
        text = json.dumps(entry.identity, sort_keys=True)     # hashable into a protocol
        assert "/tmp" not in text and "/home" not in text and "/root" not in text
        assert SEGMENTERS.entry(name).source.startswith("builtin (evaluators.segmenters.")


def test_mmseg_entries_are_listed_but_building_without_the_extra_says_how_to_install(monkeypatch):
    monkeypatch.setattr(_mmseg_compat, "mmseg_installed", lambda: False)
    for name in ("mmseg", "mmseg-upernet-r101-ade20k"):
        assert name in SEGMENTERS
        with pytest.raises(_mmseg_compat.MMSegUnavailable, match=r"pip install -e \.\[mmseg\]"):
            SEGMENTERS.get(name).build(config="x") if name == "mmseg" else SEGMENTERS.get(name).build()


@pytest.mark.parametrize("bad, message", [
    (torch.zeros(1, 3, 4, 4), "uint8 RGB tensor"),
    (torch.zeros(1, 1, 4, 4, dtype=torch.uint8), r"\(1, 1, 4, 4\)"),
    (torch.zeros(3, 4, 4, dtype=torch.uint8), r"\[N,3,H,W\]"),
])
def test_predict_inputs_are_checked(bad, message):
    with pytest.raises(SegmenterInputError, match=message):
        check_images(bad, (4, 4))
    with pytest.raises(SegmenterInputError, match="out_size"):
        check_images(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), (0, 4))


def test_segmenter_identity_has_no_paths():
    seg = Segmenter()
    seg.config = {"a": 1}
    assert seg.identity() == {"name": "", "label_space": "", "num_classes": 0, "config": {"a": 1},
                              "weights": []}


@pytest.mark.parametrize("size", [(40, 56), (7, 9), (20, 10)])
def test_score_resize_equals_pil_bilinear_on_float_maps(size):
    g = torch.Generator().manual_seed(0)
    maps = torch.randn(3, 20, 28, generator=g, dtype=torch.float64) * 5
    ours = pil_like_resize_scores(maps[None], size)[0]
    assert torch.allclose(ours, pil_bilinear_float(maps, size), atol=2e-5)


def test_uint8_resize_is_pil():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 10, 14), generator=g, dtype=torch.uint8)
    out = pil_resize_uint8(images, (15, 21), "bicubic")
    ref = np.array(Image.fromarray(images[1].permute(1, 2, 0).numpy()).resize((21, 15), Image.BICUBIC))
    assert out.dtype == torch.uint8 and torch.equal(out[1].permute(1, 2, 0), torch.from_numpy(ref))


@pytest.mark.parametrize("scale", ["big", (0, 10), (512,), (1.5, 2)])
def test_mmseg_scale_option_is_checked_before_anything_is_built(scale):
    with pytest.raises(ValueError, match="mmseg scale must be"):
        SEGMENTERS.get("mmseg-upernet-r101-ade20k").build(scale=scale)
