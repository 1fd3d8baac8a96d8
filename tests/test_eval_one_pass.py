"""Evaluation in one pass (evaluators/image_pass.py): every generated image, real image and label
map is decoded exactly once per evaluation, however many evaluators read it, and the numbers
equal an independent computation that reads the files its own way (whole-set extractor loops,
one segmenter loop per image set).

Decodes are counted by wrapping the real readers (harness.core.data.imageio.open_rgb / open_ids):
the wrapped function runs, it is only counted."""
from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import evaluators.image_pass as image_pass
from _eval_helpers import (SIZE, eval_env, eval_weights_dir, fid_sets,  # noqa: F401
                           synthetic_val, write_protocol)
from evaluators.evaluate import evaluate_images, select_records
from evaluators.fid import (ImageFilesDataset, RealImagesDataset, build_extractor,
                            extract_features, fid_value, kid_value)
from evaluators.protocol import load_protocol
from evaluators.segmentation import accumulate_confusion, ground_truth, segmenter_input
from evaluators.segmentation_scores import scores
from harness.core.data import imageio
from harness.core.records import per_image_arrays

BATCH = 5   # 12 images: batches of 5, 5, 2


def _build(weights=None, device="cpu", **options):
    from evaluators.segmenters import Segmenter

    class Intensity(Segmenter):
        """Class = red channel // 26: a real rule with non-trivial scores, cheap on CPU."""
        name = "one-pass-test"
        label_space = "synthetic"
        num_classes = 10

        @torch.no_grad()
        def predict(self, images, out_size):
            ids = (images[:, 0].long() // 26).clamp(max=9)
            return torch.nn.functional.interpolate(ids[:, None].float(), size=tuple(out_size),
                                                   mode="nearest")[:, 0].long()
    return Intensity().eval()


@pytest.fixture
def rule_segmenter():
    from evaluators.segmenters import SEGMENTERS, SegmenterEntry
    SEGMENTERS.add("one-pass-test", SegmenterEntry(
        name="one-pass-test", label_space="synthetic", description="test",
        build=_build, identity={"rule": "red // 26"}), "test (one pass)")
    yield "one-pass-test"
    SEGMENTERS.reload()


@pytest.fixture
def decodes(monkeypatch):
    """Counter of files decoded as photos ('rgb') and as label maps ('ids'), by path."""
    counts = {"rgb": Counter(), "ids": Counter()}
    real_rgb, real_ids = imageio.open_rgb, imageio.open_ids

    def open_rgb(path, *args, **kwargs):
        counts["rgb"][Path(path)] += 1
        return real_rgb(path, *args, **kwargs)

    def open_ids(path, *args, **kwargs):
        counts["ids"][Path(path)] += 1
        return real_ids(path, *args, **kwargs)
    monkeypatch.setattr(imageio, "open_rgb", open_rgb)
    monkeypatch.setattr(imageio, "open_ids", open_ids)
    return counts


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of two batches (10 images), so 12 images take two chunks and the decode thread
    runs ahead of the consumers."""
    monkeypatch.setattr(image_pass, "CHUNK_BYTES", 2 * BATCH * 3 * SIZE * SIZE)
    assert image_pass.chunk_size(BATCH, (SIZE, SIZE)) == 2 * BATCH


def test_every_file_is_decoded_once_and_the_numbers_equal_separate_loops(
        eval_env, fid_sets, synthetic_val, rule_segmenter, decodes, small_chunks,  # noqa: F811
        tmp_path):
    protocol = load_protocol(write_protocol(
        tmp_path, fid={"bootstrap_resamples": 0, "kid_subsets": 10},
        segmentation={"segmenter": rule_segmenter, "label_space": "synthetic",
                      "real_images": True}))
    gen_paths = fid_sets["gen_paths"]
    records = select_records(synthetic_val, protocol)

    def evaluate():
        for c in decodes.values():
            c.clear()
        return evaluate_images(gen_paths, synthetic_val, protocol, multimodal=False,
                               batch_size=BATCH, progress=False, method="toy")

    cold = evaluate()
    m = cold["metrics"]
    for name in ("fid", "kid", "miou", "accuracy", "real_miou", "real_accuracy"):
        assert m[name]["status"] == "ok", (name, m[name])
    # each generated image, real image and label map decoded exactly once (FID, KID and the
    # segmenter's generated and real rows all read them)
    assert decodes["rgb"] == Counter({**{Path(p): 1 for p in gen_paths.values()},
                                      **{Path(r.image): 1 for r in records}})
    assert decodes["ids"] == Counter({Path(r.label): 1 for r in records})

    # independent: torch-fidelity's loop over each whole set from the files, same batch size
    extractor = build_extractor(fid_sets["weights"])
    gen = extract_features(ImageFilesDataset([gen_paths[r.key] for r in records]), extractor,
                           batch_size=BATCH)
    real = extract_features(RealImagesDataset(synthetic_val, records, (SIZE, SIZE)), extractor,
                            batch_size=BATCH)
    arrays = per_image_arrays(cold)
    assert np.array_equal(arrays["gen_features"], gen.numpy())     # bit-identical features
    assert np.array_equal(arrays["real_features"], real.numpy())
    assert m["fid"]["value"] == fid_value(gen, real)
    assert m["kid"]["value"] == kid_value(gen, real, subsets=10, subset_size=protocol.fid.kid_subset_size)["value"]
    model = _build()
    for prefix, image_of in (("", lambda r: ImageFilesDataset([gen_paths[r.key]])[0]),
                             ("real_", lambda r: synthetic_val.image_resized(r, (SIZE, SIZE)))):
        items = []
        for r in records:
            gt = ground_truth(synthetic_val, r, protocol)
            items.append((segmenter_input(image_of(r), tuple(gt.shape), protocol), gt))
        total = accumulate_confusion(model, items, num_classes=10, ignore_index=synthetic_val.label_space.ignore_index,
                                     batch_size=BATCH)
        s = scores(total, protocol.segmentation.absent_classes,
                   synthetic_val.label_space.class_names,
                   protocol.segmentation.accuracy_ignored_pixels)
        assert m[f"{prefix}miou"]["value"] == pytest.approx(s["miou"], abs=1e-12)
        assert m[f"{prefix}accuracy"]["value"] == pytest.approx(s["accuracy"], abs=1e-12)

    # warm reference cache: no real image is decoded; generated images and labels once each
    warm = evaluate()
    assert decodes["rgb"] == Counter({Path(p): 1 for p in gen_paths.values()})
    assert decodes["ids"] == Counter({Path(r.label): 1 for r in records})
    for name in ("fid", "kid", "miou", "accuracy", "real_miou", "real_accuracy"):
        assert warm["metrics"][name]["value"] == m[name]["value"], name
    assert not [t for t in threading.enumerate() if t.name == "eval-decode"]


def test_a_file_that_fails_to_decode_is_one_error_and_the_decode_thread_ends(
        eval_env, synthetic_val, rule_segmenter, small_chunks, tmp_path):  # noqa: F811
    protocol = load_protocol(write_protocol(
        tmp_path, fid={"enabled": False},
        segmentation={"segmenter": rule_segmenter, "label_space": "synthetic"}))
    folder = tmp_path / "gen"
    folder.mkdir()
    records = select_records(synthetic_val, protocol)
    paths = {}
    for i, r in enumerate(records):
        paths[r.key] = folder / f"{r.key}.png"
        Image.fromarray(np.full((SIZE, SIZE, 3), 20 * i % 256, np.uint8)).save(paths[r.key])
    # the last image (second chunk, decoded in the background thread): a valid header (the
    # size check passes), a truncated body
    bad = paths[records[-1].key]
    bad.write_bytes(bad.read_bytes()[:60])
    with pytest.raises(Exception, match=bad.name):
        evaluate_images(paths, synthetic_val, protocol, multimodal=False, batch_size=BATCH,
                        progress=False)
    assert not [t for t in threading.enumerate() if t.name == "eval-decode"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stream_batches_cut_a_sequence_arriving_in_pieces_as_one_loop_does(seed):
    from evaluators.segmentation import _batches
    rng = np.random.default_rng(seed)
    sizes = [(8, 8), (8, 12), (6, 8)]
    items = []
    for _ in range(40):
        h, w = sizes[rng.integers(len(sizes)) if rng.random() < 0.3 else 0]
        items.append((torch.zeros(3, h, w, dtype=torch.uint8), torch.zeros(h, w)))

    def cuts(seq):
        return [b[0].shape[0] for b in _batches(seq, 4)]
    stream, out, start = image_pass.StreamBatches(4), [], 0
    while start < len(items):
        piece = int(rng.integers(1, 9))
        done = stream.push(items[start:start + piece])
        # what is handed on is whole batches of the one-loop batching
        out.append(done)
        start += piece
    out.append(stream.flush())
    flat = [item for part in out for item in part]
    assert [id(x) for x in flat] == [id(x) for x in items]
    assert [c for part in out if part for c in cuts(part)] == cuts(items)
