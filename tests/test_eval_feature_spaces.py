"""Feature-space metrics (FD_DINOv2, FD_CLIP, CMMD, precision / recall, density / coverage) and
the LPIPS VGG trunk, end to end on the synthetic dataset with seeded weights.

Weights, built here offline and resolved through harness.core.weights like the real files
(HARNESS_ALLOW_UNVERIFIED_WEIGHTS=1: the hashes differ from the published ones):
- DINOv2 ViT-S/14: the real architecture, built by the facebookresearch/dinov2 hub code
  (tests/data/dinov2_hub, a trimmed copy of the repository) with seeded init, saved as
  dinov2_vits14_pretrain.pth; the harness builds it through torch.hub.load(source='local').
- CLIP: a TorchScript file holding torch-fidelity's own CLIP VisionTransformer with the ViT-B/32
  geometry (224 px, 32 px patches) but a reduced width and depth (the full 88M-parameter file is
  too heavy for a unit test); torch-fidelity infers the architecture from the state_dict, so the
  loading path (torch.jit.load -> build_model -> load_state_dict) is the one real files take.
- torchvision VGG16 (LPIPS VGG trunk), seeded.
Independent computations: scipy.linalg.sqrtm Fréchet distances, a numpy MMD for CMMD, prdc for
density / coverage, torch_fidelity.calculate_metrics for FD_CLIP and precision / recall.
"""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image

from _eval_helpers import (eval_env, eval_weights_dir, no_weights_env,  # noqa: F401
                           perturb, synthetic_val, write_generated, write_protocol)
from evaluators import feature_metrics as fm
from evaluators import feature_spaces as fsp
from evaluators.evaluate import diversity_keys, evaluate_images
from evaluators.fid import ImageFilesDataset, RealImagesDataset
from evaluators.protocol import FeatureSpaceSettings, list_protocols, load_protocol
from harness.core.config import ConfigError

DINOV2_HUB = Path(__file__).parent / "data" / "dinov2_hub"
DINO, CLIP = "dinov2-vit-s-14", "clip-vit-b-32"
N = 8   # images scored (the first N of the synthetic val split): DINOv2 on CPU is the cost
ALL = ["fd_dinov2", "fd_clip", "cmmd", "precision", "recall", "density", "coverage"]
_SESSION: dict[str, object] = {}


# --- seeded weight files ---------------------------------------------------------------------
def _build_dinov2_file(folder: Path) -> Path:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = torch.hub.load(str(DINOV2_HUB), "dinov2_vits14", source="local",
                               pretrained=False)
    path = folder / fsp.FEATURE_WEIGHT_SPECS[DINO].filename
    torch.save(model.state_dict(), path)
    return path


