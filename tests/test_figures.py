"""`harness figure` and the per-class IoU table, on real (tiny) runs of SPADE and pix2pixHD.

Each figure is opened and checked against its sources: the PNG has the size its sidecar JSON
says, is not blank, and every image cell (pixel box recorded in the sidecar) shows the file it
names (compared after resizing to the cell, nearest neighbour); label-map cells use the
synthetic dataset's colours. The per-class table's numbers are checked against a confusion
matrix computed here with numpy.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _cli_helpers import call_main, tiny_protocol

DATA = ["--set", "dataset.size=32", "--set", "dataset.num_train=4", "--set", "dataset.num_val=4"]
METHODS = ("spade", "pix2pixhd")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("figures")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("HARNESS_WEIGHTS_DIR", raising=False)
        mp.setenv("TORCH_HOME", str(root / "torch-home"))
        mp.setenv("HARNESS_OFFLINE", "1")
        proto = tiny_protocol(root, size=32)
        for m in METHODS:
            code, _, err = call_main(
                "run", "--method", m, "--dataset", "synthetic", "--set", "train.max_steps=2",
                "--set", "train.log_every=1", "--set", "train.sample_every=1", *DATA,
                "--protocol", str(proto), "--runs-dir", str(root / "runs"),
                "--results-dir", str(root / "results"), "--quiet", "--allow-missing-weights",
                "--set", "eval.skip=[fid,kid]")
            assert code == 0, err
        yield {"root": root, "runs": root / "runs", "out": root / "figs",
               "run": {m: next(p.parent for p in
                               (root / "runs" / "synthetic" / m).glob("*/config.yaml"))
                       for m in METHODS}}


def rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(np.int16)


def cell(png: np.ndarray, box, shrink: int = 2) -> np.ndarray:
    x0, y0, x1, y1 = box
    return png[y0 + shrink:y1 - shrink, x0 + shrink:x1 - shrink]


def shows(png: np.ndarray, box, source) -> float:
    """Mean absolute difference between the source image and the figure sampled at the centre
    of each source pixel inside ``box`` (nearest-neighbour display: these are exact copies)."""
    x0, y0, x1, y1 = box
    arr = source if isinstance(source, np.ndarray) else rgb(source)
    h, w = arr.shape[:2]
    ys = (y0 + (np.arange(h) + 0.5) * (y1 - y0) / h).astype(int)
    xs = (x0 + (np.arange(w) + 0.5) * (x1 - x0) / w).astype(int)
    return float(np.abs(png[ys][:, xs] - arr.astype(np.int16)).mean())


def figure(*args):
    code, out, err = call_main("figure", *args)
    return code, (json.loads(out) if code == 0 else None), err


def check_png(entry: dict) -> tuple[np.ndarray, dict]:
    side = json.loads(Path(entry["sidecar"]).read_text())
    png = rgb(Path(entry["png"]))
    assert [png.shape[1], png.shape[0]] == side["size"]
    assert png.std() > 10, "blank figure"
    assert Path(entry["pdf"]).read_bytes()[:5] == b"%PDF-"
    return png, side


def synthetic_colours() -> set[tuple[int, int, int]]:
    from harness.core.data.synthetic import _COLOURS

    return {tuple(int(round(v * 255)) for v in row) for row in _COLOURS}


def test_compare_figure_shows_each_methods_samples_under_its_name(work):
    code, out, err = figure("compare", "--dataset", "synthetic", "--methods", "spade,pix2pixhd",
                            "--n", "3", "--runs-dir", str(work["runs"]), "--out", str(work["out"]))
    assert code == 0, err
    [entry] = out["figures"]
    assert Path(entry["png"]).name == "compare-synthetic-spade-pix2pixhd.png"
    png, side = check_png(entry)
    assert [c["title"] for c in side["columns"]] == ["label map", "real", "SPADE", "pix2pixHD"]
    # stdout says which run each column came from
    assert [c.get("run") for c in entry["columns"][2:]] == [str(work["run"][m]) for m in METHODS]
    assert side["keys"] == ["val_00000", "val_00001", "val_00002"]
    assert len(side["cells"]) == 3 and all(len(r) == 4 for r in side["cells"])
    palette = synthetic_colours()
    for r, row in enumerate(side["cells"]):
        for c in row[2:]:
            assert shows(png, c["box"], Path(c["file"])) < 1.0
            assert work["run"][c["method"]] in Path(c["file"]).parents
        label = cell(png, row[0]["box"]).reshape(-1, 3)
        colours, counts = np.unique(label, axis=0, return_counts=True)
        major = {tuple(int(v) for v in col) for col, n in zip(colours, counts)
                 if n > 0.02 * len(label)}
        assert major and major <= palette, major
        # the real image is the dataset's image of that key
        from harness.core.data import build_dataset
        from harness.core.data.synthetic import SyntheticOptions

        ds = build_dataset("synthetic", SyntheticOptions(size=32, num_train=4, num_val=4), "val")
        item = ds[ds.keys().index(side["keys"][r])]
        real = ((item["image"] + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
        assert shows(png, row[1]["box"], real) < 1.0


def test_compare_figure_is_deterministic_and_keys_pick_rows(work):
    args = ("compare", "--dataset", "synthetic", "--methods", "pix2pixhd", "--keys",
            "val_00003,val_00001", "--runs-dir", str(work["runs"]), "--out", str(work["out"]))
    code, out, err = figure(*args)
    assert code == 0, err
    first = Path(out["figures"][0]["png"]).read_bytes()
    side = json.loads(Path(out["figures"][0]["sidecar"]).read_text())
    assert side["keys"] == ["val_00003", "val_00001"]
    assert figure(*args)[0] == 0
    assert Path(out["figures"][0]["png"]).read_bytes() == first


@pytest.mark.parametrize("args, words", [
    (("--methods", "spade,ccfpse"), ["'ccfpse'", "no run"]),
    (("--methods", "spade", "--keys", "val_09999"), ["val_09999", "'spade'"]),
])
def test_compare_errors_name_what_is_missing(work, args, words):
    code, _, err = figure("compare", "--dataset", "synthetic", *args, "--runs-dir",
                          str(work["runs"]), "--out", str(work["out"]))
    assert code == 2
    assert err.startswith("error:") and err.count("\n") == 1
    for w in words:
        assert w in err


def test_multimodal_figure_refuses_a_unimodal_method(work):
    code, _, err = figure("multimodal", "--dataset", "synthetic", "--method", "spade",
                          "--runs-dir", str(work["runs"]), "--out", str(work["out"]))
    assert code == 2 and "not multimodal" in err


def test_curves_plot_every_numeric_quantity_including_evaluation_entries(work):
    run = work["run"]["spade"]
    log = run / "train_log.jsonl"
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    assert len(lines) == 2  # log_every=1, 2 steps
    # periodic evaluation entries (any numeric key) are plotted too
    with log.open("a") as f:
        f.write(json.dumps({"step": 2, "eval": {"fid": 123.5, "miou": 12.0}}) + "\n")
    code, out, err = figure("curves", str(run), str(work["run"]["pix2pixhd"]), "--out",
                            str(work["out"]))
    assert code == 0, err
    png, side = check_png(out["figures"][0])
    losses = sorted(f"loss/{k}" for k in lines[0]["loss"])
    assert side["quantities"][:len(losses)] == losses
    assert "eval/fid" in side["quantities"] and "eval/miou" in side["quantities"]
    assert side["points"]["eval/fid"] == {run.name: 1, work["run"]["pix2pixhd"].name: 0}
    assert "time_s" not in side["quantities"] and "step" not in side["quantities"]


def test_train_sample_grid_has_a_header_and_dataset_colours(work):
    from harness.train.samples import HEADER_HEIGHT

    grid = rgb(work["run"]["spade"] / "train_samples" / "step_00000002.png")
    header = grid[:HEADER_HEIGHT]
    assert (header < 100).all(axis=2).sum() > 20, "no header text"
    assert (header > 250).all(axis=2).mean() > 0.5
    label = grid[HEADER_HEIGHT:HEADER_HEIGHT + 32, :32].reshape(-1, 3)
    assert {tuple(int(v) for v in c) for c in np.unique(label, axis=0)} <= synthetic_colours()


# --- per-class IoU ------------------------------------------------------------------------------
def _record_with_segmentation(run: Path, seed: int) -> tuple[dict, np.ndarray, np.ndarray]:
    """The run's recorded evaluation with mIoU computed by the harness's scoring code from a
    prediction / ground truth pair made here (the tiny protocol has no segmenter)."""
    from evaluators.segmentation_scores import confusion_matrix, scores
    from harness.core.records import ok, read_metrics, write_record

    rng = np.random.default_rng(seed)
    gt = rng.choice(5, size=(4, 16, 16), p=[0.5, 0.3, 0.15, 0.04, 0.01])
    gt[0, 0, :3] = 255  # void pixels never count
    pred = np.where(rng.random(gt.shape) < 0.7, gt, rng.integers(0, 5, gt.shape))
    pred[gt == 255] = 0
    names = ("sky", "grass", "water", "road", "wall")
    cm = confusion_matrix(torch.from_numpy(pred), torch.from_numpy(gt), 5, 255)
    s = scores(cm, "exclude-absent", names)
    doc = read_metrics(run / "metrics.json")
    [(key, record)] = doc["evaluations"].items()
    record["metrics"]["miou"] = ok(s["miou"], per_class=s["per_class"],
                                   policy="exclude-absent", pixel_share=s["pixel_share"])
    write_record(run / "metrics.json", record)
    return record, pred, gt


def _iou(pred, gt, c):
    valid = gt != 255
    tp = ((pred == c) & (gt == c) & valid).sum()
    union = (((pred == c) | (gt == c)) & valid).sum()
    return 100.0 * tp / union


def test_per_class_table_and_csv(work, caplog):
    from harness.stages.evaluate import report_per_class

    run = work["run"]["spade"]
    record, pred, gt = _record_with_segmentation(run, 0)
    import logging
    with caplog.at_level(logging.INFO, logger="harness"):
        report_per_class(run / "metrics.json", record)
    text = caplog.text
    assert "per-class IoU" in text and "pixels %" in text and "wall" in text
    rows = list(csv.DictReader((run / "per_class_iou.csv").open()))
    # most frequent first (the ground truth was drawn with decreasing class frequencies)
    assert [r["class"] for r in rows] == ["sky", "grass", "water", "road", "wall"]
    valid = gt != 255
    for c, r in enumerate(rows):
        assert float(r["pixel_share_pct"]) == pytest.approx(
            100.0 * (gt[valid] == c).sum() / valid.sum(), abs=1e-3)
        assert float(r["iou_pct"]) == pytest.approx(_iou(pred, gt, c), abs=1e-3)
    assert sum(float(r["pixel_share_pct"]) for r in rows) == pytest.approx(100.0, abs=1e-2)


def test_classes_figure_heatmap_and_spread(work):
    preds = {m: _record_with_segmentation(work["run"][m], i + 1)[1:] for i, m in
             enumerate(METHODS)}
    code, out, err = figure("classes", "--dataset", "synthetic", "--methods", "spade,pix2pixhd",
                            "--top", "3", "--runs-dir", str(work["runs"]), "--out",
                            str(work["out"]))
    assert code == 0, err
    heat, spread = out["figures"]
    _, hs = check_png(heat)
    _, ss = check_png(spread)
    assert Path(heat["png"]).name == "classes-synthetic-spade-pix2pixhd-heatmap.png"
    assert set(hs["classes"]) == {"sky", "grass", "water", "road", "wall"}
    assert hs["classes"] == sorted(hs["classes"], key=lambda c: -hs["pixel_share"][c])
    assert [m["display_name"] for m in hs["methods"]] == ["SPADE", "pix2pixHD"]
    expected = {c: [_iou(*preds[m], i) for m in METHODS] for i, c in enumerate(hs["classes"])}
    for c, vals in hs["iou"].items():
        assert vals == pytest.approx(expected[c], abs=1e-3)
    diffs = sorted(hs["classes"], key=lambda c: -abs(expected[c][0] - expected[c][1]))
    assert ss["picked"] == diffs[:3]


def test_classes_figure_without_per_class_iou_is_a_user_error(tmp_path):
    code, _, err = figure("classes", "--dataset", "synthetic", "--methods", "spade",
                          "--runs-dir", str(tmp_path), "--out", str(tmp_path / "f"))
    assert code == 2 and "'spade'" in err


def test_palettes_are_the_datasets_colours():
    from harness.figures.palette import bit_palette, colorize, dataset_palette

    city = dataset_palette("cityscapes", 35)
    # cityscapesScripts labels.py: road (7), sky (23), person (24), car (26)
    assert city[7].tolist() == [128, 64, 128] and city[23].tolist() == [70, 130, 180]
    assert city[24].tolist() == [220, 20, 60] and city[26].tolist() == [0, 0, 142]
    syn = {tuple(c) for c in dataset_palette("synthetic", 10).tolist()}
    assert syn == synthetic_colours()
    # no palette of its own (or ids past its table): the generated colours, all distinct
    assert torch.equal(dataset_palette("ade20k", 151), bit_palette(151))
    assert len({tuple(c) for c in bit_palette(151).tolist()}) == 151
    label = torch.tensor([[0, 1], [2, 3]])
    assert colorize(label, 4, "synthetic").shape == (3, 2, 2)
    assert colorize(label[None], 4, "synthetic")[0, :, 1, 0].tolist() == \
        dataset_palette("synthetic", 4)[2].tolist()
