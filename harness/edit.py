"""Class-wise control of a trained method with one latent code per semantic class (GroupDNet).

Four operations, each a pure function of (method, dataset items, arguments, seed) that returns
images; :func:`write_edit` stores them as PNGs plus a grid and a ``manifest.json`` under
``<run>/edits/<operation>-<id>/``:

- ``resample``: K images of one label map that differ only in class C's code;
- ``mix``: class codes taken from reference images (sky from one, road from another);
- ``manipulate``: the label map is edited (class a -> class b, optionally inside a box) while the
  codes are kept;
- ``morph``: the codes of two images are interpolated in N steps (frames + a GIF).

Codes are drawn from per-key generators (``harness.generate.image_generator``), so an edit is
reproducible from its manifest. Methods without per-class codes are refused with one line.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from harness.core.data.base import Batch, DatasetError, collate
from harness.core.io import atomic_write, atomic_write_json
from harness.generate import image_generator, key_path, save_png
from harness.train.samples import colorize, write_png

OPERATIONS = ("resample", "mix", "manipulate", "morph")


class EditError(DatasetError):
    """A user error in an edit request (unsupported method, unknown key or class): exit 2."""


@dataclass
class Edit:
    """What one operation produced: labelled images (uint8 [3,H,W]) in display order."""
    operation: str
    images: list[tuple[str, torch.Tensor]]
    params: dict[str, Any]
    label_maps: list[tuple[str, torch.Tensor]] = field(default_factory=list)  # [H,W] int64
    frames: list[torch.Tensor] = field(default_factory=list)  # morph: the sequence, in order


# --- arguments ---------------------------------------------------------------------------------
def require_classwise(method: Any) -> None:
    if not getattr(method, "supports_classwise_codes", False):
        raise EditError(f"class-wise editing is not supported by {getattr(method, 'name', '?')!r}: "
                        "it has no per-class latent codes (use a GroupDNet run)")


def class_id(spec: str | int, class_names: Sequence[str]) -> int:
    """A class given by id ('23') or by name ('sky'; case-insensitive)."""
    text = str(spec).strip()
    if text.lstrip("-").isdigit():
        cid = int(text)
        if not 0 <= cid < len(class_names):
            raise EditError(f"class id {cid} is out of range 0..{len(class_names) - 1}")
        return cid
    lowered = [n.lower() for n in class_names]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    raise EditError(f"unknown class {text!r}; classes: {', '.join(class_names)}")


def item(dataset: Any, key: str) -> Batch:
    """The dataset item with ``key`` as a batch of one."""
    keys = dataset.keys()
    if key not in keys:
        sample = ", ".join(keys[:5])
        raise EditError(f"key {key!r} is not in split {dataset.split!r} of {dataset.name} "
                        f"({len(keys)} keys, e.g. {sample})")
    return collate([dataset[keys.index(key)]])


def _present(batch: Batch) -> list[int]:
    return sorted(int(c) for c in batch.label.unique())


def _require_present(batch: Batch, cid: int, names: Sequence[str]) -> None:
    present = _present(batch)
    if cid not in present:
        raise EditError(f"class {names[cid]!r} ({cid}) does not occur in the label map of "
                        f"{batch.key[0]!r}; present: "
                        + ", ".join(f"{names[c]} ({c})" for c in present))


def _gen(seed: int, key: str, sample: int | None = None) -> list[torch.Generator]:
    return [image_generator(seed, key, sample)]


def _render(method: Any, batch: Batch, codes: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
    device = method.device
    label = batch.label if label is None else label
    out = method.generate_from_codes(
        label.to(device), codes, instance=None if batch.instance is None else batch.instance.to(device),
        edge=None if batch.edge is None else batch.edge.to(device))
    return out[0].cpu()


def _codes(method: Any, batch: Batch, source: str, seed: int) -> torch.Tensor:
    """The starting codes: the encoder's means of the real image, or a seeded draw."""
    if source == "encoded":
        device = method.device
        return method.encode_class_codes(
            batch.image.to(device), batch.label.to(device),
            instance=None if batch.instance is None else batch.instance.to(device),
            edge=None if batch.edge is None else batch.edge.to(device))
    if source != "random":
        raise EditError(f"codes must be 'random' or 'encoded', got {source!r}")
    return method.sample_class_codes(batch.label.to(method.device), _gen(seed, batch.key[0]))


