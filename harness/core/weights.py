"""Pretrained weight files: one resolution order for every network the harness loads.

Order: explicit path (config / CLI) -> the configuration's ``weights:`` entry for the spec's key ->
``--weights-dir/<filename>`` -> ``$HARNESS_WEIGHTS_DIR/<filename>`` -> the torch hub cache
(``$TORCH_HOME/hub/checkpoints/<filename>``) -> download into the hub cache. The sha256 is checked
where known (a full hash, or the torch-hub prefix embedded in the file name). A missing file is one
:class:`WeightsUnavailable` error naming the file, its source and where to put it.

Environment:
- ``HARNESS_WEIGHTS_DIR``: a folder of weight files, looked up by file name.
- ``HARNESS_OFFLINE=1``: never try to download.
- ``HARNESS_ALLOW_UNVERIFIED_WEIGHTS=1``: accept a file whose sha256 differs from the known one
  (it is recorded as unverified in metrics.json); tests use this for seeded stand-in weights.
"""
from __future__ import annotations

import errno
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

WEIGHTS_DIR_ENV = "HARNESS_WEIGHTS_DIR"
OFFLINE_ENV = "HARNESS_OFFLINE"
ALLOW_UNVERIFIED_ENV = "HARNESS_ALLOW_UNVERIFIED_WEIGHTS"


class WeightsUnavailable(FileNotFoundError):
    """A weight file could not be found or downloaded."""


class WeightsHashMismatch(WeightsUnavailable, ValueError):
    """A weight file's sha256 differs from the published one. A WeightsUnavailable: a wrong file
    and a missing file are handled alike (the metric it serves is skipped with this reason)."""


@dataclass(frozen=True)
class WeightSpec:
    key: str                          # stable identifier, e.g. 'inception-v3-compat'
    filename: str                     # looked up under this name in the weights dir / hub cache
    url: str | None = None            # None: no public direct download
    sha256: str | None = None         # full sha256 when published
    sha256_prefix: str | None = None  # torch-hub style prefix (the hex part of the file name)
    source: str = ""                  # where a human gets it (page, repository)

    def identity(self) -> dict:
        """What a protocol hashes: the file's name and its known hash, never a local path."""
        return {"key": self.key, "filename": self.filename, "sha256": self.sha256,
                "sha256_prefix": self.sha256_prefix}


@dataclass(frozen=True)
class WeightNeed:
    """A weight file a run will need, declared before anything is built (see harness.preflight).

    ``metrics``: the metrics recorded as skipped without the file; empty when training itself
    needs it (then a missing file always stops the run)."""
    spec: WeightSpec
    purpose: str                      # e.g. 'VGG19 perceptual loss (method.lambda_vgg > 0)'
    metrics: tuple[str, ...] = ()
    path: str | Path | None = None    # an explicit path from the configuration, if any
    # Needed only in a case not known before the method is built (LPIPS for a method that does
    # not declare whether it is multimodal): a missing file warns instead of stopping.
    maybe: bool = False


@dataclass(frozen=True)
class ResolvedWeights:
    spec: WeightSpec
    path: Path
    sha256: str
    verified: bool | None             # None: no known hash to check against
    origin: str                       # explicit | weights-dir | hub-cache | download

    def record(self) -> dict:
        return {"key": self.spec.key, "file": self.spec.filename, "path": str(self.path),
                "sha256": self.sha256, "verified": self.verified, "origin": self.origin}


def hub_checkpoints_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASH_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _HASH_CACHE[key] = h.hexdigest()
    return _HASH_CACHE[key]


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


# Set by the command line (--weights-dir) and a configuration's ``weights:`` section (per-file
# paths by spec key), see harness.weights_catalog; consulted by resolve() before the environment.
_CONFIGURED: dict = {"dir": None, "paths": {}}


def configure(*, weights_dir: str | Path | None = None,
              paths: dict[str, str | Path] | None = None) -> None:
    """Set the weights folder (``--weights-dir``) and/or per-key file paths (``weights:``)."""
    if weights_dir is not None:
        _CONFIGURED["dir"] = Path(weights_dir).expanduser()
    for key, value in (paths or {}).items():
        _CONFIGURED["paths"][key] = Path(value).expanduser()


def reset_configuration() -> None:
    _CONFIGURED["dir"] = None
    _CONFIGURED["paths"].clear()


def configured_path(spec: WeightSpec) -> Path | None:
    return _CONFIGURED["paths"].get(spec.key)


def weights_dirs() -> list[Path]:
    """The weights folders searched by file name, in order: --weights-dir, $HARNESS_WEIGHTS_DIR."""
    out = [_CONFIGURED["dir"]] if _CONFIGURED["dir"] is not None else []
    env_dir = os.environ.get(WEIGHTS_DIR_ENV)
    if env_dir:
        out.append(Path(env_dir).expanduser())
    return out


def search_order(spec: WeightSpec, path: str | Path | None = None) -> list[tuple[str, Path]]:
    """(origin, file) pairs resolve() tries, in order (before a download)."""
    if path is None and configured_path(spec) is not None:
        return [("config", configured_path(spec))]
    if path is not None:
        return [("explicit", Path(path).expanduser())]
    return ([("weights-dir", d / spec.filename) for d in weights_dirs()]
            + [("hub-cache", hub_checkpoints_dir() / spec.filename)])


