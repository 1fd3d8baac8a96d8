"""A warm reference cache skips ALL real-image work: on the second evaluation of a run no real
image is read, the Inception extractor sees only the generated images, and the segmenter
predicts only the generated images (its real-image confusion - the upper-bound row - is read from
the cache), while every score equals the cold run's."""
from __future__ import annotations

import pytest
import torch

import evaluators.evaluate as evaluate_module
from _eval_helpers import (N_VAL, eval_env, eval_weights_dir, fid_sets,  # noqa: F401
                           synthetic_val, write_protocol)
from evaluators.evaluate import evaluate_images
from evaluators.protocol import load_protocol

PREDICTED: list[int] = []


def _build(weights=None, device="cpu", **options):
    from evaluators.segmenters import Segmenter

    class Intensity(Segmenter):
        """Class = red channel // 26 (a real rule, enough to give non-trivial scores)."""
        name = "warm-cache-test"
        label_space = "synthetic"
        num_classes = 10

        @torch.no_grad()
        def predict(self, images, out_size):
            PREDICTED.append(images.shape[0])
            ids = (images[:, 0].long() // 26).clamp(max=9)
            return torch.nn.functional.interpolate(ids[:, None].float(), size=tuple(out_size),
                                                   mode="nearest")[:, 0].long()
    return Intensity().eval()


@pytest.fixture
def counting_segmenter():
    from evaluators.segmenters import SEGMENTERS, SegmenterEntry
    SEGMENTERS.add("warm-cache-test", SegmenterEntry(
        name="warm-cache-test", label_space="synthetic", description="test",
        build=_build, identity={"rule": "red // 26"}), "test (warm cache)")
    yield "warm-cache-test"
    SEGMENTERS.reload()


def test_warm_evaluation_does_no_real_image_work(eval_env, fid_sets, synthetic_val,  # noqa: F811
                                                  counting_segmenter, tmp_path, monkeypatch):
    protocol = load_protocol(write_protocol(
        tmp_path, segmentation={"segmenter": counting_segmenter, "label_space": "synthetic",
                                "real_images": True}))
    extracted: list[int] = []
    real_reads: list[str] = []
    original_extract = evaluate_module.extract_features
    original_read = type(synthetic_val).image_resized

    def count_extract(images, extractor, **kwargs):
        extracted.append(len(images))
        return original_extract(images, extractor, **kwargs)

    def count_read(self, rec, *args, **kwargs):
        real_reads.append(rec.key)
        return original_read(self, rec, *args, **kwargs)
    monkeypatch.setattr(evaluate_module, "extract_features", count_extract)
    monkeypatch.setattr(type(synthetic_val), "image_resized", count_read)

    def evaluate():
        extracted.clear(), real_reads.clear(), PREDICTED.clear()
        return evaluate_images(fid_sets["gen_paths"], synthetic_val, protocol, multimodal=False,
                               batch_size=4, seed=0, progress=False, method="toy")

    cold = evaluate()
    # cold: real and generated sets each pass through Inception and the segmenter once
    assert sorted(extracted) == [N_VAL, N_VAL]
    assert sum(PREDICTED) == 2 * N_VAL
    assert sorted(set(real_reads)) == sorted(r.key for r in synthetic_val.records())

    warm = evaluate()
    assert extracted == [N_VAL]            # the generated images only
    assert sum(PREDICTED) == N_VAL         # the generated images only
    assert real_reads == []                # not one real image decoded
    for name in ("fid", "kid", "miou", "accuracy", "real_miou", "real_accuracy"):
        assert cold["metrics"][name]["status"] == "ok", (name, cold["metrics"][name])
        assert warm["metrics"][name]["value"] == pytest.approx(cold["metrics"][name]["value"],
                                                               rel=1e-6), name
