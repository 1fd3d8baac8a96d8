"""Inputs the cases share: a folder of small PNG images and an Inception weight file with the
real torch-fidelity architecture (seeded values: speed does not depend on the values, and no
download is needed; never use these weights for a reported FID)."""
from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

import numpy as np
import torch


def image_folder(folder: Path, n: int, size: int = 64, seed: int = 0) -> list[Path]:
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"{i:05d}.png"
        if not path.is_file():
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def seeded_inception(path: Path, seed: int = 0) -> Path:
    """torch-fidelity's Inception (inception-v3-compat) with seeded He-normal weights."""
    if path.is_file():
        return path
    from torch import nn
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class _Skeleton(FeatureExtractorInceptionV3):
        def load_state_dict(self, *args, **kwargs):  # build the architecture, load nothing
            return None

    path.parent.mkdir(parents=True, exist_ok=True)
    empty = path.with_suffix(".empty.pth")
    torch.save({}, empty)
    net = _Skeleton("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(empty))
    empty.unlink()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.normal_(0.0, math.sqrt(2.0 / m.weight[0].numel()), generator=g)
                if m.bias is not None:
                    m.bias.zero_()
    torch.save(net.state_dict(), path)
    return path


ENV_KEYS = ("HARNESS_CACHE", "HARNESS_WEIGHTS_DIR", "HARNESS_ALLOW_UNVERIFIED_WEIGHTS",
            "HARNESS_OFFLINE")


@contextlib.contextmanager
def offline_harness(tmp: Path):
    """The harness offline with a fresh cache under ``tmp`` and a seeded Inception file as its
    weights (timing only: the numbers are not FID of any real weights); the environment is
    restored afterwards. Yields the reference-cache folder (empty it for a cold run)."""
    from harness.core.weights import INCEPTION_V3_COMPAT
    saved = {k: os.environ.get(k) for k in ENV_KEYS}
    seeded_inception(tmp / "weights" / INCEPTION_V3_COMPAT.filename)
    os.environ.update(HARNESS_CACHE=str(tmp / "cache"), HARNESS_WEIGHTS_DIR=str(tmp / "weights"),
                      HARNESS_ALLOW_UNVERIFIED_WEIGHTS="1", HARNESS_OFFLINE="1")
    try:
        yield tmp / "cache" / "reference"
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