def _where_to_put(spec: WeightSpec) -> str:
    return (f"put it at ${WEIGHTS_DIR_ENV}/{spec.filename} or in --weights-dir "
            f"(`python -m harness weights add FILE` verifies and copies it), or at "
            f"{hub_checkpoints_dir() / spec.filename}, or pass its path explicitly")


def _verify(spec: WeightSpec, path: Path, origin: str) -> ResolvedWeights:
    digest = file_sha256(path)
    expected = spec.sha256 or spec.sha256_prefix
    if expected is None:
        return ResolvedWeights(spec, path, digest, None, origin)
    if digest.startswith(expected.lower()):
        return ResolvedWeights(spec, path, digest, True, origin)
    if os.environ.get(ALLOW_UNVERIFIED_ENV) == "1":
        return ResolvedWeights(spec, path, digest, False, origin)
    raise WeightsHashMismatch(
        f"weights file {path} ({spec.key}) has sha256 {digest}, expected "
        f"{'prefix ' if spec.sha256 is None else ''}{expected}; it is not the published "
        f"{spec.filename} (source: {spec.url or spec.source}). Replace it, or set "
        f"{ALLOW_UNVERIFIED_ENV}=1 to use it anyway (results are then marked unverified)")


def resolve(spec: WeightSpec, path: str | Path | None = None, *, download: bool | None = None) -> ResolvedWeights:
    """Find (or download) the weight file for ``spec``; see the module docstring for the order."""
    origin = "explicit"
    if path is None and configured_path(spec) is not None:
        path, origin = configured_path(spec), "config"  # the configuration's weights: section
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise WeightsUnavailable(f"weights file {p} for {spec.key} does not exist "
                                     f"(expected {spec.filename} from {spec.url or spec.source})")
        return _verify(spec, p, origin)
    for d in weights_dirs():  # --weights-dir, then $HARNESS_WEIGHTS_DIR
        p = d / spec.filename
        if p.is_file():
            return _verify(spec, p, "weights-dir")
    p = hub_checkpoints_dir() / spec.filename
    if p.is_file():
        return _verify(spec, p, "hub-cache")
    if download is None:
        download = os.environ.get(OFFLINE_ENV) != "1"
    reason = "downloads are disabled (HARNESS_OFFLINE=1)"
    if download and spec.url:
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            if not os.access(p.parent, os.W_OK):
                raise OSError(errno.EROFS if _read_only_fs(p.parent) else errno.EACCES,
                              "read-only file system" if _read_only_fs(p.parent) else
                              "not writable")
        except OSError as exc:  # a read-only / misplaced cache: say where, not a traceback
            raise WeightsUnavailable(
                f"weights file {spec.filename} for {spec.key} is missing and the weights cache "
                f"{p.parent} cannot be created ({exc.strerror or exc}). Get it from "
                f"{spec.url or spec.source} and {_where_to_put(spec)}.") from exc
        try:
            torch.hub.download_url_to_file(spec.url, str(p), hash_prefix=None, progress=True)
            return _verify(spec, p, "download")
        except Exception as exc:  # network errors come in many types
            if p.exists() and p.stat().st_size == 0:
                p.unlink()
            reason = f"download from {spec.url} failed ({type(exc).__name__}: {exc})"
    elif download and not spec.url:
        reason = "there is no direct download URL"
    raise WeightsUnavailable(
        f"weights file {spec.filename} for {spec.key} is missing and {reason}. "
        f"Get it from {spec.url or spec.source} and {_where_to_put(spec)}.")


# Weights used across the project. Evaluators and methods add their own specs next to their code.
INCEPTION_V3_COMPAT = WeightSpec(
    key="inception-v3-compat",
    filename="weights-inception-2015-12-05-6726825d.pth",
    url="https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
        "weights-inception-2015-12-05-6726825d.pth",
    sha256_prefix="6726825d",
    source="torch-fidelity release v0.2.0 (TF inception-2015-12-05, converted)")

VGG19_IMAGENET = WeightSpec(
    key="vgg19-imagenet", filename="vgg19-dcbb9e9d.pth",
    url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth", sha256_prefix="dcbb9e9d",
    source="torchvision VGG19_Weights.IMAGENET1K_V1")

VGG16_IMAGENET = WeightSpec(
    key="vgg16-imagenet", filename="vgg16-397923af.pth",
    url="https://download.pytorch.org/models/vgg16-397923af.pth", sha256_prefix="397923af",
    source="torchvision VGG16_Weights.IMAGENET1K_V1")

ALEXNET_IMAGENET = WeightSpec(
    key="alexnet-imagenet", filename="alexnet-owt-7be5be79.pth",
    url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", sha256_prefix="7be5be79",
    source="torchvision AlexNet_Weights.IMAGENET1K_V1")

SQUEEZENET_IMAGENET = WeightSpec(
    key="squeezenet1_1-imagenet", filename="squeezenet1_1-b8a52dc0.pth",
    url="https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth", sha256_prefix="b8a52dc0",
    source="torchvision SqueezeNet1_1_Weights.IMAGENET1K_V1")


def load_state_dict_file(resolved: ResolvedWeights) -> dict:
    """torch.load a resolved file on CPU (weights_only; old pickles fall back with a clear error)."""
    try:
        return torch.load(resolved.path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"weights file {resolved.path} ({resolved.spec.key}) could not be read "
                         f"as a state_dict: {type(exc).__name__}: {exc}") from exc
