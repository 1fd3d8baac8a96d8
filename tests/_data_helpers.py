"""Tiny on-disk datasets in the exact public layouts (real PNG / JPEG encodings, small sizes)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def write_png(path: Path, array: np.ndarray) -> Path:
    """uint8 [H,W,3] -> RGB PNG; [H,W] ints -> 8-bit 'L' PNG, or 16-bit when a value > 255."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.asarray(array)
    if array.ndim == 3:
        img = Image.fromarray(array.astype(np.uint8))
    elif array.max(initial=0) > 255:
        img = Image.fromarray(array.astype(np.uint16))  # 'I;16', like Cityscapes instanceIds
    else:
        img = Image.fromarray(array.astype(np.uint8))
    img.save(path, format="PNG")
    return path


def write_jpg(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path, format="JPEG", quality=95)
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def random_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def block_labels(h: int, w: int, values: list[int], block: int = 4) -> np.ndarray:
    """Blocks of ``block`` x ``block`` pixels cycling through ``values`` (row-major)."""
    idx = (np.arange(h)[:, None] // block) * ((w + block - 1) // block) + np.arange(w)[None] // block
    return np.asarray(values, dtype=np.int64)[idx % len(values)]


# --- Cityscapes ---------------------------------------------------------------------------------
def make_cityscapes(root: Path, split: str = "val", cities: dict[str, int] | None = None,
                    size_hw: tuple[int, int] = (16, 32), seed: int = 0) -> list[str]:
    """leftImg8bit + gtFine labelIds (8-bit) + instanceIds (16-bit) for a few frames; keys."""
    rng = np.random.default_rng(seed)
    cities = cities or {"aachen": 2, "bremen": 1}
    h, w = size_hw
    keys = []
    for city, n in cities.items():
        for i in range(n):
            key = f"{city}_{i:06d}_{19 + i:06d}"
            keys.append(key)
            label = block_labels(h, w, [7, 8, 11, 23, 26, 24, 0, 33], block=4)
            instance = label.copy()
            cars = label == 26
            instance[cars] = 26000 + (np.arange(w)[None].repeat(h, 0)[cars] // 8)
            write_png(root / "leftImg8bit" / split / city / f"{key}_leftImg8bit.png",
                      random_image(rng, h, w))
            write_png(root / "gtFine" / split / city / f"{key}_gtFine_labelIds.png", label)
            write_png(root / "gtFine" / split / city / f"{key}_gtFine_instanceIds.png", instance)
            # Files the loader must ignore.
            write_png(root / "gtFine" / split / city / f"{key}_gtFine_color.png",
                      random_image(rng, h, w))
            (root / "gtFine" / split / city / f"{key}_gtFine_polygons.json").write_text("{}")
    return sorted(keys)


# --- ADE20K -------------------------------------------------------------------------------------
def make_ade20k(root: Path, split_dir: str = "validation", n: int = 3,
                size_hw: tuple[int, int] = (12, 20), seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    prefix = "ADE_train_" if split_dir == "training" else "ADE_val_"
    h, w = size_hw
    keys = []
    for i in range(1, n + 1):
        key = f"{prefix}{i:08d}"
        keys.append(key)
        write_jpg(root / "images" / split_dir / f"{key}.jpg", random_image(rng, h, w))
        write_png(root / "annotations" / split_dir / f"{key}.png",
                  block_labels(h, w, [0, 1, 2, 150, 75], block=3))
    return keys


# --- COCO-Stuff ---------------------------------------------------------------------------------
def make_coco_spade(root: Path, split: str = "val", n: int = 3, size_hw=(12, 16),
                    instances: bool = True, suffix: str = "", seed: int = 0,
                    start: int = 1) -> list[str]:
    """{split}_img/*.jpg, {split}_label/*.png, {split}_inst/*.png (suffix '_portrait' too)."""
    rng = np.random.default_rng(seed)
    h, w = size_hw
    keys = []
    for i in range(start, start + n):
        key = f"{i:012d}"
        keys.append(key)
        label = block_labels(h, w, [0, 90, 181, 255, 156], block=4)
        write_jpg(root / f"{split}_img{suffix}" / f"{key}.jpg", random_image(rng, h, w))
        write_png(root / f"{split}_label{suffix}" / f"{key}.png", label)
        if instances:
            write_png(root / f"{split}_inst{suffix}" / f"{key}.png", label)
    return keys


def make_coco_official(root: Path, split: str = "val", n: int = 2, size_hw=(12, 16),
                       seed: int = 0) -> list[str]:
    """images/{split}2017/*.jpg + stuffthingmaps/{split}2017/*.png (no instance maps)."""
    rng = np.random.default_rng(seed)
    h, w = size_hw
    keys = []
    for i in range(1, n + 1):
        key = f"{i:012d}"
        keys.append(key)
        write_jpg(root / "images" / f"{split}2017" / f"{key}.jpg", random_image(rng, h, w))
        write_png(root / "stuffthingmaps" / f"{split}2017" / f"{key}.png",
                  block_labels(h, w, [0, 90, 181, 255, 156], block=4))
    return keys


# --- folder -------------------------------------------------------------------------------------
def make_folder(root: Path, split: str = "train", n: int = 3, size_hw=(16, 16),
                classes=("sky", "grass", "road"), dontcare: int | None = None,
                instances: bool = False, seed: int = 0, label_values=None) -> list[str]:
    rng = np.random.default_rng(seed)
    h, w = size_hw
    root.mkdir(parents=True, exist_ok=True)
    text = "classes:\n" + "".join(f"  - {c}\n" for c in classes)
    if dontcare is not None:
        text += f"dontcare: {dontcare}\n"
    (root / "classes.yaml").write_text(text)
    values = label_values if label_values is not None else list(range(len(classes)))
    keys = []
    for i in range(n):
        key = f"img{i:03d}"
        keys.append(key)
        label = block_labels(h, w, values, block=4)
        write_png(root / split / "images" / f"{key}.png", random_image(rng, h, w))
        write_png(root / split / "labels" / f"{key}.png", label)
        if instances:
            write_png(root / split / "instances" / f"{key}.png", label * 1000 + i)
    return keys