class _ClipFile(torch.nn.Module):
    """What an OpenAI CLIP TorchScript file holds for torch-fidelity: visual.* and the text
    projection (its second dimension is the embedding size)."""

    def __init__(self) -> None:
        super().__init__()
        from torch_fidelity.feature_extractor_clip import VisionTransformer
        self.visual = VisionTransformer(input_resolution=224, patch_size=32, width=128,
                                        layers=2, heads=2, output_dim=48)
        self.text_projection = torch.nn.Parameter(torch.randn(64, 48) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.visual(x)


def _build_clip_file(folder: Path) -> Path:
    with torch.random.fork_rng():
        torch.manual_seed(1)
        module = _ClipFile().eval()
        # torch-fidelity's build_model converts to fp16 and back: keep values fp16-exact
        with torch.no_grad():
            for p in module.parameters():
                p.copy_(p.half().float())
        traced = torch.jit.trace(module, torch.rand(1, 3, 224, 224), check_trace=False)
    path = folder / fsp.FEATURE_WEIGHT_SPECS[CLIP].filename
    traced.save(str(path))
    return path


def _build_vgg16_file(folder: Path) -> Path:
    import torchvision
    with torch.random.fork_rng():
        torch.manual_seed(2)
        model = torchvision.models.vgg16(weights=None)
    path = folder / "vgg16-397923af.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def feature_weights(eval_weights_dir, tmp_path_factory) -> Path:  # noqa: F811
    """The session's weights folder (Inception, AlexNet) plus DINOv2 and CLIP files."""
    if "features" not in _SESSION:
        _build_dinov2_file(eval_weights_dir)
        _build_clip_file(eval_weights_dir)
        _SESSION["features"] = eval_weights_dir
    return _SESSION["features"]


@pytest.fixture
def feature_env(eval_env, feature_weights, monkeypatch):  # noqa: F811
    monkeypatch.setenv(fsp.DINOV2_REPO_ENV, str(DINOV2_HUB))
    return feature_weights


def _protocol(tmp_path, name="features-test", **features):
    section = {"metrics": ALL, "dinov2": DINO, "clip": CLIP, "prdc": CLIP,
               "prc_neighborhood": 3, "dc_nearest_k": 3, **features}
    return load_protocol(write_protocol(tmp_path, name=name, fid={"enabled": False},
                                        num_images=N, diversity={"enabled": False},
                                        features=section))


def _generated(dataset, tmp_path) -> dict:
    keys = {r.key for r in dataset.records()[:N]}
    return write_generated(dataset, tmp_path / "gen", "noise", keys=keys)


def _direct_features(extractor_id: str, weights: Path, images) -> torch.Tensor:
    """The extractor called on the stacked uint8 images (no dataset loop, no sharding)."""
    x = torch.stack([images[i] for i in range(len(images))])
    extractor = fsp.build_feature_extractor(extractor_id, weights)
    with torch.no_grad():
        return extractor(x)[0]


def _sqrtm_fd(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook Fréchet distance with scipy's matrix square root (pytorch-fid's formula)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _numpy_cmmd(gen: np.ndarray, real: np.ndarray, sigma=10.0, scale=1000.0) -> float:
    """google-research/cmmd's definition written out: unit-norm embeddings, biased MMD^2."""
    x = real / np.linalg.norm(real, axis=1, keepdims=True)
    y = gen / np.linalg.norm(gen, axis=1, keepdims=True)

    def k(a, b):
        d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
        return np.exp(-d2 / (2 * sigma ** 2)).mean()
    return float(scale * (k(x, x) + k(y, y) - 2 * k(x, y)))


# --- the metric code on features fed directly -----------------------------------------------
def test_frechet_distance_equals_scipy_sqrtm():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 16))
    b = rng.normal(0.3, 1.2, size=(150, 16)) + rng.normal(size=(1, 16))
    ours = fm.frechet_distance(torch.from_numpy(a).float(), torch.from_numpy(b).float())
    assert ours == pytest.approx(_sqrtm_fd(a.astype(np.float32), b.astype(np.float32)), rel=1e-5)
    assert ours > 1.0


def test_cmmd_equals_a_direct_numpy_mmd():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(40, 24))
    gen = rng.normal(0.5, 1.0, size=(30, 24))
    ours = fm.cmmd(torch.from_numpy(gen), torch.from_numpy(real))
    assert ours == pytest.approx(_numpy_cmmd(gen, real), rel=1e-9)
    assert ours > 0
    # the biased estimator of identical sets is exactly 0; scale is a plain factor
    assert fm.cmmd(torch.from_numpy(real), torch.from_numpy(real)) == pytest.approx(0, abs=1e-9)
    assert fm.cmmd(torch.from_numpy(gen), torch.from_numpy(real), scale=1.0) == \
        pytest.approx(ours / 1000, rel=1e-9)
    # the embeddings are L2-normalised first: scaling a set changes nothing
    assert fm.cmmd(torch.from_numpy(gen * 7), torch.from_numpy(real)) == pytest.approx(ours)


@pytest.mark.parametrize("k", [3, 5])
def test_density_coverage_equal_prdc(k):
    import prdc
    rng = np.random.default_rng(2)
    real = rng.normal(size=(60, 10)).astype(np.float32)
    gen = rng.normal(0.4, 1.1, size=(45, 10)).astype(np.float32)
    expected = prdc.compute_prdc(real_features=real, fake_features=gen, nearest_k=k)
    ours = fm.density_coverage(torch.from_numpy(gen), torch.from_numpy(real), k)
    assert ours["density"] == pytest.approx(expected["density"], rel=1e-6)
    assert ours["coverage"] == pytest.approx(expected["coverage"], rel=1e-6)
    assert 0 < ours["coverage"] < 1


