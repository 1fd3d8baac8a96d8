"""The evaluation protocol: every choice that changes a number, frozen and hashed.

A protocol is a YAML file in ``configs/protocols/`` (or any path) validated strictly into
:class:`Protocol`. Its hash covers every field except ``description``, plus three identities
that come from code rather than from the YAML (so a file cannot claim weights it does not use):

- ``fid.weights``: ``INCEPTION_V3_COMPAT.identity()`` (file name and published hash);
- ``segmentation.segmenter_identity``: the registered segmenter entry's ``identity``;
- ``diversity.backbone`` and ``classwise.backbone``: the LPIPS trunk's ``WeightSpec.identity()``.

``protocol.id`` (``<name>-<12 hex>``) names sample folders and metrics.json entries; results under
different ids are never averaged or put in one column.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from harness.core.config import (CONFIGS_ROOT, ConfigError, Provenance, deep_merge, from_dict,
                                 load_yaml, sha256_of, to_dict)

# Bump when a metric's code changes what it computes (a new number for the same inputs): every
# protocol hash changes with it, so old and new numbers are never put in one column.
METRIC_CODE_VERSION = 1

PROTOCOLS_DIR = CONFIGS_ROOT / "protocols"

ResizeFilter = Literal["bicubic", "bilinear", "lanczos", "nearest"]


@dataclass(frozen=True)
class FidSettings:
    """FID / KID with torch-fidelity on Inception pool3 features."""
    enabled: bool = True
    feature_extractor: Literal["inception-v3-compat"] = "inception-v3-compat"
    layer: Literal["2048"] = "2048"
    # The real set: the protocol split's images resized to the generation size.
    reference: Literal["split-images-resized-to-generation-size"] = \
        "split-images-resized-to-generation-size"
    resize_filter: ResizeFilter = "bicubic"
    kid: bool = True
    kid_subsets: int = 100
    kid_subset_size: int = 1000   # reduced to N when fewer images exist (noted in the record)
    # The bootstrap settings of EVERY metric's interval (FID, KID, mIoU, accuracy, LPIPS), read
    # through Protocol.statistics; they stay under fid: so that no protocol hash changes
    # (docs/statistics.md). 0 resamples = no intervals.
    bootstrap_resamples: int = 200
    confidence: float = 0.95
    bootstrap_seed: int = 0
    # Which library computes FID: 'torch-fidelity' (TF1-exact) or 'pytorch-fid' (the package,
    # what the SIS papers used; ~0.5 % apart). Hashed only when not the default, so the
    # protocols written before the field keep their ids (docs/protocols.md).
    flavour: Literal["torch-fidelity", "pytorch-fid"] = "torch-fidelity"

    def __post_init__(self) -> None:
        if self.kid_subsets < 1:
            raise ValueError(f"fid.kid_subsets must be >= 1, got {self.kid_subsets}")
        if self.kid_subset_size < 2:
            raise ValueError(f"fid.kid_subset_size must be >= 2, got {self.kid_subset_size}")
        if self.bootstrap_resamples < 0:
            raise ValueError(f"fid.bootstrap_resamples must be >= 0, got {self.bootstrap_resamples}")
        if not 0.0 < self.confidence < 1.0 or math.isnan(self.confidence):
            raise ValueError(f"fid.confidence must lie in (0, 1), got {self.confidence}")


@dataclass(frozen=True)
class SegmentationSettings:
    """mIoU / pixel accuracy of a segmenter on the generated images."""
    segmenter: str | None = None          # a name in evaluators.segmenters.SEGMENTERS
    # 'generated': the segmenter sees the generated image as is, labels are resized to it;
    # 'original': the image is upsampled to the label map's original size (upsample_filter).
    input_resolution: Literal["generated", "original"] = "generated"
    upsample_filter: ResizeFilter = "bicubic"
    label_resize: Literal["nearest"] = "nearest"
    label_space: str | None = None        # the dataset's EvalLabelSpace.name
    ignore_index: int = 255               # in the label space's ids
    # How classes count in the mean IoU:
    #   exclude-absent  mean over classes with union > 0 (fyu/drn, mmseg: nanmean)
    #   present-in-gt   mean over classes present in the ground truth (kazuto1011)
    #   zero            mean over all classes, a class with union 0 counts 0 (CSAIL)
    absent_classes: Literal["exclude-absent", "present-in-gt", "zero"] = "exclude-absent"
    # Pixels whose ground truth is the ignore index in the pixel accuracy: 'exclude' (the
    # datasets' own evaluations, ~93.5 % for SPADE on Cityscapes) or 'count-as-wrong' (their
    # pixels count, always wrong: SPADE / CC-FPSE's ~82 %). Both are always recorded.
    accuracy_ignored_pixels: Literal["exclude", "count-as-wrong"] = "exclude"
    real_images: bool = True              # also score the real images (the upper-bound row)

    def __post_init__(self) -> None:
        if self.segmenter is not None and not self.label_space:
            raise ValueError("segmentation.label_space is required when a segmenter is set")


@dataclass(frozen=True)
class DiversitySettings:
    """LPIPS diversity: mean pairwise LPIPS among K samples of one label map."""
    enabled: bool = True
    net: Literal["alex", "vgg"] = "alex"
    version: Literal["0.1", "0.0"] = "0.1"
    samples_per_map: int = 10
    maps: int | None = None               # None: every evaluated label map
    pairs: Literal["all"] = "all"         # all K(K-1)/2 pairs per map

    def __post_init__(self) -> None:
        if self.samples_per_map < 2:
            raise ValueError(f"diversity.samples_per_map must be >= 2, got {self.samples_per_map}")
        if self.maps is not None and self.maps < 1:
            raise ValueError(f"diversity.maps must be >= 1 or null, got {self.maps}")


@dataclass(frozen=True)
class ClasswiseSettings:
    """GroupDNet's mCSD / mOCD (evaluators/classwise.py): K samples per (label map, class) that
    differ only in that class's code; spatial LPIPS averaged inside / outside the class region.
    Methods without per-class codes get 'n/a'."""
    enabled: bool = True
    net: Literal["alex", "vgg"] = "alex"
    version: Literal["0.1", "0.0"] = "0.1"
    samples_per_class: int = 4            # K: K(K-1)/2 pairs per class
    maps: int = 10                        # the first N evaluated label maps
    min_pixels: int = 64                  # classes with fewer pixels in a map are not scored
    # The LPIPS distance map (lpips spatial=True, upsampled to the image) is averaged over the
    # region; the images themselves are never masked.
    masking: Literal["spatial-lpips-map"] = "spatial-lpips-map"

    def __post_init__(self) -> None:
        if self.samples_per_class < 2:
            raise ValueError(f"classwise.samples_per_class must be >= 2, got {self.samples_per_class}")
        if self.maps < 1:
            raise ValueError(f"classwise.maps must be >= 1, got {self.maps}")
        if self.min_pixels < 1:
            raise ValueError(f"classwise.min_pixels must be >= 1, got {self.min_pixels}")


FeatureMetric = Literal["fd_dinov2", "fd_clip", "cmmd", "precision", "recall", "density",
                        "coverage"]
DinoExtractor = Literal["dinov2-vit-s-14", "dinov2-vit-b-14", "dinov2-vit-l-14", "dinov2-vit-g-14"]
ClipExtractor = Literal["clip-rn50", "clip-rn101", "clip-rn50x4", "clip-rn50x16", "clip-rn50x64",
                        "clip-vit-b-32", "clip-vit-b-16", "clip-vit-l-14", "clip-vit-l-14-336px"]


@dataclass(frozen=True)
class FeatureSpaceSettings:
    """Opt-in metrics in other feature spaces (evaluators/feature_spaces.py, docs/evaluation.md).

    Empty ``metrics`` (the default) leaves the section out of the protocol hash, so protocols
    written before it existed keep their ids."""
    metrics: tuple[FeatureMetric, ...] = ()
    dinov2: DinoExtractor = "dinov2-vit-l-14"          # FD_DINOv2 (dgm-eval: ViT-L/14)
    clip: ClipExtractor = "clip-vit-l-14-336px"        # FD_CLIP and CMMD (CMMD: ViT-L/14@336)
    # precision / recall / density / coverage: one of the two above, or torch-fidelity's vgg16
    prdc: str = "vgg16"
    prc_neighborhood: int = 3          # torch-fidelity prc (Kynkaanniemi et al.: k = 3)
    dc_nearest_k: int = 5              # prdc density / coverage (Naeem et al.: k = 5)
    cmmd_sigma: float = 10.0           # google-research/cmmd distance.py
    cmmd_scale: float = 1000.0

    def __post_init__(self) -> None:
        if len(set(self.metrics)) != len(self.metrics):
            raise ValueError(f"features.metrics repeats a metric: {list(self.metrics)}")
        if self.prdc not in ("vgg16", self.dinov2, self.clip):
            raise ValueError(f"features.prdc must be 'vgg16', features.dinov2 "
                             f"({self.dinov2!r}) or features.clip ({self.clip!r}), "
                             f"got {self.prdc!r}")
        if self.prc_neighborhood < 1 or self.dc_nearest_k < 1:
            raise ValueError("features.prc_neighborhood and features.dc_nearest_k must be >= 1")
        if not self.cmmd_sigma > 0 or not self.cmmd_scale > 0:
            raise ValueError("features.cmmd_sigma and features.cmmd_scale must be > 0")


@dataclass(frozen=True)
class Protocol:
    name: str
    dataset: str
    resolution: tuple[int, int]           # (H, W) of generated images
    split: str = "val"
    num_images: int | None = None         # None: the whole split (first N sorted records else)
    seeds: tuple[int, ...] = (0,)         # generation seeds; one evaluation per seed
    fid: FidSettings = field(default_factory=FidSettings)
    segmentation: SegmentationSettings = field(default_factory=SegmentationSettings)
    diversity: DiversitySettings = field(default_factory=DiversitySettings)
    classwise: ClasswiseSettings = field(default_factory=ClasswiseSettings)
    features: FeatureSpaceSettings = field(default_factory=FeatureSpaceSettings)
    metric_version: int = METRIC_CODE_VERSION
    description: str = field(default="", compare=False)   # not hashed
    source: str | None = field(default=None, init=False, compare=False)  # the YAML it came from

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or self.name != self.name.strip():
            raise ValueError(f"name must be a non-empty string without '/', got {self.name!r}")
        h, w = self.resolution
        if h < 1 or w < 1:
            raise ValueError(f"resolution must be positive (H, W), got {self.resolution}")
        if self.num_images is not None and self.num_images < 1:
            raise ValueError(f"num_images must be >= 1 or null, got {self.num_images}")
        if not self.seeds:
            raise ValueError("seeds must list at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {list(self.seeds)}")
        if self.metric_version != METRIC_CODE_VERSION:
            raise ValueError(
                f"metric_version {self.metric_version} was written for another version of the "
                f"metric code; this harness computes version {METRIC_CODE_VERSION} (remove the "
                "key or set it to that value; numbers of the two versions are not comparable)")

    # --- identity -------------------------------------------------------------------------
    def fields(self) -> dict[str, Any]:
        """Every field, with the code-derived identities filled in (what the record stores)."""
        data = {f.name: to_dict(getattr(self, f.name)) for f in fields(self)
                if f.name != "source"}
        if self.fid.flavour == "torch-fidelity":   # default: absent, earlier hashes unchanged
            data["fid"].pop("flavour", None)
        data["fid"]["weights"] = fid_weights_identity(self.fid)
        data["segmentation"]["segmenter_identity"] = segmenter_identity(self.segmentation.segmenter)
        data["diversity"]["backbone"] = lpips_backbone_identity(self.diversity.net)
        data["classwise"]["backbone"] = lpips_backbone_identity(self.classwise.net)
        data.pop("features")  # hashed only when it asks for something (old ids unchanged)
        if self.features.metrics:
            from evaluators.feature_spaces import settings_identity
            data["features"] = settings_identity(self.features)
        return data

    def hashed_fields(self) -> dict[str, Any]:
        data = self.fields()
        data.pop("description")
        return data

    def hash(self) -> str:
        """Full sha256 of the canonical JSON of every hashed field."""
        return sha256_of(self.hashed_fields())

    @property
    def hash12(self) -> str:
        return self.hash()[:12]

    @property
    def id(self) -> str:
        return f"{self.name}-{self.hash12}"

    def __hash__(self) -> int:
        return hash(self.hash())

    def summary(self) -> dict[str, Any]:
        """The record's ``protocol`` entry."""
        return {"name": self.name, "hash": self.hash(), "id": self.id, "fields": self.fields()}

    @property
    def statistics(self):
        """Replicates, interval level and seed of every metric's bootstrap interval
        (evaluators.bootstrap.BootstrapSettings; the YAML keys are fid.bootstrap_resamples,
        fid.confidence, fid.bootstrap_seed)."""
        from evaluators.bootstrap import BootstrapSettings
        return BootstrapSettings(self.fid.bootstrap_resamples, self.fid.confidence,
                                 self.fid.bootstrap_seed)

    # --- what is evaluated ----------------------------------------------------------------
    @property
    def resolution_hw(self) -> tuple[int, int]:
        return int(self.resolution[0]), int(self.resolution[1])


