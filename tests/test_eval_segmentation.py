"""mIoU / pixel accuracy from one confusion matrix: a hand-computed example under every
absent-class policy and both ignored-pixel rules; label mapping; batching; shard merging."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from evaluators.protocol import Protocol, SegmentationSettings
from evaluators.segmentation import (accumulate_confusion, ground_truth, segmenter_input,
                                     to_eval_ids)
from evaluators.segmentation_scores import (confusion_matrix, mean_iou, per_class_iou,
                                            pixel_accuracy, scores)
from evaluators.segmenters.base import Segmenter
from evaluators.sharding import merge_confusions, shard_indices
from harness.core.data.base import EvalLabelSpace

IGN = 255
# Five classes: 3 never occurs (union 0), 4 is only predicted (a false positive, absent from GT).
GT = torch.tensor([[0, 0, 1, IGN, 1], [2, 2, 0, IGN, 1]])
PRED = torch.tensor([[0, 1, 1, 0, 1], [2, 0, 4, 2, 1]])
# (gt, pred) of the 8 scored pixels: (0,0) (0,1) (1,1) (1,1) (2,2) (2,0) (0,4) (1,1)
EXPECTED = torch.tensor([[1, 1, 0, 0, 1],
                         [0, 3, 0, 0, 0],
                         [1, 0, 1, 0, 0],
                         [0, 0, 0, 0, 0],
                         [0, 0, 0, 0, 0],
                         [1, 0, 1, 0, 0]])   # last row: predictions on the two ignored pixels
# IoU: c0 1/(3+2-1), c1 3/(3+4-3), c2 1/(2+1-1), c3 none, c4 0/(0+1-0)
IOU = [1 / 4, 3 / 4, 1 / 2, None, 0.0]


def test_confusion_matrix_by_hand():
    cm = confusion_matrix(PRED, GT, 5, IGN)
    assert torch.equal(cm, EXPECTED)
    iou = per_class_iou(cm)
    for got, want in zip(iou, IOU):
        assert np.isnan(got) if want is None else got == pytest.approx(want)


@pytest.mark.parametrize("policy, expected", [
    ("exclude-absent", (1 / 4 + 3 / 4 + 1 / 2 + 0) / 4),   # union > 0: classes 0, 1, 2, 4
    ("present-in-gt", (1 / 4 + 3 / 4 + 1 / 2) / 3),       # in the ground truth: 0, 1, 2
    ("zero", (1 / 4 + 3 / 4 + 1 / 2 + 0 + 0) / 5),         # all five, empty union counts 0
])
def test_mean_iou_policies(policy, expected):
    assert mean_iou(EXPECTED, policy) == pytest.approx(expected)


def test_pixel_accuracy_excludes_or_counts_ignored_pixels():
    assert pixel_accuracy(EXPECTED) == pytest.approx(5 / 8)
    assert pixel_accuracy(EXPECTED, "count-as-wrong") == pytest.approx(5 / 10)
    s = scores(EXPECTED, "present-in-gt", ["a", "b", "c", "d", "e"], "count-as-wrong")
    assert s["miou"] == pytest.approx(100 * 0.5)
    assert s["accuracy"] == pytest.approx(50.0)
    assert s["accuracy_excluding_ignored"] == pytest.approx(62.5)
    assert s["accuracy_including_ignored"] == pytest.approx(50.0)
    assert s["ignored_fraction"] == pytest.approx(20.0)
    assert s["per_class"] == {"a": 25.0, "b": 75.0, "c": 50.0, "d": None, "e": 0.0}


def test_bad_ids_are_named():
    with pytest.raises(ValueError, match=r"ground-truth ids \[7\]"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 7]), 5, IGN)
    with pytest.raises(ValueError, match=r"predicted ids \[9\]"):
        confusion_matrix(torch.tensor([9, 1]), torch.tensor([0, 1]), 5, IGN)
    with pytest.raises(ValueError, match="unknown absent-class policy"):
        mean_iou(EXPECTED, "mean")


def test_sharded_confusions_sum_to_the_whole():
    flat_gt, flat_pred = GT.reshape(-1), PRED.reshape(-1)
    parts = []
    for rank in range(3):
        idx = torch.tensor(shard_indices(flat_gt.numel(), _dist(rank, 3)))
        parts.append(confusion_matrix(flat_pred[idx], flat_gt[idx], 5, IGN))
    assert torch.equal(merge_confusions(parts), EXPECTED)


def _dist(rank, world):
    from harness.core.dist import DistInfo
    return DistInfo(rank=rank, world_size=world)


def test_label_mapping_through_the_lut():
    # Cityscapes-like: raw 7 -> 0, 8 -> 1, everything else ignored; values beyond the LUT too.
    lut = [IGN] * 256
    lut[7], lut[8] = 0, 1
    space = EvalLabelSpace("toy", 2, ("road", "sidewalk"), tuple(lut), IGN)
    raw = np.array([[7, 8, 0], [33, 7, 300]])
    assert to_eval_ids(raw, space).tolist() == [[0, 1, IGN], [IGN, 0, IGN]]


class NearestColour(Segmenter):
    """A real (if simple) segmenter: each pixel gets the class of the nearest palette colour."""
    name = "test-nearest-colour"
    label_space = "toy"
    num_classes = 3

    def __init__(self):
        super().__init__()
        self.palette = torch.nn.Parameter(torch.tensor([[0., 0, 0], [255, 0, 0], [0, 0, 255]]),
                                          requires_grad=False)
        self.calls = []

    @torch.no_grad()
    def predict(self, images, out_size):
        self.calls.append(tuple(images.shape))
        x = images.float().permute(0, 2, 3, 1)[..., None, :]           # N,H,W,1,3
        d = ((x - self.palette) ** 2).sum(-1)                            # N,H,W,C
        pred = d.argmin(-1).float()[:, None]
        return torch.nn.functional.interpolate(pred, size=tuple(out_size),
                                               mode="nearest")[:, 0].long()


def _image(ids: torch.Tensor) -> torch.Tensor:
    palette = torch.tensor([[0, 0, 0], [255, 0, 0], [0, 0, 255]], dtype=torch.uint8)
    return palette[ids].permute(2, 0, 1).contiguous()


def test_accumulate_confusion_batches_equal_sizes_only():
    seg = NearestColour()
    rng = torch.Generator().manual_seed(0)
    items, ids_list = [], []
    for size in [(4, 4), (4, 4), (4, 4), (6, 2), (4, 4)]:
        ids = torch.randint(0, 3, size, generator=rng)
        gt = ids.clone()
        gt[0, 0] = IGN
        items.append((_image(ids), gt))
        ids_list.append(ids)
    cm = accumulate_confusion(seg, items, num_classes=3, ignore_index=IGN, batch_size=2)
    assert [c[0] for c in seg.calls] == [2, 1, 1, 1]   # 2+1 of 4x4, the 6x2, the last 4x4
    expected = merge_confusions([confusion_matrix(ids, gt, 3, IGN)
                                 for ids, (_, gt) in zip(ids_list, items)])
    assert torch.equal(cm, expected)
    assert pixel_accuracy(cm) == 1.0 and int(cm[-1].sum()) == 5


def _protocol(policy: str) -> Protocol:
    return Protocol(name="t", dataset="synthetic", resolution=(32, 32),
                    segmentation=SegmentationSettings(segmenter=None, label_space="synthetic",
                                                      input_resolution=policy))


def test_resolution_policies(tmp_path):
    from harness.core.data.synthetic import SyntheticDataset, SyntheticOptions
    ds = SyntheticDataset(SyntheticOptions(root=str(tmp_path), num_train=1, num_val=1, size=64),
                          "val")
    rec = ds.records()[0]
    generated = _protocol("generated")
    gt = ground_truth(ds, rec, generated)
    assert gt.shape == (32, 32)
    raw = ds.label_resized(rec, (32, 32))
    assert torch.equal(gt, to_eval_ids(raw, ds.label_space))
    image = ds.image_resized(rec, (32, 32))
    assert segmenter_input(image, (32, 32), generated) is image

    original = dataclasses.replace(generated, segmentation=dataclasses.replace(
        generated.segmentation, input_resolution="original"))
    gt = ground_truth(ds, rec, original)
    assert gt.shape == (64, 64)
    assert torch.equal(gt, to_eval_ids(ds.read_label(rec), ds.label_space))
    up = segmenter_input(image, (64, 64), original)
    assert up.shape == (3, 64, 64) and up.dtype == torch.uint8
    from PIL import Image
    pil = Image.fromarray(image.permute(1, 2, 0).numpy()).resize((64, 64), Image.BICUBIC)
    assert torch.equal(up, torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1))


# --- the whole segmentation path with a registered paper segmenter ------------------------------
# cityscapesScripts labelId -> trainId (the evaluated 19 classes), from the reference table.
TRAIN_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
             25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}


@pytest.fixture(scope="module")
def drn_file(tmp_path_factory):
    """DRN-D-105 with PyTorch's default init, saved as a bare DRNSeg state_dict (the real format)."""
    from evaluators.segmenters.drn import DRNCityscapesSegmenter
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("drn") / "drn-d-105_ms_cityscapes.pth"
    torch.save(DRNCityscapesSegmenter().net.state_dict(), path)
    return path