def test_precision_recall_is_torch_fidelity_prc_generated_first():
    from torch_fidelity.metric_prc import prc_features_to_metric
    rng = np.random.default_rng(3)
    real = torch.from_numpy(rng.normal(size=(50, 8)).astype(np.float32))
    gen = torch.from_numpy(rng.normal(1.5, 0.3, size=(50, 8)).astype(np.float32))
    ours = fm.precision_recall(gen, real, 3)
    tf = prc_features_to_metric(gen, real, prc_neighborhood=3, prc_batch_size=10000,
                                save_cpu_ram=False, verbose=False)
    assert ours == {"precision": pytest.approx(tf["precision"]),
                    "recall": pytest.approx(tf["recall"])}
    # a narrow generated cloud inside the real one: high precision, low recall
    narrow = real.mean(0, keepdim=True) + 0.05 * torch.randn(50, 8, generator=torch.Generator()
                                                            .manual_seed(0))
    pr = fm.precision_recall(narrow, real, 3)
    assert pr["precision"] > 0.9 and pr["recall"] < 0.3


# --- protocol --------------------------------------------------------------------------------
def test_default_protocols_do_not_hash_the_features_section(tmp_path):
    for protocol in list_protocols():
        assert "features" not in protocol.fields()
    plain = load_protocol(write_protocol(tmp_path, name="plain"))
    explicit = load_protocol(write_protocol(tmp_path, name="plain",
                                            features={"metrics": []}))
    assert plain.id == explicit.id
    opted = _protocol(tmp_path, name="plain")
    assert opted.id != plain.id
    fields = opted.fields()["features"]
    assert fields["metrics"] == ALL
    assert set(fields["extractors"]) == {DINO, CLIP}
    assert fields["extractors"][CLIP]["sha256"] == fsp.FEATURE_WEIGHT_SPECS[CLIP].sha256
    # a different extractor is a different protocol
    assert _protocol(tmp_path, name="plain", dinov2="dinov2-vit-b-14").id != opted.id


FEATURE_CHANGES = {"metrics": ("cmmd",), "dinov2": "dinov2-vit-b-14", "clip": "clip-vit-b-16",
                   "prdc": "dinov2-vit-l-14", "prc_neighborhood": 5, "dc_nearest_k": 4, "cmmd_sigma": 5.0,
                   "cmmd_scale": 1.0}


def test_every_features_field_changes_the_hash_when_metrics_are_asked_for():
    import dataclasses

    from evaluators.protocol import Protocol
    assert set(FEATURE_CHANGES) == {f.name for f in dataclasses.fields(FeatureSpaceSettings)}
    base = Protocol(name="p", dataset="synthetic", resolution=(64, 64),
                    features=FeatureSpaceSettings(metrics=tuple(ALL)))
    for key, value in FEATURE_CHANGES.items():
        changed = dataclasses.replace(base, features=dataclasses.replace(base.features,
                                                                         **{key: value}))
        assert changed.hash() != base.hash(), key


def test_feature_weights_are_declared_up_front(tmp_path):
    from evaluators.requirements import protocol_weight_needs
    protocol = _protocol(tmp_path)
    needs = {n.spec.key: n.metrics for n in protocol_weight_needs(protocol, skip=["recall"])}
    assert needs[DINO] == ("fd_dinov2",)
    assert needs[CLIP] == ("fd_clip", "cmmd", "precision", "density", "coverage")
    plain = load_protocol(write_protocol(tmp_path, name="plain"))
    assert not any(n.spec.key in fsp.FEATURE_WEIGHT_SPECS
                   for n in protocol_weight_needs(plain, multimodal=False)
                   if n.spec.key != "vgg16")


def test_bad_feature_settings_are_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="features.prdc"):
        _protocol(tmp_path, prdc="inception-v3-compat")
    with pytest.raises(ConfigError, match="fd_inception"):
        load_protocol(write_protocol(tmp_path, features={"metrics": ["fd_inception"]}))
    with pytest.raises(ValueError, match="repeats"):
        FeatureSpaceSettings(metrics=("cmmd", "cmmd"))
    assert FeatureSpaceSettings().dinov2 == "dinov2-vit-l-14"
    assert FeatureSpaceSettings().clip == "clip-vit-l-14-336px"


