"""Finding a split's files and pairing them, with errors that say what is missing and where.

Every dataset lists its images, label maps and instance maps into ``{key: path}`` dicts and calls
:func:`pair`, which either returns the records or raises ONE :class:`DatasetError` that lists
every unpaired file (first few of each kind), the path where its partner was looked for, and
the expected layout of the dataset.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from harness.core.data.base import DatasetError, Record

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_SHOWN = 8


def resolve_root(root: str | None, dataset: str, option: str = "dataset.root") -> Path:
    if root is None or str(root).strip() == "":
        raise DatasetError(f"{dataset}: no dataset folder given; set {option} (e.g. "
                           f"--set {option}=/path/to/{dataset})")
    return Path(root).expanduser()


def require_dir(path: Path, what: str, layout: str) -> Path:
    """``path`` must be an existing folder; otherwise say what it should contain."""
    if not path.is_dir():
        state = "is not a folder" if path.exists() else "does not exist"
        raise DatasetError(f"{what}: folder {path} {state}.\nExpected layout:\n{layout}")
    return path


def list_files(folder: Path, suffixes: Iterable[str], *, recursive: bool = False,
               endswith: str | None = None) -> list[Path]:
    """Files in ``folder`` whose name ends with one of ``suffixes`` (case-insensitive), hidden
    files and partial downloads skipped; with ``endswith`` only names ending with that text."""
    suffixes = tuple(s.lower() for s in suffixes)
    it = folder.rglob("*") if recursive else folder.iterdir()
    out = []
    for p in it:
        name = p.name
        if name.startswith(".") or not name.lower().endswith(suffixes):
            continue
        if endswith is not None and not name.endswith(endswith):
            continue
        if p.is_file():
            out.append(p)
    return sorted(out)


def by_key(paths: Iterable[Path], key: Callable[[Path], str], what: str) -> dict[str, Path]:
    """{key: path}; two files with the same key is an error naming both."""
    out: dict[str, Path] = {}
    for p in paths:
        k = key(p)
        if k in out:
            raise DatasetError(f"two {what} files share the key {k!r}: {out[k]} and {p}; keep one "
                               "of them (keys must be unique, e.g. not both .png and .jpg)")
        out[k] = p
    return out


def require_nonempty(files: dict[str, Path], what: str, folder: Path | str, pattern: str,
                     layout: str) -> None:
    if not files:
        raise DatasetError(f"no {what} found in {folder} (looked for {pattern}).\n"
                           f"Expected layout:\n{layout}")


def _listing(problems: list[tuple[Path, Path]], headline: str) -> str:
    lines = [headline]
    for have, wanted in problems[:_SHOWN]:
        lines.append(f"  {have}  (looked for {wanted})")
    if len(problems) > _SHOWN:
        lines.append(f"  ... and {len(problems) - _SHOWN} more")
    return "\n".join(lines)


def pair(dataset: str, *, images: dict[str, Path], labels: dict[str, Path],
         image_for: Callable[[str], Path], label_for: Callable[[str], Path], layout: str,
         instances: dict[str, Path] | None = None,
         instance_for: Callable[[str], Path] | None = None) -> list[Record]:
    """Pair images, label maps (and instance maps) by key into records.

    ``*_for(key)`` give the path where the partner of a key is expected (for the message only).
    With ``instances`` given, every label map needs an instance map and vice versa."""
    sections = []
    no_label = [(images[k], label_for(k)) for k in sorted(set(images) - set(labels))]
    no_image = [(labels[k], image_for(k)) for k in sorted(set(labels) - set(images))]
    if no_label:
        sections.append(_listing(no_label, f"{len(no_label)} image(s) without a label map:"))
    if no_image:
        sections.append(_listing(no_image, f"{len(no_image)} label map(s) without an image:"))
    if instances is not None:
        assert instance_for is not None
        no_inst = [(labels[k], instance_for(k)) for k in sorted(set(labels) - set(instances))]
        orphan = [(instances[k], label_for(k)) for k in sorted(set(instances) - set(labels))]
        if no_inst:
            sections.append(_listing(no_inst, f"{len(no_inst)} label map(s) without an instance "
                                              "map:"))
        if orphan:
            sections.append(_listing(orphan, f"{len(orphan)} instance map(s) without a label map:"))
    if sections:
        raise DatasetError(f"{dataset}: unpaired files.\n" + "\n".join(sections)
                           + f"\nExpected layout:\n{layout}")
    return [Record(key=k, image=images[k], label=labels[k],
                   instance=None if instances is None else instances[k]) for k in sorted(labels)]
