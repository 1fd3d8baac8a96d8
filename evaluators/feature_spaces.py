"""Metrics in feature spaces other than Inception: FD_DINOv2, FD_CLIP, CMMD, precision / recall,
density / coverage (opt-in through the protocol's ``features:`` section).

Every extractor is torch-fidelity 0.4.0's own (``dinov2-vit-*``, ``clip-*``, ``vgg16``: same
resize and normalisation as ``torch_fidelity.calculate_metrics``); only where its weights come
from differs, so that they go through :func:`harness.core.weights.resolve` (explicit path ->
``$HARNESS_WEIGHTS_DIR`` -> torch hub cache -> download) and are recorded with their sha256:

- ``clip-*``: torch-fidelity loads ``feature_extractor_weights_path`` with ``torch.jit.load``;
  the resolved OpenAI TorchScript file is passed there (its published sha256 is checked).
- ``vgg16``: the torchvision state_dict file, passed as ``feature_extractor_weights_path``.
- ``dinov2-vit-*``: torch-fidelity only builds these through
  ``torch.hub.load("facebookresearch/dinov2", ...)`` (a weights path raises
  NotImplementedError), which needs the network. The harness builds the same extractor object
  with its model from a local copy of that hub repository (``$HARNESS_DINOV2_REPO``, else torch
  hub's own cache ``$TORCH_HOME/hub/facebookresearch_dinov2_main``) with ``pretrained=False``,
  then loads the resolved ``dinov2_vit*14_pretrain.pth`` strictly; forward is torch-fidelity's.

One pass per extractor: every metric that uses an extractor reads the same [N, D] features; the
real images' features are cached per extractor under the content-keyed reference cache.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import Dataset

from harness.core.weights import VGG16_IMAGENET, WeightSpec, WeightsUnavailable, resolve

DINOV2_REPO_ENV = "HARNESS_DINOV2_REPO"
FEATURE_METRICS = ("fd_dinov2", "fd_clip", "cmmd", "precision", "recall", "density", "coverage")

_CLIP_FILES = {  # torch-fidelity feature_extractor_clip.MODEL_METADATA: sha256, file stem
    "clip-rn50": ("afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762", "RN50"),
    "clip-rn101": ("8fa8567bab74a42d41c5915025a8e4538c3bdbe8804a470a72f30b0d94fab599", "RN101"),
    "clip-rn50x4": ("7e526bd135e493cef0776de27d5f42653e6b4c8bf9e0f653bb11773263205fdd", "RN50x4"),
    "clip-rn50x16": ("52378b407f34354e150460fe41077663dd5b39c54cd0bfd2b27167a4a06ec9aa",
                     "RN50x16"),
    "clip-rn50x64": ("be1cfb55d75a9666199fb2206c106743da0f6468c9d327f3e0d0a543a9919d9c",
                     "RN50x64"),
    "clip-vit-b-32": ("40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
                      "ViT-B-32"),
    "clip-vit-b-16": ("5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f",
                      "ViT-B-16"),
    "clip-vit-l-14": ("b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
                      "ViT-L-14"),
    "clip-vit-l-14-336px": ("3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02",
                            "ViT-L-14-336px"),
}
_DINOV2_HUB = {"dinov2-vit-s-14": "dinov2_vits14", "dinov2-vit-b-14": "dinov2_vitb14",
               "dinov2-vit-l-14": "dinov2_vitl14", "dinov2-vit-g-14": "dinov2_vitg14"}


def _clip_spec(name: str) -> WeightSpec:
    sha, stem = _CLIP_FILES[name]
    # The file name torch-fidelity itself downloads to (so an existing hub cache is reused).
    return WeightSpec(key=name, filename=f"{name}-{sha}.pt",
                      url=f"https://openaipublic.azureedge.net/clip/models/{sha}/{stem}.pt",
                      sha256=sha, source="OpenAI CLIP (TorchScript), as torch-fidelity 0.4.0")


def _dinov2_spec(name: str) -> WeightSpec:
    hub = _DINOV2_HUB[name]
    return WeightSpec(key=name, filename=f"{hub}_pretrain.pth",
                      url=f"https://dl.fbaipublicfiles.com/dinov2/{hub}/{hub}_pretrain.pth",
                      source="facebookresearch/dinov2 (LVD-142M backbone, no published sha256)")


# Regular WeightSpec entries, one per extractor (listed by `harness weights`).
FEATURE_WEIGHT_SPECS: dict[str, WeightSpec] = {
    **{n: _clip_spec(n) for n in _CLIP_FILES},
    **{n: _dinov2_spec(n) for n in _DINOV2_HUB},
    "vgg16": VGG16_IMAGENET,
}
LAYERS = {**{n: "clip" for n in _CLIP_FILES}, **{n: "dinov2" for n in _DINOV2_HUB},
          "vgg16": "fc2_relu"}


def weight_spec(extractor: str) -> WeightSpec:
    try:
        return FEATURE_WEIGHT_SPECS[extractor]
    except KeyError:
        raise ValueError(f"unknown feature extractor {extractor!r}; known: "
                         f"{', '.join(FEATURE_WEIGHT_SPECS)}") from None


# --- which extractor feeds which metric ------------------------------------------------------
def metric_extractors(fs) -> dict[str, str]:
    """Requested metric -> extractor id (a FeatureSpaceSettings)."""
    by = {"fd_dinov2": fs.dinov2, "fd_clip": fs.clip, "cmmd": fs.clip}
    return {m: by.get(m, fs.prdc) for m in fs.metrics}


def feature_weight_needs(fs, skips=()) -> list:
    """The weight files a ``features:`` section resolves (evaluators/requirements.py)."""
    from harness.core.weights import WeightNeed
    by_extractor: dict[str, list[str]] = {}
    for metric, extractor in metric_extractors(fs).items():
        if metric not in skips:
            by_extractor.setdefault(extractor, []).append(metric)
    return [WeightNeed(weight_spec(e), f"{e} features for {', '.join(ms)}", tuple(ms))
            for e, ms in by_extractor.items()]


def settings_identity(fs) -> dict:
    """What the protocol hashes for a ``features:`` section: its fields plus every used
    extractor's weight identity (file name and known hash)."""
    from harness.core.config import to_dict
    data = to_dict(fs)
    used = sorted(set(metric_extractors(fs).values()))
    data["extractors"] = {e: weight_spec(e).identity() for e in used}
    return data