# --- identities that come from code --------------------------------------------------------
def fid_weights_identity(fid: FidSettings) -> dict:
    from evaluators.pytorch_fid_flavour import inception_spec
    return inception_spec(fid.flavour).identity()


def lpips_backbone_identity(net: str) -> dict:
    from evaluators.diversity import backbone_spec
    return backbone_spec(net).identity()


def segmenter_identity(name: str | None) -> dict | None:
    if name is None:
        return None
    from evaluators.segmenters import SEGMENTERS
    from harness.core.registry import RegistryError
    try:
        entry = SEGMENTERS.get(name)
    except RegistryError as exc:
        raise ConfigError(f"segmenter {name!r} is not registered: {exc}") from None
    return {"name": entry.name, "label_space": entry.label_space, **dict(entry.identity)}


# --- loading --------------------------------------------------------------------------------
def _looks_like_path(text: str) -> bool:
    return text.endswith((".yaml", ".yml")) or "/" in text or "\\" in text


def protocol_names(root: Path | None = None) -> list[str]:
    root = Path(root) if root is not None else PROTOCOLS_DIR
    return sorted(p.stem for p in root.glob("*.yaml"))


def _from_file(path: Path, expected_name: str | None = None) -> Protocol:
    prov = Provenance()
    data = deep_merge({}, load_yaml(path), prov, str(path))
    data.setdefault("name", path.stem)
    if expected_name is not None and data["name"] != expected_name:
        raise ConfigError(f"{path}: name is {data['name']!r} but the file is looked up as "
                          f"{expected_name!r}; make the file name and 'name' agree")
    try:
        protocol = from_dict(Protocol, data, prov=prov)
    except ConfigError as exc:
        msg = str(exc)
        if str(path) not in msg:  # errors of the top-level checks have no key provenance
            msg = f"{path}: {msg.removeprefix('defaults: ')}"
        raise ConfigError(msg) from None
    object.__setattr__(protocol, "source", str(path))
    try:
        protocol.hash()  # resolves the segmenter identity now: one clear error at load time
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return protocol


def load_protocol(name_or_path: str | Path, *, root: Path | None = None) -> Protocol:
    """A protocol by name (``configs/protocols/<name>.yaml``) or from a YAML path; strict."""
    if isinstance(name_or_path, Protocol):
        return name_or_path
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or _looks_like_path(text):
        path = Path(text).expanduser()
        if not path.is_file():
            raise ConfigError(f"protocol file {path} does not exist")
        return _from_file(path)
    root = Path(root) if root is not None else PROTOCOLS_DIR
    path = root / f"{text}.yaml"
    if not path.is_file():
        known = ", ".join(protocol_names(root)) or "none"
        raise ConfigError(f"unknown protocol {text!r} (no {path}); known protocols: {known}; "
                          "or pass the path of a protocol YAML file")
    return _from_file(path, expected_name=text)


def list_protocols(*, root: Path | None = None) -> list[Protocol]:
    """Every protocol in ``configs/protocols/`` (sorted by name)."""
    return [load_protocol(name, root=root) for name in protocol_names(root)]


def protocols_for_dataset(dataset: str, *, root: Path | None = None) -> list[Protocol]:
    return [p for p in list_protocols(root=root) if p.dataset == dataset]