# --- the four operations -------------------------------------------------------------------------
@torch.no_grad()
def resample(method: Any, batch: Batch, cid: int, *, k: int = 4, seed: int = 0,
             names: Sequence[str] = ()) -> Edit:
    """K images that differ only in class ``cid``'s code (the others fixed at a seeded draw)."""
    require_classwise(method)
    _require_present(batch, cid, names or [str(i) for i in range(cid + 1)])
    if k < 2:
        raise EditError(f"--k must be at least 2 to compare samples, got {k}")
    key = batch.key[0]
    base = method.sample_class_codes(batch.label.to(method.device), _gen(seed, key))
    images = []
    for i in range(k):
        codes = method.sample_class_codes(batch.label.to(method.device), _gen(seed, key, i + 1),
                                          base=base, classes=[cid])
        images.append((f"sample {i}", _render(method, batch, codes)))
    return Edit("resample", images, {"key": key, "class": cid, "k": k, "seed": seed},
                label_maps=[(key, batch.label[0])])


@torch.no_grad()
def mix(method: Any, target: Batch, takes: Sequence[tuple[int, Batch]], *, codes: str = "random",
        seed: int = 0, names: Sequence[str] = ()) -> Edit:
    """Codes of ``target`` with each (class, reference) replaced by the reference image's code
    of that class (the encoder's mean)."""
    require_classwise(method)
    if not takes:
        raise EditError("mix needs at least one --take CLASS=KEY")
    device = method.device
    start = _codes(method, target, codes, seed)
    mixed = start.clone()
    for cid, ref in takes:
        _require_present(ref, cid, names)
        ref_codes = method.encode_class_codes(
            ref.image.to(device), ref.label.to(device),
            instance=None if ref.instance is None else ref.instance.to(device),
            edge=None if ref.edge is None else ref.edge.to(device))
        mixed[:, cid] = ref_codes[:, cid]
    images = [("before", _render(method, target, start))]
    images += [(f"reference {ref.key[0]}", _uint8(ref.image[0])) for _, ref in takes]
    images.append(("mixed", _render(method, target, mixed)))
    return Edit("mix", images, {"key": target.key[0], "codes": codes, "seed": seed,
                                "take": [{"class": c, "key": r.key[0]} for c, r in takes]},
                label_maps=[(target.key[0], target.label[0])])


@torch.no_grad()
def manipulate(method: Any, batch: Batch, source: int, dest: int, *,
               box: tuple[int, int, int, int] | None = None, codes: str = "random", seed: int = 0,
               names: Sequence[str] = ()) -> Edit:
    """Replace class ``source`` by ``dest`` in the label map (inside ``box`` = y0, x0, y1, x1
    if given) and render with the same codes. A class new to the map draws its code from the
    seed (an encoder has no code for a class the image does not show)."""
    require_classwise(method)
    _require_present(batch, source, names)
    label = batch.label.clone()
    region = label == source
    if box is not None:
        y0, x0, y1, x1 = box
        h, w = label.shape[1:]
        if not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w):
            raise EditError(f"--box {y0},{x0},{y1},{x1} is not inside the {h}x{w} label map "
                            "(y0,x0,y1,x1 with y0<y1, x0<x1)")
        inside = torch.zeros_like(region)
        inside[:, y0:y1, x0:x1] = True
        region &= inside
    if not bool(region.any()):
        raise EditError(f"class {source} has no pixels inside the box {box}")
    label[region] = dest
    base = _codes(method, batch, codes, seed)
    new_classes = sorted(set(int(c) for c in label.unique()) - set(_present(batch)))
    if new_classes:
        base = method.sample_class_codes(label.to(method.device),
                                         _gen(seed, batch.key[0], 1_000_003), base=base,
                                         classes=new_classes)
    images = [("before", _render(method, batch, base)),
              ("after", _render(method, batch, base, label=label))]
    return Edit("manipulate", images,
                {"key": batch.key[0], "replace": [source, dest], "box": list(box) if box else None,
                 "codes": codes, "seed": seed, "pixels": int(region.sum())},
                label_maps=[("before", batch.label[0]), ("after", label[0])])