# --- building an extractor -------------------------------------------------------------------
def dinov2_repo() -> Path:
    """The local facebookresearch/dinov2 hub repository (code only; weights come separately)."""
    env = os.environ.get(DINOV2_REPO_ENV)
    candidates = [Path(env).expanduser()] if env else []
    candidates.append(Path(torch.hub.get_dir()) / "facebookresearch_dinov2_main")
    for c in candidates:
        if (c / "hubconf.py").is_file():
            return c
    raise WeightsUnavailable(
        "the DINOv2 model code (the facebookresearch/dinov2 torch.hub repository) is missing: "
        f"looked in {', '.join(str(c) for c in candidates)}. Clone "
        "https://github.com/facebookresearch/dinov2 there, or set "
        f"{DINOV2_REPO_ENV} to a checkout (it needs hubconf.py)")


def build_feature_extractor(name: str, weights_path: str | Path,
                            device: str | torch.device = "cpu") -> torch.nn.Module:
    """torch-fidelity's extractor ``name`` with its weights read from ``weights_path``."""
    from torch_fidelity.utils import create_feature_extractor
    if name in _DINOV2_HUB:
        extractor = _build_dinov2(name, Path(weights_path))
    else:
        extractor = create_feature_extractor(name, [LAYERS[name]], cuda=False, verbose=False,
                                             feature_extractor_weights_path=str(weights_path))
    return extractor.to(torch.device(device))


def _build_dinov2(name: str, weights_path: Path) -> torch.nn.Module:
    import warnings
    from contextlib import redirect_stdout

    from torch_fidelity.feature_extractor_base import FeatureExtractorBase
    from torch_fidelity.feature_extractor_dinov2 import FeatureExtractorDinoV2
    repo = dinov2_repo()
    # torch-fidelity's __init__ only differs in fetching the model from the network; build the
    # same object (its forward: TF1 bilinear resize to 224, ImageNet normalisation) around the
    # model from the local repository.
    extractor = FeatureExtractorDinoV2.__new__(FeatureExtractorDinoV2)
    FeatureExtractorBase.__init__(extractor, name, ["dinov2"])
    extractor.feature_extractor_internal_dtype = torch.float32
    os.environ.setdefault("XFORMERS_DISABLED", "1")
    with redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="xFormers")
        model = torch.hub.load(str(repo), _DINOV2_HUB[name], source="local", pretrained=False)
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"weights file {weights_path} does not fit {name} "
                         f"({_DINOV2_HUB[name]} from {repo}): {exc}") from None
    extractor.model = model
    extractor.to(torch.float32)
    extractor.requires_grad_(False)
    extractor.eval()
    return extractor


def extract(images: Dataset, extractor: torch.nn.Module, layer: str, *, batch_size: int = 32,
            device: str | torch.device = "cpu", progress: bool = False) -> torch.Tensor:
    """[N, D] float32 CPU features of a uint8 image Dataset (torch-fidelity's loop)."""
    from contextlib import nullcontext

    from torch_fidelity.utils import get_featuresdict_from_dataset
    device = torch.device(device)
    cuda = device.type == "cuda"
    with torch.cuda.device(device) if cuda else nullcontext():
        out = get_featuresdict_from_dataset(images, extractor, batch_size, cuda,
                                            save_cpu_ram=not cuda or _in_memory(images),
                                            verbose=progress)
    return out[layer].cpu()


def _in_memory(images: Dataset) -> bool:
    # decoded images (evaluators/image_pass.py) need no DataLoader worker processes
    return bool(getattr(images, "in_memory", False))


# --- the evaluation step ---------------------------------------------------------------------
def feature_space_metrics(run) -> dict[str, dict]:
    """The requested feature-space metrics of one evaluation (``run``: evaluate._Run), with a
    pass of their own over the images (evaluate_images shares one pass: :func:`feature_stage`)."""
    from evaluators import image_pass
    consumers, result = feature_stage(run)
    image_pass.run_pass(run, consumers)
    return result()