# --- end to end ------------------------------------------------------------------------------
@pytest.fixture
def counted(monkeypatch):
    """Counts extractor builds and the images each extractor's forward sees."""
    counts = {"builds": {}, "images": {}}
    original = fsp.build_feature_extractor

    def build(name, path, device="cpu"):
        counts["builds"][name] = counts["builds"].get(name, 0) + 1
        extractor = original(name, path, device)

        def hook(module, args):
            counts["images"][name] = counts["images"].get(name, 0) + int(args[0].shape[0])
        extractor.register_forward_pre_hook(hook)
        return extractor
    monkeypatch.setattr(fsp, "build_feature_extractor", build)
    return counts


def test_every_feature_metric_end_to_end(feature_env, synthetic_val, tmp_path, counted):  # noqa: F811
    import torch_fidelity
    protocol = _protocol(tmp_path, prdc=CLIP)
    gen_paths = _generated(synthetic_val, tmp_path)
    record = evaluate_images(tmp_path / "gen", synthetic_val, protocol, multimodal=False,
                             progress=False)
    m = record["metrics"]
    assert [n for n in ALL if m[n]["status"] == "ok"] == ALL, m
    # one pass per extractor over each image set: N generated + N real through each
    assert counted["builds"] == {DINO: 1, CLIP: 1}
    assert counted["images"] == {DINO: 2 * N, CLIP: 2 * N}
    assert record["weights"][DINO]["file"] == "dinov2_vits14_pretrain.pth"
    assert record["weights"][CLIP]["verified"] is False      # a stand-in, marked as such
    assert m["fd_dinov2"]["extractor"] == DINO and m["fd_dinov2"]["dims"] == 384
    assert m["cmmd"]["estimator"] == "biased" and m["cmmd"]["sigma"] == 10.0

    records = synthetic_val.records()[:N]
    gen_set = ImageFilesDataset([gen_paths[r.key] for r in records])
    real_set = RealImagesDataset(synthetic_val, records, (64, 64))
    dino_w = feature_env / fsp.FEATURE_WEIGHT_SPECS[DINO].filename
    clip_w = feature_env / fsp.FEATURE_WEIGHT_SPECS[CLIP].filename
    dg, dr = (_direct_features(DINO, dino_w, s).numpy() for s in (gen_set, real_set))
    cg, cr = (_direct_features(CLIP, clip_w, s).numpy() for s in (gen_set, real_set))
    # n < d: both covariances are rank-deficient, so sqrtm and the eigenvalue route agree to
    # the accuracy of sqrtm on singular matrices
    assert m["fd_dinov2"]["value"] == pytest.approx(_sqrtm_fd(dg, dr), rel=1e-3)
    assert m["fd_clip"]["value"] == pytest.approx(_sqrtm_fd(cg, cr), rel=1e-3)
    assert m["cmmd"]["value"] == pytest.approx(_numpy_cmmd(cg.astype(np.float64),
                                                           cr.astype(np.float64)), rel=1e-4)
    import prdc
    dc = prdc.compute_prdc(real_features=cr, fake_features=cg, nearest_k=3)
    assert m["density"]["value"] == pytest.approx(dc["density"], abs=1e-9)
    assert m["coverage"]["value"] == pytest.approx(dc["coverage"], abs=1e-9)
    # torch-fidelity's own pipeline on the same images and weights: FD and precision / recall
    tf = torch_fidelity.calculate_metrics(
        input1=gen_set, input2=real_set, fid=True, prc=True, feature_extractor=CLIP,
        feature_extractor_weights_path=str(clip_w), prc_neighborhood=3, cuda=False,
        verbose=False, cache=False, save_cpu_ram=True)
    assert m["precision"]["value"] == pytest.approx(tf["precision"], abs=1e-9)
    assert m["recall"]["value"] == pytest.approx(tf["recall"], abs=1e-9)
    assert m["fd_clip"]["value"] == pytest.approx(tf["frechet_inception_distance"], rel=1e-4)
    assert all(math.isfinite(m[n]["value"]) for n in ALL)

    # the real features are cached per extractor: a second evaluation runs only the generated
    counted["images"].clear()
    again = evaluate_images(tmp_path / "gen", synthetic_val, protocol, multimodal=False,
                            progress=False)
    assert counted["images"] == {DINO: N, CLIP: N}
    assert {n: again["metrics"][n]["value"] for n in ALL} == \
        {n: pytest.approx(m[n]["value"], rel=1e-6, abs=1e-9) for n in ALL}