@torch.no_grad()
def morph(method: Any, a: Batch, b: Batch, *, steps: int = 8) -> Edit:
    """Encode both images, interpolate their codes linearly in ``steps`` frames (both ends
    included) and render them on A's label map. A class absent from B keeps A's code (the
    encoder gives absent classes no code to move towards)."""
    require_classwise(method)
    if steps < 2:
        raise EditError(f"--steps must be at least 2, got {steps}")
    device = method.device
    codes = []
    for x in (a, b):
        codes.append(method.encode_class_codes(
            x.image.to(device), x.label.to(device),
            instance=None if x.instance is None else x.instance.to(device),
            edge=None if x.edge is None else x.edge.to(device)))
    start, end = codes
    absent = [c for c in range(start.shape[1]) if c not in set(_present(b))]
    end = end.clone()
    end[:, absent] = start[:, absent]
    frames = []
    for i in range(steps):
        t = i / (steps - 1)
        frames.append(_render(method, a, (1 - t) * start + t * end))
    images = [(f"t={i / (steps - 1):.2f}", f) for i, f in enumerate(frames)]
    return Edit("morph", images, {"from": a.key[0], "to": b.key[0], "steps": steps},
                label_maps=[(a.key[0], a.label[0])], frames=frames)


def _uint8(image: torch.Tensor) -> torch.Tensor:
    return ((image.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()


# --- writing -------------------------------------------------------------------------------------
def edit_id(edit: Edit) -> str:
    """A readable, deterministic folder name: operation, first key, hash of the parameters."""
    first = str(edit.params.get("key", edit.params.get("from", "")))
    stem = "-".join(key_path(first).parts) if first else "edit"
    digest = hashlib.sha256(json.dumps(edit.params, sort_keys=True).encode()).hexdigest()[:8]
    return f"{edit.operation}-{stem}-{digest}"


def grid(edit: Edit, num_classes: int, gap: int = 4) -> torch.Tensor:
    """One row: the colourised label map(s), then every image, left to right."""
    tiles = [colorize(lbl[None], num_classes)[0] for _, lbl in edit.label_maps]
    tiles += [img for _, img in edit.images]
    h = max(t.shape[1] for t in tiles)
    w = sum(t.shape[2] for t in tiles) + gap * (len(tiles) - 1)
    canvas = torch.full((3, h, w), 255, dtype=torch.uint8)
    x = 0
    for t in tiles:
        canvas[:, :t.shape[1], x:x + t.shape[2]] = t
        x += t.shape[2] + gap
    return canvas


def write_edit(edit: Edit, run_dir: Path, *, num_classes: int, class_names: Sequence[str],
               origin: dict) -> Path:
    """PNGs, grid.png (+ morph.gif) and manifest.json under ``<run>/edits/<id>/``."""
    out = Path(run_dir) / "edits" / edit_id(edit)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i, (caption, img) in enumerate(edit.images):
        name = f"{i:02d}.png"
        save_png(out / name, img)
        files.append({"file": name, "caption": caption})
    write_png(out / "grid.png", grid(edit, num_classes))
    extra = {}
    if edit.frames:
        extra["gif"] = "morph.gif"
        _write_gif(out / "morph.gif", edit.frames)
    params = dict(edit.params)
    for k in ("class",):
        if k in params:
            params["class_name"] = class_names[params[k]]
    atomic_write_json(out / "manifest.json", {
        "operation": edit.operation, "params": params, "images": files, "grid": "grid.png",
        **extra, **origin})
    return out


def _write_gif(path: Path, frames: Sequence[torch.Tensor]) -> None:
    from PIL import Image

    pils = [Image.fromarray(f.permute(1, 2, 0).numpy()) for f in frames]
    # There and back again, so the loop has no jump.
    seq = pils + pils[-2:0:-1]
    atomic_write(path, lambda f: seq[0].save(f, format="GIF", save_all=True,
                                             append_images=seq[1:], duration=120, loop=0))
