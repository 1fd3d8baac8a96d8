"""`harness figure multimodal` and `figure edits` on a real (tiny) GroupDNet run: K samples per
label map from its diversity samples, and the class-wise re-sampling / morphing sequences that
`harness edit` wrote; every image cell shows the file its sidecar names."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from _cli_helpers import call_main, tiny_protocol
from test_figures import check_png, rgb, shows, synthetic_colours

pytestmark = pytest.mark.slow

DATA = ["--set", "dataset.size=64", "--set", "dataset.num_train=4", "--set", "dataset.num_val=4"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("figures-groupdnet")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("HARNESS_WEIGHTS_DIR", raising=False)
        mp.setenv("TORCH_HOME", str(root / "torch-home"))
        mp.setenv("HARNESS_OFFLINE", "1")
        mp.chdir(root)
        code, _, err = call_main(
            "run", "--method", "groupdnet", "--dataset", "synthetic", "--set",
            "train.max_steps=2", *DATA, "--protocol", str(tiny_protocol(root, size=64)),
            "--quiet", "--allow-missing-weights", "--set", "eval.skip=[fid,kid]")
        assert code == 0, err
        rd = next(p.parent for p in (root / "runs/synthetic/groupdnet").glob("*/config.yaml"))
        yield root, rd


def test_multimodal_figure_shows_k_samples_per_label_map(run):
    root, rd = run
    code, out, err = call_main("figure", "multimodal", "--dataset", "synthetic", "--method",
                               "groupdnet", "--k", "2", "--runs-dir", str(root / "runs"),
                               "--out", str(root / "figs"))
    assert code == 0, err
    entry = json.loads(out)["figures"][0]
    assert Path(entry["png"]).name == "multimodal-synthetic-groupdnet.png"
    png, side = check_png(entry)
    assert side["titles"] == ["label map", "real", "sample 1", "sample 2"]
    assert side["source"]["run"] == str(rd)
    manifest = json.loads(Path(side["source"]["manifest"]).read_text())
    for key, row in zip(side["keys"], side["cells"]):
        files = [c["file"] for c in row[2:]]
        assert files == [str(rd / "samples" / side["source"]["protocol_id"] / "random" / f)
                         for f in manifest["diversity"][key][:2]]
        for c in row[2:]:
            assert shows(png, c["box"], Path(c["file"])) < 1.0
    code, _, err = call_main("figure", "multimodal", "--dataset", "synthetic", "--method",
                             "groupdnet", "--k", "9", "--runs-dir", str(root / "runs"))
    assert code == 2 and "--k 9" in err


def test_edit_figures_draw_resampling_and_morphing(run):
    root, rd = run
    assert call_main("edit", "resample", "--run", str(rd), "--key", "val_00000", "--class",
                     "wall", "--k", "3", "--quiet")[0] == 0
    assert call_main("edit", "morph", "--run", str(rd), "--key", "val_00000", "--to",
                     "val_00001", "--steps", "3", "--quiet")[0] == 0
    code, out, err = call_main("figure", "edits", "--run", str(rd), "--out", str(root / "figs"))
    assert code == 0, err
    entries = json.loads(out)["figures"]
    assert len(entries) == 2
    by_op = {}
    for e in entries:
        png, side = check_png(e)
        by_op[side["operation"]] = (png, side)
        for c in side["cells"]:
            if "file" in c:
                assert shows(png, c["box"], Path(c["file"])) < 1.0
            else:  # the label map, in the synthetic dataset's colours
                x0, y0, x1, y1 = c["box"]
                colours = {tuple(int(v) for v in px) for px in
                           png[y0 + 3:y1 - 3, x0 + 3:x1 - 3].reshape(-1, 3)}
                assert len(colours & synthetic_colours()) >= 2
    _, resample = by_op["resample"]
    assert [c["caption"] for c in resample["cells"]] == ["label val_00000", "sample 0",
                                                          "sample 1", "sample 2"]
    assert resample["params"]["class_name"] == "wall"
    _, morph = by_op["morph"]
    assert [c["caption"] for c in morph["cells"]] == ["label val_00000", "label val_00001",
                                                       "t=0.00", "t=0.50", "t=1.00"]


def test_edit_figures_without_edits_is_a_user_error(run, tmp_path):
    root, rd = run
    code, _, err = call_main("figure", "edits", "--run", str(rd), "--operations", "mix",
                             "--out", str(tmp_path))
    assert code == 2 and "no mix edit" in err