def feature_stage(run) -> tuple[list, Callable[[], dict[str, dict]]]:
    """(consumers of the shared image pass, the metrics once it has run): one consumer per
    extractor and image set (the real set only when not in the reference cache)."""
    fs = run.protocol.features
    if not fs.metrics:
        return [], dict
    from harness.core.records import skipped
    wanted = {m: e for m, e in metric_extractors(fs).items() if m not in run.skips}
    out: dict[str, dict] = {m: skipped("skipped on request")
                            for m in fs.metrics if m not in wanted}
    passes: dict[str, _ExtractorPass] = {}
    for extractor_id in dict.fromkeys(wanted.values()):
        users = [m for m, e in wanted.items() if e == extractor_id]
        try:
            passes[extractor_id] = _ExtractorPass(run, extractor_id)
        except WeightsUnavailable as exc:
            out.update({m: skipped(str(exc)) for m in users})

    def result() -> dict[str, dict]:
        feats = {e: p.features() for e, p in passes.items()}
        return _feature_metrics(run, fs, wanted, out, feats)
    return [c for p in passes.values() for c in p.consumers], result


def _feature_metrics(run, fs, wanted: dict, out: dict, feats: dict) -> dict[str, dict]:
    from harness.core.records import ok, skipped
    if not run.is_main:
        return out
    from evaluators import feature_metrics as fm
    for m, e in wanted.items():
        if e not in feats:
            continue
        gen, real = feats[e]
        info: dict[str, Any] = {"extractor": e, "n": int(gen.shape[0]),
                                "n_real": int(real.shape[0]), "dims": int(gen.shape[1])}
        if min(gen.shape[0], real.shape[0]) < 2:
            out[m] = skipped(f"{m} needs at least 2 generated and 2 real images")
        elif m in ("fd_dinov2", "fd_clip"):
            out[m] = ok(fm.frechet_distance(gen, real), **info)
        elif m == "cmmd":
            out[m] = ok(fm.cmmd(gen, real, sigma=fs.cmmd_sigma, scale=fs.cmmd_scale),
                        sigma=fs.cmmd_sigma, scale=fs.cmmd_scale, estimator="biased", **info)
        elif m in ("precision", "recall"):
            k = fs.prc_neighborhood
            if min(gen.shape[0], real.shape[0]) <= k:
                out[m] = skipped(f"{m} needs more than prc_neighborhood={k} images per set")
            else:
                out[m] = ok(fm.precision_recall(gen, real, k)[m], neighborhood=k, **info)
        else:
            k = fs.dc_nearest_k
            if min(gen.shape[0], real.shape[0]) <= k:
                out[m] = skipped(f"{m} needs more than dc_nearest_k={k} images per set")
            else:
                out[m] = ok(fm.density_coverage(gen, real, k)[m], nearest_k=k, **info)
    return {m: out[m] for m in fs.metrics}


# Counts extractor passes (the test that one pass feeds every metric of an extractor).
EXTRACTOR_PASSES: list[tuple[str, str]] = []


class _ExtractorPass:
    """One extractor's part of the shared pass: its weights resolved, the extractor built, the
    real features read from the reference cache when there (else extracted and cached)."""

    def __init__(self, run, extractor_id: str) -> None:
        from evaluators import image_pass
        from evaluators import reference_cache as cache
        spec = weight_spec(extractor_id)
        self.resolved = resolve(spec, run.weights.get(spec.key))
        run.weights_used[spec.key] = self.resolved.record()
        self.run, self.extractor_id, self.layer = run, extractor_id, LAYERS[extractor_id]
        tag = cache.weights_tag([self.resolved.sha256])
        self.path = run.ref_dir / f"features-real-{extractor_id}-{tag}.pt"
        self.entry = run.cached(self.path)
        self.extractor = build_feature_extractor(extractor_id, self.resolved.path, run.device)
        self.gen = self._rows(image_pass.GENERATED, "generated")
        self.real = (None if self.entry is not None
                     else self._rows(image_pass.REAL, "real (cached afterwards)"))
        self.consumers = [c for c in (self.gen, self.real) if c is not None]

    def _rows(self, source: str, desc: str):
        from evaluators import image_pass
        EXTRACTOR_PASSES.append((self.extractor_id, desc))
        run = self.run

        def rows(images: Dataset) -> torch.Tensor:
            return extract(images, self.extractor, self.layer, batch_size=run.batch_size,
                           device=run.device, progress=False)
        return image_pass.FeatureRows(f"{self.extractor_id} ({desc})", source, rows)

    def features(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(generated, real) [N, D] features, every rank's rows in key order."""
        from evaluators import reference_cache as cache
        self.extractor = None   # the pass is over: free the network before the metrics
        gen = self.gen.gathered(self.run)
        if self.entry is not None:
            return gen, self.entry.get("features")
        real = self.real.gathered(self.run)
        if self.run.is_main:
            cache.save(self.path, self.run.keys, features=real,
                       weights_sha256=self.resolved.sha256)
        return gen, real