def _np_confusion(pred: np.ndarray, gt: np.ndarray, c: int) -> np.ndarray:
    keep = gt != IGN
    return np.bincount(gt[keep] * c + pred[keep], minlength=c * c).reshape(c, c)


@pytest.mark.parametrize("policy", ["generated", "original"])
def test_drn_pipeline_equals_a_hand_computation(policy, drn_file, tmp_path, monkeypatch):
    """cityscapes on a tiny real layout (16x32 label maps), images generated at 8x16: mIoU,
    accuracy and the real upper bound equal DRN's predictions scored by hand."""
    import yaml
    from PIL import Image

    from _data_helpers import make_cityscapes
    from evaluators.evaluate import evaluate_images
    from evaluators.protocol import load_protocol
    from evaluators.segmenters import SEGMENTERS
    from harness.core.data.factory import build_dataset
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HARNESS_OFFLINE", "1")
    keys = make_cityscapes(tmp_path / "cs", "val")
    dataset = build_dataset("cityscapes", {"root": str(tmp_path / "cs")}, "val")
    proto_path = tmp_path / "p.yaml"
    proto_path.write_text(yaml.safe_dump({
        "name": "p", "dataset": "cityscapes", "resolution": [8, 16],
        "fid": {"enabled": False}, "diversity": {"enabled": False},
        "segmentation": {"segmenter": "drn-d-105-cityscapes", "label_space": "cityscapes-trainid",
                         "input_resolution": policy}}))
    protocol = load_protocol(proto_path)
    rng = np.random.default_rng(0)
    gen = {}
    for key in keys:
        gen[key] = tmp_path / "gen" / f"{key}.png"
        gen[key].parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (8, 16, 3), dtype=np.uint8)).save(gen[key])

    record = evaluate_images(gen, dataset, protocol, weights={"drn-d-105-cityscapes": drn_file},
                             progress=False)

    model = SEGMENTERS.get("drn-d-105-cityscapes").build(weights=drn_file)
    lut = np.full(256, IGN)
    for label_id, train_id in TRAIN_IDS.items():
        lut[label_id] = train_id

    def score(images):
        cm = np.zeros((19, 19), dtype=np.int64)
        for rec, img in zip(dataset.records(), images):
            raw = np.asarray(Image.open(rec.label))
            if policy == "generated":
                raw = np.asarray(Image.fromarray(raw).resize((16, 8), Image.NEAREST))
            else:
                img = img.resize((32, 16), Image.BICUBIC)
            x = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)[None]
            pred = model.predict(x, raw.shape).numpy()[0]
            cm += _np_confusion(pred, lut[raw], 19)
        tp = np.diag(cm).astype(float)
        union = cm.sum(0) + cm.sum(1) - tp
        return 100 * np.mean(tp[union > 0] / union[union > 0]), 100 * tp.sum() / cm.sum()

    miou, acc = score([Image.open(gen[k]) for k in keys])
    assert record["metrics"]["miou"]["value"] == pytest.approx(miou)
    assert record["metrics"]["accuracy"]["value"] == pytest.approx(acc)
    real = [Image.open(r.image).convert("RGB").resize((16, 8), Image.BICUBIC)
            for r in dataset.records()]
    real_miou, real_acc = score(real)
    assert record["metrics"]["real_miou"]["value"] == pytest.approx(real_miou)
    assert record["metrics"]["real_accuracy"]["value"] == pytest.approx(real_acc)
    assert record["metrics"]["miou"]["policy"] == "exclude-absent"
    assert set(record["metrics"]["miou"]["per_class"]) == set(dataset.label_space.class_names)
    assert record["weights"]["drn-d-105-cityscapes"]["origin"] == "explicit"
    cached = list((tmp_path / "cache" / "reference").rglob("seg-real-drn-d-105-cityscapes-*.pt"))
    assert len(cached) == 1
    assert record["metrics"]["fid"]["status"] == "n/a"


def test_undefined_scores_are_recorded_as_skipped_not_nan():
    from harness.core.records import finite_or_skipped
    empty = torch.zeros(6, 5, dtype=torch.int64)
    empty[-1, 0] = 4                      # only ignored pixels
    s = scores(empty, "exclude-absent", list("abcde"))
    metrics = finite_or_skipped({"miou": {"status": "ok", "value": s["miou"]},
                                 "accuracy": {"status": "ok", "value": s["accuracy"]}})
    assert metrics["miou"]["status"] == metrics["accuracy"]["status"] == "skipped"
    assert "undefined" in metrics["miou"]["reason"]