def test_prdc_in_dinov2_space_shares_the_dinov2_pass(feature_env, synthetic_val, tmp_path,  # noqa: F811
                                                    counted):
    protocol = _protocol(tmp_path, metrics=["fd_dinov2", "precision", "recall", "density",
                                            "coverage"], prdc=DINO)
    _generated(synthetic_val, tmp_path)
    record = evaluate_images(tmp_path / "gen", synthetic_val, protocol, multimodal=False,
                             progress=False, skip=["recall"])
    assert counted["builds"] == {DINO: 1} and counted["images"] == {DINO: 2 * N}
    m = record["metrics"]
    assert m["recall"] == {"status": "skipped", "reason": "skipped on request"}
    assert all(m[n]["extractor"] == DINO for n in ("fd_dinov2", "precision", "density"))
    assert "cmmd" not in m and "fd_clip" not in m   # not asked for: not in the record


def test_missing_dinov2_code_or_weights_skip_with_the_reason(no_weights_env, synthetic_val,  # noqa: F811
                                                            tmp_path, monkeypatch):
    monkeypatch.delenv(fsp.DINOV2_REPO_ENV, raising=False)
    protocol = _protocol(tmp_path, metrics=["fd_dinov2", "cmmd"])
    _generated(synthetic_val, tmp_path)
    m = evaluate_images(tmp_path / "gen", synthetic_val, protocol, multimodal=False,
                        progress=False)["metrics"]
    assert m["fd_dinov2"]["status"] == "skipped"
    assert "dinov2_vits14_pretrain.pth" in m["fd_dinov2"]["reason"]
    assert m["cmmd"]["status"] == "skipped" and CLIP in m["cmmd"]["reason"]
    # weights present but no model code: the reason names where it looked
    shutil.copy(_build_dinov2_file(tmp_path), no_weights_env / "dinov2_vits14_pretrain.pth")
    monkeypatch.setenv("HARNESS_ALLOW_UNVERIFIED_WEIGHTS", "1")
    m = evaluate_images(tmp_path / "gen", synthetic_val, protocol, multimodal=False,
                        progress=False)["metrics"]
    assert m["fd_dinov2"]["status"] == "skipped"
    assert fsp.DINOV2_REPO_ENV in m["fd_dinov2"]["reason"]


def test_dinov2_extractor_is_torch_fidelity_forward_on_the_hub_model(feature_env):
    """The harness's object is torch-fidelity's FeatureExtractorDinoV2 (its resize and
    normalisation) around the dinov2 hub model with the resolved weights."""
    from torch_fidelity.feature_extractor_dinov2 import FeatureExtractorDinoV2
    from torch_fidelity.interpolate_compat_tensorflow import \
        interpolate_bilinear_2d_like_tensorflow1x
    w = feature_env / fsp.FEATURE_WEIGHT_SPECS[DINO].filename
    ex = fsp.build_feature_extractor(DINO, w)
    assert isinstance(ex, FeatureExtractorDinoV2)
    state = torch.load(w, weights_only=True)
    assert all(torch.equal(v, state[k]) for k, v in ex.model.state_dict().items())
    x = torch.randint(0, 256, (2, 3, 40, 56), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(0))
    y = interpolate_bilinear_2d_like_tensorflow1x(x.float(), size=(224, 224),
                                                  align_corners=False)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255
    with torch.no_grad():
        expected = ex.model((y - mean) / std)
        assert torch.allclose(ex(x)[0], expected, atol=1e-5)


