"""Pair a folder of generated images with the label maps of a split, by file name.

A generated file pairs with a record when its stem equals the record key, the stem of the
record's label or image file, or one of those followed by a suffix the official repositories
write (``_synthesized_image`` in pix2pixHD, ``_fake_B`` in pix2pix-style code, ...). So the
output folders of SPADE / CC-FPSE / OASIS / pix2pixHD can be scored as they are.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Sequence

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
LOSSY_EXTENSIONS = (".jpg", ".jpeg", ".webp")
KNOWN_SUFFIXES = ("_synthesized_image", "_synthesized", "_fake_B", "_fake_image", "_fake",
                  "_generated", "_gen", "_pred", "_output")
_LIST_LIMIT = 10


class PairingError(ValueError):
    """Generated images and label maps do not pair one to one; lists both directions."""


def image_files(folder: Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise PairingError(f"generated-image folder {folder} does not exist or is not a folder")
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                  and not p.name.startswith("."))


def _names_of(record) -> list[str]:
    names = [record.key]
    for path in (getattr(record, "label", None), getattr(record, "image", None)):
        if path is not None:
            names.append(Path(path).stem)
    return list(dict.fromkeys(names))


def _candidates(stem: str) -> list[str]:
    out = [stem]
    for suffix in KNOWN_SUFFIXES:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            out.append(stem[: -len(suffix)])
    return out


def _listing(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_LIST_LIMIT])
    more = len(items) - _LIST_LIMIT
    return shown + (f", ... and {more} more" if more > 0 else "")


def pair_images(folder: str | Path, dataset, keys: Iterable[str] | None = None) -> dict[str, Path]:
    """key -> generated file, for every record of ``dataset`` (or only ``keys``).

    Files that name a record outside ``keys`` are ignored (a folder of the whole split scored
    under a protocol with fewer images); files that name no record, records without a file and
    two files for one record are reported together in one :class:`PairingError`.
    """
    folder = Path(folder)
    files = image_files(folder)
    records = list(dataset.records())
    wanted = [r.key for r in records] if keys is None else list(keys)
    wanted_set = set(wanted)
    known_keys = {r.key for r in records}
    unknown_wanted = [k for k in wanted if k not in known_keys]
    if unknown_wanted:
        raise PairingError(f"{len(unknown_wanted)} requested keys are not records of the "
                           f"dataset: {_listing(unknown_wanted)}")

    lookup: dict[str, str] = {}
    for r in records:
        for name in _names_of(r):
            lookup.setdefault(name, r.key)

    paired: dict[str, Path] = {}
    duplicates: list[str] = []
    unpaired_files: list[str] = []
    for f in files:
        key = next((lookup[c] for c in _candidates(f.stem) if c in lookup), None)
        if key is None:
            unpaired_files.append(f.name)
        elif key not in wanted_set:
            continue
        elif key in paired:
            duplicates.append(f"{paired[key].name} and {f.name} (both {key})")
        else:
            paired[key] = f
    missing = [k for k in wanted if k not in paired]
    if unpaired_files or missing or duplicates:
        parts = [f"cannot pair the images in {folder} with the {len(wanted)} label maps of "
                 f"{getattr(dataset, 'name', 'the dataset')}/{getattr(dataset, 'split', '?')}:"]
        if unpaired_files:
            parts.append(f"{len(unpaired_files)} of {len(files)} image files match no label map: "
                         f"{_listing(unpaired_files)}")
        if missing:
            parts.append(f"{len(missing)} label maps have no image file: {_listing(missing)}")
        if duplicates:
            parts.append(f"{len(duplicates)} label maps have two image files: "
                         f"{_listing(duplicates)}")
        parts.append("a file pairs when its name (without extension) is the record key, the "
                     "label or image file name, optionally followed by one of "
                     f"{', '.join(KNOWN_SUFFIXES)}")
        raise PairingError("\n  ".join(parts))
    return {k: paired[k] for k in wanted}


def check_mapping(images: Mapping[str, str | Path], keys: Sequence[str]) -> dict[str, Path]:
    """A caller-given key -> file mapping must cover exactly ``keys``."""
    given = {str(k): Path(v) for k, v in images.items()}
    missing = [k for k in keys if k not in given]
    extra = sorted(set(given) - set(keys))
    if missing or extra:
        parts = ["generated images do not match the evaluated label maps:"]
        if missing:
            parts.append(f"{len(missing)} keys have no image: {_listing(missing)}")
        if extra:
            parts.append(f"{len(extra)} images name keys that are not evaluated: "
                         f"{_listing(extra)}")
        raise PairingError("\n  ".join(parts))
    absent = [str(given[k]) for k in keys if not given[k].is_file()]
    if absent:
        raise PairingError(f"{len(absent)} generated image files do not exist: "
                           f"{_listing(absent)}")
    return {k: given[k] for k in keys}


def check_sizes(paths: Mapping[str, Path], size_hw: tuple[int, int]) -> None:
    """Every generated image must have the protocol's resolution (read from headers only)."""
    from harness.core.data.imageio import image_size_hw
    wrong = []
    for key, path in paths.items():
        hw = image_size_hw(path, "generated image")
        if tuple(hw) != tuple(size_hw):
            wrong.append(f"{path.name} is {hw[0]}x{hw[1]}")
    if wrong:
        raise PairingError(f"{len(wrong)} of {len(paths)} generated images do not have the "
                           f"protocol's resolution {size_hw[0]}x{size_hw[1]} (HxW): "
                           f"{_listing(wrong)}; generate at that size (images are never resized "
                           "before scoring)")


def lossy_files(paths: Iterable[Path]) -> list[Path]:
    return [p for p in paths if Path(p).suffix.lower() in LOSSY_EXTENSIONS]
