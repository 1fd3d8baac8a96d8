"""A built-in, procedurally generated dataset: learnable, deterministic, generated in seconds.

Scenes of five stuff classes (sky, grass, water, road, wall) with things on the ground (tree, car,
person, house, ball). Every class has its own colour AND texture (gradient, grain, ripples,
bricks, stripes, checks, ...), so a small segmenter can learn it, plus mild per-image lighting
and noise. Things get distinct instance ids ``class * 1000 + k`` (k = 1, 2, ...), stuff its class
id (the Cityscapes convention).

Sample i of a split is a pure function of (generation_seed, split, i). A generated copy is
written once into ``<cache_root>/datasets/synthetic/<hash of the generation options>/`` in the
folder layout (see :mod:`harness.core.data.folder`): first into a private temp folder, then renamed
atomically, so several processes (DDP ranks) can start at once and never see half a dataset.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw

from harness.core.config import runtime
from harness.core.data import DATASETS
from harness.core.data.base import DatasetError, DatasetOptions
from harness.core.data.folder import FolderDataset
from harness.core.data.imageio import encode_png_ids, encode_png_rgb
from harness.core.io import atomic_write_json, atomic_write_text
from harness.core.paths import cache_root

GENERATOR_VERSION = 1   # bump when the pictures change, so old cached copies are not reused
STUFF = ("sky", "grass", "water", "road", "wall")
THINGS = ("tree", "car", "person", "house", "ball")
CLASSES = STUFF + THINGS
SKY, GRASS, WATER, ROAD, WALL, TREE, CAR, PERSON, HOUSE, BALL = range(len(CLASSES))
SPLITS = {"train": 0, "val": 1}

# Base colour (RGB in [0, 1]) of each class; the texture is added on top.
_COLOURS = np.array([
    (0.45, 0.65, 0.95),   # sky: light blue, vertical gradient
    (0.22, 0.58, 0.16),   # grass: green, fine grain
    (0.10, 0.30, 0.70),   # water: deep blue, horizontal ripples
    (0.36, 0.36, 0.38),   # road: grey, dashed lane marks
    (0.62, 0.30, 0.20),   # wall: red-brown bricks with light mortar
    (0.06, 0.34, 0.10),   # tree: dark green blotches
    (0.80, 0.10, 0.12),   # car: red, horizontal stripes
    (0.92, 0.62, 0.40),   # person: skin/orange, vertical stripes
    (0.86, 0.80, 0.60),   # house: beige with dark window checks
    (0.95, 0.85, 0.10),   # ball: yellow, diagonal stripes
])


@dataclass
class SyntheticOptions(DatasetOptions):
    root: str | None = runtime(None)        # where generated copies live; null: the cache
    preprocess: Literal["fixed", "resize_and_crop", "scale_width", "scale_width_and_crop",
                        "none"] = "none"    # keep the generated size
    load_size: int = 64
    crop_size: int = 64
    size: int = 64                          # generated images are size x size
    num_train: int = 256
    num_val: int = 64
    generation_seed: int = 0                # part of the cache key
    # Per-image shift of each class's base colour, uniform in [-j, j] per channel. The default
    # scenes barely vary within a class; a larger j gives per-class appearance to learn (what
    # GroupDNet's class codes and mCSD / mOCD are about).
    colour_jitter: float = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.size < 16:
            raise ValueError(f"size must be >= 16, got {self.size}")
        if self.num_train < 1 or self.num_val < 1:
            raise ValueError("num_train and num_val must be >= 1")
        if not 0.0 <= self.colour_jitter <= 1.0:
            raise ValueError(f"colour_jitter must lie in [0, 1], got {self.colour_jitter}")


def generation_key(options: SyntheticOptions) -> str:
    """Hash of what determines the generated files (not the transforms)."""
    spec = {"version": GENERATOR_VERSION, "size": options.size, "num_train": options.num_train,
            "num_val": options.num_val, "generation_seed": options.generation_seed}
    if options.colour_jitter != 0.05:  # the default keeps the keys of caches made before it
        spec["colour_jitter"] = options.colour_jitter
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


# --- one scene ---------------------------------------------------------------------------------
def _textures(rng: np.random.Generator, s: int, colour_jitter: float = 0.05) -> np.ndarray:
    """[classes, s, s, 3] float: every class's texture over the whole image."""
    y, x = np.mgrid[0:s, 0:s].astype(np.float64)
    yn = y / s
    tex = np.empty((len(CLASSES), s, s, 3))
    jitter = rng.uniform(-colour_jitter, colour_jitter, size=(len(CLASSES), 3))
    base = np.clip(_COLOURS + jitter, 0, 1)[:, None, None, :]
    phase = rng.uniform(0, 2 * np.pi, size=len(CLASSES))
    ones = np.ones((s, s))
    pattern = {
        SKY: 0.25 * (0.5 - yn),
        GRASS: rng.uniform(-0.14, 0.14, size=(s, s)),
        WATER: 0.12 * np.sin(2 * np.pi * y / 4 + 1.5 * np.sin(2 * np.pi * x / s + phase[WATER])),
        ROAD: 0.03 * rng.standard_normal((s, s)) + 0.4 * ((np.abs((y % 12) - 6) < 1)
                                                           & ((x % 8) < 4)),
        WALL: 0.25 * (((y % 6) < 1) | (((x + 4 * ((y // 6) % 2)) % 8) < 1)),
        TREE: 0.10 * np.sin(x / 2.1 + phase[TREE]) * np.sin(y / 1.7 + phase[TREE]),
        CAR: 0.12 * np.sign(np.sin(2 * np.pi * y / 4)),
        PERSON: 0.12 * np.sign(np.sin(2 * np.pi * x / 3)),
        HOUSE: -0.45 * (((x // 3) % 2 == 0) & ((y // 3) % 2 == 0)),
        BALL: 0.15 * np.sign(np.sin(2 * np.pi * (x + y) / 5)),
    }
    for c in range(len(CLASSES)):
        tex[c] = base[c] + (pattern[c] * ones)[..., None]
    return tex


def _thing_mask(cls: int, rng: np.random.Generator, s: int, ground: float) -> np.ndarray:
    """Boolean mask of one thing standing on the ground (bottom between horizon and image end)."""
    mask = Image.new("L", (s, s), 0)
    d = ImageDraw.Draw(mask)
    bottom = rng.uniform(max(ground, 0.35), 0.98) * s
    cx = rng.uniform(0.1, 0.9) * s
    scale = rng.uniform(0.7, 1.3) * s
    if cls == TREE:
        trunk_h, trunk_w, crown = 0.14 * scale, 0.035 * scale, 0.11 * scale
        d.rectangle([cx - trunk_w, bottom - trunk_h, cx + trunk_w, bottom], fill=1)
        cy = bottom - trunk_h - crown * 0.8
        d.ellipse([cx - crown, cy - crown * 1.2, cx + crown, cy + crown], fill=1)
    elif cls == CAR:
        w, h = 0.16 * scale, 0.06 * scale
        d.rectangle([cx - w, bottom - h - 0.02 * scale, cx + w, bottom - 0.02 * scale], fill=1)
        d.rectangle([cx - 0.55 * w, bottom - 1.8 * h, cx + 0.5 * w, bottom - h], fill=1)
        r = 0.03 * scale
        for wx in (cx - 0.6 * w, cx + 0.6 * w):
            d.ellipse([wx - r, bottom - 2 * r, wx + r, bottom], fill=1)
    elif cls == PERSON:
        w, h, r = 0.035 * scale, 0.2 * scale, 0.035 * scale
        d.rectangle([cx - w, bottom - h, cx + w, bottom], fill=1)
        d.ellipse([cx - r, bottom - h - 2 * r, cx + r, bottom - h], fill=1)
    elif cls == HOUSE:
        w, h = 0.14 * scale, 0.16 * scale
        d.rectangle([cx - w, bottom - h, cx + w, bottom], fill=1)
        d.polygon([(cx - 1.2 * w, bottom - h), (cx + 1.2 * w, bottom - h),
                   (cx, bottom - h - 0.9 * w)], fill=1)
    elif cls == BALL:
        r = rng.uniform(0.04, 0.08) * scale
        d.ellipse([cx - r, bottom - 2 * r, cx + r, bottom], fill=1)
    return np.asarray(mask, dtype=bool)


def make_scene(rng: np.random.Generator, s: int, colour_jitter: float = 0.05
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image uint8 [s,s,3], label int64 [s,s], instance int64 [s,s]) of one scene."""
    y, x = np.mgrid[0:s, 0:s] / s
    horizon = rng.uniform(0.3, 0.55)
    wave = horizon + 0.04 * np.sin(2 * np.pi * (rng.uniform(0.5, 2) * x + rng.uniform(0, 1)))
    label = np.empty((s, s), dtype=np.int64)
    label[:] = SKY if rng.random() < 0.75 else WALL
    # The ground: one to three bands of grass / water / road below a wavy horizon, each band a
    # different class from the one above it. ``flat`` undoes the wave, so bands follow it.
    flat = y - (wave - horizon)
    cuts = np.sort(rng.uniform(horizon + 0.05, 0.95, size=int(rng.integers(0, 3))))
    bounds = [horizon, *cuts.tolist(), np.inf]
    previous = -1
    for top, bottom in zip(bounds[:-1], bounds[1:]):
        cls = int(rng.choice([c for c in (GRASS, WATER, ROAD) if c != previous]))
        label[(flat >= top) & (flat < bottom)] = cls
        previous = cls
    instance = label.copy()
    counts = dict.fromkeys(range(len(CLASSES)), 0)
    for _ in range(int(rng.integers(1, 6))):
        cls = int(rng.integers(len(STUFF), len(CLASSES)))
        mask = _thing_mask(cls, rng, s, horizon)
        if not mask.any():
            continue
        counts[cls] += 1
        label[mask] = cls
        instance[mask] = cls * 1000 + counts[cls]
    tex = _textures(rng, s, colour_jitter)
    yi, xi = np.mgrid[0:s, 0:s]
    img = tex[label, yi, xi]
    # Lighting: a global gain, a gentle linear gradient, then sensor noise.
    gain = rng.uniform(0.85, 1.15)
    gx, gy = rng.uniform(-0.1, 0.1, size=2)
    img = img * (gain * (1 + gx * (x - 0.5) + gy * (y - 0.5)))[..., None]
    img = img + rng.normal(0, 0.02, size=img.shape)
    image = np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
    return image, label, instance


def sample_rng(generation_seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([generation_seed & ((1 << 64) - 1), SPLITS[split], index])


# --- the cached copy ---------------------------------------------------------------------------
def write_split(folder: Path, options: SyntheticOptions, split: str, count: int) -> None:
    for sub in ("images", "labels", "instances"):
        (folder / split / sub).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image, label, instance = make_scene(sample_rng(options.generation_seed, split, i),
                                            options.size, options.colour_jitter)
        name = f"{split}_{i:05d}.png"
        (folder / split / "images" / name).write_bytes(encode_png_rgb(image))
        (folder / split / "labels" / name).write_bytes(encode_png_ids(label))
        (folder / split / "instances" / name).write_bytes(encode_png_ids(instance))


def generated_root(options: SyntheticOptions) -> Path:
    """The folder of this generation, created (once, atomically) if it does not exist yet."""
    parent = (Path(options.root).expanduser() if options.root
              else cache_root() / "datasets" / "synthetic")
    final = parent / generation_key(options)
    if (final / "generation.json").is_file():
        return final
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = parent / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
    except OSError as exc:
        raise DatasetError(f"cannot create the synthetic dataset under {parent}: {exc.strerror} "
                           "(set HARNESS_CACHE or dataset.root to a writable folder)") from None
    try:
        names = "\n".join(f"  - {c}" for c in CLASSES)
        atomic_write_text(tmp / "classes.yaml", f"classes:\n{names}\nlabel_space: synthetic\n")
        write_split(tmp, options, "train", options.num_train)
        write_split(tmp, options, "val", options.num_val)
        atomic_write_json(tmp / "generation.json", {
            "version": GENERATOR_VERSION, "size": options.size, "num_train": options.num_train,
            "num_val": options.num_val, "generation_seed": options.generation_seed,
            "colour_jitter": options.colour_jitter,
            "things": list(THINGS), "stuff": list(STUFF)})
        try:
            os.rename(tmp, final)
        except OSError:
            # Another process finished first: its copy is identical, keep it.
            if not (final / "generation.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


@DATASETS.register("synthetic")
class SyntheticDataset(FolderDataset):
    """Built-in generated scenes: 5 stuff + 5 thing classes with instances (64 px, seconds)."""

    name = "synthetic"
    Options = SyntheticOptions
    default_protocol = "synthetic"
    tables_by_fingerprint = False   # a named dataset: its generation parameters are its identity

    @cached_property
    def _generated(self) -> Path:
        return generated_root(self.options)

    def _root(self) -> Path:
        return self._generated

    def identity_files(self) -> list[Path]:
        # generation.json holds the generating parameters; the generated files are listed too.
        return [*super().identity_files(), self._root() / "generation.json"]

    def scan(self):
        if self.split not in SPLITS:
            raise DatasetError(f"synthetic has no split {self.split!r}; use train or val")
        return super().scan()

    @cached_property
    def uses_instances(self) -> bool:
        return True
