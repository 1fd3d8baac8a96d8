"""Shared fixtures of the evaluator tests: seeded stand-in weights and tiny image sets.

Weights: torch-fidelity's Inception with its real architecture and SEEDED He-initialised
convolutions (PyTorch's default init shrinks activations layer by layer until every image gives
the same pool3 features, FID ~1e-16), and torchvision's AlexNet with seeded weights. Both are
saved under the published file names into a session folder and resolved through
harness.core.weights like the real files (HARNESS_ALLOW_UNVERIFIED_WEIGHTS=1: the hashes differ).

Images: the synthetic dataset (real files on disk, 64 px) and "generated" sets derived from its
images by fixed perturbations, so FID between them is a real, non-trivial number.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from evaluators.fid import (ImageFilesDataset, RealImagesDataset, build_extractor,
                            extract_features, fid_value)
from harness.core.weights import ALEXNET_IMAGENET, INCEPTION_V3_COMPAT

N_VAL = 12          # images per set: Inception runs at a few images per second on CPU
SIZE = 64

# Session fixtures imported into several test modules get one FixtureDef per module; this cache
# makes the expensive ones (weights, features) run once per session all the same.
_SESSION: dict[str, object] = {}


def _once(name: str, build):
    if name not in _SESSION:
        _SESSION[name] = build()
    return _SESSION[name]


def he_init_(module: nn.Module, seed: int) -> None:
    """Seeded He-normal convolutions / linears, identity batch norms."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=g)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1.0)
                m.bias.zero_()
                m.running_mean.zero_()
                m.running_var.fill_(1.0)


def build_inception_state(folder: Path, seed: int = 0) -> dict:
    """The state_dict of torch-fidelity's Inception (its own module), seeded He init."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class _Skeleton(FeatureExtractorInceptionV3):
        def load_state_dict(self, *args, **kwargs):  # build the architecture, load nothing
            return None

    empty = folder / "empty-state.pth"
    torch.save({}, empty)
    net = _Skeleton("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(empty))
    empty.unlink()
    he_init_(net, seed)
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def build_alexnet_state(seed: int = 1) -> dict:
    import torchvision
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = torchvision.models.alexnet(weights=None)
    return model.state_dict()


@pytest.fixture(scope="session")
def eval_weights_dir(tmp_path_factory) -> Path:
    """A folder holding the stand-in Inception and AlexNet files under their published names."""
    def build():
        folder = tmp_path_factory.mktemp("eval-weights")
        torch.save(build_inception_state(folder), folder / INCEPTION_V3_COMPAT.filename)
        torch.save(build_alexnet_state(), folder / ALEXNET_IMAGENET.filename)
        return folder
    return _once("weights", build)


@pytest.fixture
def eval_env(tmp_path, monkeypatch, eval_weights_dir):
    """Offline, private cache and hub, the stand-in weights resolvable by file name."""
    monkeypatch.setenv("HARNESS_OFFLINE", "1")
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("HARNESS_WEIGHTS_DIR", str(eval_weights_dir))
    monkeypatch.setenv("HARNESS_ALLOW_UNVERIFIED_WEIGHTS", "1")
    return eval_weights_dir


@pytest.fixture
def no_weights_env(tmp_path, monkeypatch):
    """Offline with no weight file anywhere."""
    empty = tmp_path / "no-weights"
    empty.mkdir()
    monkeypatch.setenv("HARNESS_OFFLINE", "1")
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("HARNESS_WEIGHTS_DIR", str(empty))
    return empty


# --- images -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def synthetic_val(tmp_path_factory):
    """The synthetic dataset's val split (N_VAL images, 64 px) in a session folder."""
    from harness.core.data.synthetic import SyntheticDataset, SyntheticOptions

    def build():
        root = tmp_path_factory.mktemp("eval-synthetic")
        options = SyntheticOptions(root=str(root), num_train=2, num_val=N_VAL, size=SIZE)
        return SyntheticDataset(options, "val")
    return _once("synthetic", build)


def perturb(image: np.ndarray, kind: str, seed: int) -> np.ndarray:
    """A deterministic 'generated' version of a real uint8 [H,W,3] image."""
    rng = np.random.default_rng(seed)
    x = image.astype(np.float64)
    if kind == "noise":
        x = x + rng.normal(0.0, 25.0, size=x.shape)
    elif kind == "blur":
        pil = Image.fromarray(image).resize((SIZE // 4, SIZE // 4), Image.BILINEAR)
        x = np.asarray(pil.resize((SIZE, SIZE), Image.BILINEAR), dtype=np.float64)
    elif kind == "shift":
        x = 0.7 * x + 60.0 + rng.normal(0.0, 5.0, size=x.shape)
    else:
        raise ValueError(kind)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def write_generated(dataset, folder: Path, kind: str, *, seed: int = 0, suffix: str = "",
                    ext: str = ".png", keys=None) -> dict[str, Path]:
    """One perturbed copy of every (or the given) record's image, named <key><suffix><ext>."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, rec in enumerate(dataset.records()):
        if keys is not None and rec.key not in keys:
            continue
        img = perturb(dataset.read_image(rec), kind, seed * 1000 + i)
        path = folder / f"{rec.key}{suffix}{ext}"
        Image.fromarray(img).save(path)
        out[rec.key] = path
    return out


@pytest.fixture(scope="session")
def fid_sets(eval_weights_dir, synthetic_val, tmp_path_factory):
    """Real and generated features of the synthetic val split (extracted once)."""
    def build():
        weights = eval_weights_dir / INCEPTION_V3_COMPAT.filename
        folder = tmp_path_factory.mktemp("eval-fid-generated")
        gen_paths = write_generated(synthetic_val, folder, "noise")
        recs = synthetic_val.records()
        real_ds = RealImagesDataset(synthetic_val, recs, (SIZE, SIZE))
        extractor = build_extractor(weights)
        real = extract_features(real_ds, extractor, batch_size=12)
        gen = extract_features(ImageFilesDataset(list(gen_paths.values())), extractor,
                               batch_size=5)
        return {"weights": weights, "real": real, "gen": gen, "gen_dir": folder,
                "gen_paths": gen_paths, "real_dir": recs[0].image.parent, "real_ds": real_ds,
                "extractor": extractor,
                "fid": fid_value(gen, real)}  # ~3 s per FID on one core: computed once
    return _once("fid_sets", build)


def write_protocol(folder: Path, name: str = "eval-test", **sections) -> Path:
    """A protocol YAML for the synthetic val split at 64 px; ``sections`` update its parts
    (e.g. ``fid={"bootstrap_resamples": 10}``, ``num_images=4``)."""
    import yaml
    data = {"name": name, "dataset": "synthetic", "split": "val", "resolution": [SIZE, SIZE],
            "num_images": None, "seeds": [0],
            "fid": {"bootstrap_resamples": 20, "kid_subsets": 10},
            "segmentation": {"segmenter": None, "label_space": "synthetic"},
            "diversity": {"samples_per_map": 3, "maps": 2}}
    for key, value in sections.items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
        else:
            data[key] = value
    path = Path(folder) / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
