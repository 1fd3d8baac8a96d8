"""GroupDNet's class-wise control end to end, on a model trained here on synthetic scenes.

One `harness run` trains the synthetic preset on scenes whose classes change colour from image to
image (`dataset.colour_jitter`: with the default scenes a class looks the same everywhere and a
per-class code has nothing to carry) with the perceptual loss on (seeded stand-in VGG19 weights,
as the tests build every pretrained file). Then:

- the run's record holds mCSD / mOCD computed by the harness's own code from the class-wise
  samples it generated;
- the same numbers follow from the sample files by a direct computation with the lpips package;
- `harness edit` writes the four applications' files; a method without class codes is refused.
"""
from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from _eval_helpers import build_alexnet_state
from harness.cli import main
from harness.core.weights import ALEXNET_IMAGENET, VGG19_IMAGENET

pytestmark = pytest.mark.slow

TRAIN = ["--set", "dataset.colour_jitter=0.35", "--set", "method.lambda_vgg=10",
         "--set", "train.max_steps=20", "--set", "eval.skip=[fid,kid,segmentation]"]


def _cli(capsys, *argv) -> tuple[int, dict | None, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    try:
        data = json.loads(captured.out) if captured.out.strip() else None
    except json.JSONDecodeError:
        data = None
    return code, data, captured.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("groupdnet-classwise")
    weights = root / "weights"
    weights.mkdir()
    torch.save(build_alexnet_state(), weights / ALEXNET_IMAGENET.filename)
    torch.manual_seed(3)
    torch.save(torchvision.models.vgg19(weights=None).state_dict(), weights / VGG19_IMAGENET.filename)
    mp = pytest.MonkeyPatch()
    mp.setenv("HARNESS_WEIGHTS_DIR", str(weights))
    mp.setenv("HARNESS_ALLOW_UNVERIFIED_WEIGHTS", "1")
    mp.setenv("HARNESS_CACHE", str(root / "cache"))
    mp.chdir(root)
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the training dynamics must not depend on the thread count
    try:
        code = main(["run", "--method", "groupdnet", "--dataset", "synthetic", "--quiet",
                     "--allow-missing-weights", *TRAIN])
    finally:
        torch.set_num_threads(before)
    assert code == 0
    run = next((root / "runs" / "synthetic" / "groupdnet").iterdir())
    yield run
    mp.undo()


def _record(run: Path) -> dict:
    evaluations = json.loads((run / "metrics.json").read_text())["evaluations"]
    return next(iter(evaluations.values()))


def test_the_run_records_mcsd_and_mocd_from_its_classwise_samples(trained):
    """The run generated the class-wise samples and scored them. (Locality itself, mCSD well
    above mOCD, is NOT asserted: CPU-scale training -- 250 to 600 steps, with or without the
    perceptual loss and per-image class colours -- gave mCSD / mOCD of 0.004-0.005 / 0.004-0.007,
    i.e. the codes do not yet control their own regions; see docs/methods-groupdnet.md.)"""
    metrics = _record(trained)["metrics"]
    mcsd, mocd = metrics["mcsd"], metrics["mocd"]
    assert mcsd["status"] == "ok" and mocd["status"] == "ok", (mcsd, mocd)
    assert mcsd["samples_per_class"] == 3 and mcsd["maps"] == 8 and mcsd["classes"] >= 16
    assert mcsd["value"] > 0 and mocd["value"] > 0


def test_the_recorded_values_equal_a_direct_lpips_computation(trained):
    """From the sample files and the label maps, with lpips' own spatial model built the plain
    way (trunk from the same stand-in file): pairs -> class -> map -> mean."""
    import lpips

    from evaluators.diversity import trunk_state_to_lpips
    from harness.core.data import build_dataset
    from harness.generate import load_manifest
    from harness.rundir import RunDir

    record = _record(trained)
    samples = trained / "samples" / record["protocol"]["id"] / "random"
    manifest = load_manifest(samples)
    rd = RunDir.open(trained)
    cfg = rd.load_config()
    ds = build_dataset(cfg.dataset.name, cfg.dataset.options, "val")
    index = {k: i for i, k in enumerate(ds.keys())}
    model = lpips.LPIPS(net="alex", spatial=True, pnet_rand=True, verbose=False)
    state = torch.load(trained.parent.parent.parent.parent / "weights" / ALEXNET_IMAGENET.filename)
    model.load_state_dict(trunk_state_to_lpips("alex", state), strict=False)
    model.eval()
    from PIL import Image

    def read(rel):
        arr = np.asarray(Image.open(samples / rel).convert("RGB"), dtype=np.float32)
        return torch.from_numpy(arr).permute(2, 0, 1)[None] / 127.5 - 1

    csd_maps, ocd_maps = [], []
    with torch.no_grad():
        for key, per in manifest["classwise"].items():
            label = torch.as_tensor(ds[index[key]]["label"])
            csd_c, ocd_c = [], []
            for cls, rels in per.items():
                m = (label == int(cls)).float()
                images = [read(r) for r in rels]
                pairs = [model(images[a], images[b])[0, 0] for a, b in combinations(range(3), 2)]
                csd_c.append(np.mean([float((d * m).sum() / m.sum()) for d in pairs]))
                if (1 - m).sum() > 0:
                    ocd_c.append(np.mean([float((d * (1 - m)).sum() / (1 - m).sum()) for d in pairs]))
            csd_maps.append(np.mean(csd_c))
            if ocd_c:
                ocd_maps.append(np.mean(ocd_c))
    assert record["metrics"]["mcsd"]["value"] == pytest.approx(np.mean(csd_maps), rel=1e-4)
    assert record["metrics"]["mocd"]["value"] == pytest.approx(np.mean(ocd_maps), rel=1e-4)


def _present(run: Path, key: str) -> list[str]:
    from harness.core.data import build_dataset
    from harness.rundir import RunDir

    cfg = RunDir.open(run).load_config()
    ds = build_dataset(cfg.dataset.name, cfg.dataset.options, "val")
    label = torch.as_tensor(ds[ds.keys().index(key)]["label"])
    return [ds.info.class_names[int(c)] for c in label.unique()]


def test_the_four_applications_write_their_files(trained, capsys):
    keys = sorted(p.stem for p in (trained / "samples").glob("*/random/seed0/*.png"))
    a, b = keys[0], keys[1]
    in_a, in_b = _present(trained, a), _present(trained, b)
    shared = [c for c in in_a if c in in_b]
    runs = {
        "resample": ["--key", a, "--class", in_a[0], "--k", "3"],
        "mix": ["--key", a, "--take", f"{shared[0]}={b}", "--codes", "encoded"],
        "manipulate": ["--key", a, "--replace", f"{in_a[0]}:{in_a[-1]}"],
        "morph": ["--key", a, "--to", b, "--steps", "4"],
    }
    for op, args in runs.items():
        code, out, err = _cli(capsys, "edit", op, "--run", str(trained), "--quiet", *args)
        assert code == 0, err
        folder = Path(out["edit"])
        assert folder.parent == trained / "edits" and folder.name.startswith(f"{op}-{a}-")
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["operation"] == op and manifest["origin"]["checkpoint_sha256"]
        images = [Image_size(folder / f["file"]) for f in manifest["images"]]
        assert images and all(size == (64, 64) for size in images)
        grid = Image_size(folder / "grid.png")
        assert grid[1] == 64 and grid[0] > 64 * len(images)
    morph = next((trained / "edits").glob("morph-*"))
    from PIL import Image
    with Image.open(morph / "morph.gif") as gif:
        assert gif.n_frames == 2 * 4 - 2
    resample = json.loads(next((trained / "edits").glob("resample-*")).joinpath(
        "manifest.json").read_text())
    assert resample["params"]["class_name"] == in_a[0]


def Image_size(path: Path) -> tuple[int, int]:
    from PIL import Image
    with Image.open(path) as im:
        assert im.mode == "RGB" and np.asarray(im).std() > 0, path  # not blank
        return im.size


def test_edit_errors_are_one_line(trained, capsys):
    keys = sorted(p.stem for p in (trained / "samples").glob("*/random/seed0/*.png"))
    code, _, err = _cli(capsys, "edit", "resample", "--run", str(trained), "--key", "nope",
                        "--class", "sky")
    assert code == 2 and err.strip().startswith("error: key 'nope' is not in split 'val'")
    code, _, err = _cli(capsys, "edit", "resample", "--run", str(trained), "--key", keys[0],
                        "--class", "unicorn")
    assert code == 2 and "unknown class 'unicorn'" in err and len(err.strip().splitlines()) == 1
    absent = [c for c in ("sky", "wall", "ball", "car") if c not in _present(trained, keys[0])][0]
    code, _, err = _cli(capsys, "edit", "resample", "--run", str(trained), "--key", keys[0],
                        "--class", absent)
    assert code == 2 and "does not occur in the label map" in err


def test_methods_without_class_codes_are_refused_in_one_line():
    import copy

    from harness import edit
    from harness.core.data import build_dataset_from_config, collate
    from harness.experiment import load_experiment
    from methods import METHODS
    from methods.base import Runtime

    cfg = load_experiment("spade", "synthetic", overrides=["dataset.num_train=2",
                                                           "dataset.num_val=2"])
    ds = build_dataset_from_config(cfg, "val", train=False)
    method = METHODS.get("spade").build(copy.deepcopy(cfg.method.config), ds.info, Runtime())
    with pytest.raises(edit.EditError, match="not supported by 'spade'"):
        edit.resample(method, collate([ds[0]]), 1)