# --- LPIPS with the VGG trunk ----------------------------------------------------------------
def test_lpips_vgg_trunk_end_to_end(eval_env, synthetic_val, tmp_path, monkeypatch):  # noqa: F811
    """diversity.net: vgg through evaluate_images equals lpips.LPIPS(net='vgg') built the way its
    README does, its torchvision VGG16 trunk from the torch hub cache (the same seeded file)."""
    import warnings
    from itertools import combinations

    import lpips
    weights = tmp_path / "w"
    weights.mkdir()
    vgg = _build_vgg16_file(weights)
    for f in eval_env.iterdir():
        (weights / f.name).symlink_to(f)
    monkeypatch.setenv("HARNESS_WEIGHTS_DIR", str(weights))
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    hub.mkdir(parents=True, exist_ok=True)
    (hub / vgg.name).symlink_to(vgg)
    protocol = load_protocol(write_protocol(tmp_path, fid={"enabled": False},
                                            diversity={"net": "vgg", "samples_per_map": 3,
                                                       "maps": 2}))
    assert protocol.fields()["diversity"]["backbone"]["filename"] == "vgg16-397923af.pth"
    keys = diversity_keys(synthetic_val, protocol)
    samples = {}
    for key in keys:
        rec = next(r for r in synthetic_val.records() if r.key == key)
        image = synthetic_val.read_image(rec)
        samples[key] = []
        for j, kind in enumerate(["noise", "shift", "blur"]):
            path = tmp_path / "div" / key / f"{j}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(perturb(image, kind, j)).save(path)
            samples[key].append(path)
    gen = write_generated(synthetic_val, tmp_path / "gen", "noise")
    record = evaluate_images(gen, synthetic_val, protocol, diversity=samples, multimodal=True,
                             progress=False)
    entry = record["metrics"]["lpips_diversity"]
    assert entry["status"] == "ok" and entry["net"] == "vgg"
    assert record["weights"]["vgg16-imagenet"]["file"] == "vgg16-397923af.pth"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = lpips.LPIPS(net="vgg", version="0.1", verbose=False).eval()
    per_map = []
    with torch.no_grad():
        for key in keys:
            x = torch.stack([torch.from_numpy(np.asarray(Image.open(p).convert("RGB")))
                             .permute(2, 0, 1) for p in samples[key]]).float() / 127.5 - 1
            per_map.append(np.mean([reference(x[i:i + 1], x[j:j + 1]).item()
                                    for i, j in combinations(range(3), 2)]))
    assert entry["value"] == pytest.approx(float(np.mean(per_map)), rel=1e-5)
    assert entry["value"] > 0


# --- leaderboard -----------------------------------------------------------------------------
def test_feature_columns_appear_only_where_recorded(tmp_path):
    from _leaderboard_helpers import PROTO_A, PROTO_C, fid, ok, record, write_metrics
    from harness.results import build_leaderboard
    features = {"fd_dinov2": ok(101.5), "cmmd": ok(0.734), "precision": ok(0.61),
                "recall": ok(0.42), "density": ok(0.9), "coverage": ok(0.55)}
    runs = tmp_path / "runs"
    write_metrics(runs / "a" / "metrics.json",
                  record(method="spade", dataset="cityscapes", protocol=PROTO_A,
                         metrics={"fid": fid(60.0), "lpips_diversity": ok(0.2), **features}))
    write_metrics(runs / "b" / "metrics.json",
                  record(method="spade", dataset="ade20k", protocol=PROTO_C,
                         metrics={"fid": fid(40.0)}))
    out = build_leaderboard(runs, None, tmp_path / "out", "md,csv")
    md = out["md"].read_text()
    tables = md.split("### Protocol")[1:]
    city = next(t for t in tables if PROTO_A["id"] in t.splitlines()[0])
    ade = next(t for t in tables if PROTO_C["id"] in t.splitlines()[0])
    header = next(line for line in city.splitlines() if line.startswith("| Method"))
    for title in ("FD_DINOv2 ↓", "CMMD ↓", "precision ↑", "recall ↑", "density ↑",
                  "coverage ↑", "LPIPS (AlexNet) ↑"):
        assert title in header
    assert "FD_CLIP" not in header                      # nobody recorded it
    assert "101.50" in city and "0.734" in city
    assert "FD_DINOv2" not in ade and "CMMD" not in ade  # optional: absent where unrecorded
    assert "fd_dinov2" in out["csv"].read_text().splitlines()[0]   # the CSV keeps every column
