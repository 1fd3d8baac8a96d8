"""Generation of an evaluation set: lossless PNGs plus a manifest, deterministic per image.

Every image gets its own ``torch.Generator`` seeded from ``(seed, key)`` through sha256, so an
image does not depend on the batch it was generated in, on the number of processes, or on which
images were generated before (a resumed generation only writes what is missing and still yields
exactly the same set).

Layout under ``out_dir`` (``<run>/samples/<protocol id>/<inference>/``)::

    seed<k>/<key>.png          one image per evaluation key and seed
    diversity/<key>/<j>.png    samples_per_map extra samples of the first `maps` keys
                               (multimodal methods, protocols with LPIPS diversity)
    classwise/<key>/c<c>_<k>.png  mCSD / mOCD samples: k-th image in which only class c's code
                               was re-drawn (methods with per-class codes; see below)
    manifest.json              written last: its presence means the set is complete
    .generation.json           what the files were generated from (method, checkpoint, protocol);
                               files from another origin are deleted before generating
"""
from __future__ import annotations

import hashlib
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np
import torch

from harness.core import dist as hdist
from harness.core.data.base import DatasetError, collate
from harness.core.io import atomic_write, atomic_write_json, read_json

if TYPE_CHECKING:
    from evaluators.protocol import Protocol
    from harness.core.data.base import SemanticDataset
    from methods.base import Method

MANIFEST = "manifest.json"
ORIGIN = ".generation.json"
DIVERSITY_OFFSET = "diversity"
CLASSWISE = "classwise"  # folder and seed name of the mCSD / mOCD samples


class GenerationError(ValueError):
    """The method cannot produce what the protocol asks for (e.g. encoded inference)."""


def image_seed(seed: int | str, key: str, sample: int | None = None) -> int:
    """A stable 63-bit seed for one image (Python's hash() is salted per process)."""
    text = f"{seed}\x1f{key}" if sample is None else f"{seed}\x1f{key}\x1f{sample}"
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") & (2**63 - 1)


def image_generator(seed: int | str, key: str, sample: int | None = None) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(image_seed(seed, key, sample))
    return g


def key_path(key: str) -> Path:
    """The relative file stem of a key; keys may contain '/' (sub-folders) but never '..'."""
    parts = Path(key).parts
    if not parts or any(p in ("..", ".", "") for p in parts) or Path(key).is_absolute():
        raise DatasetError(f"sample key {key!r} cannot be used as a file name")
    return Path(key)


def seed_dir(seed: int) -> str:
    return f"seed{seed}"


def save_png(path: Path, image: torch.Tensor) -> None:
    """uint8 [3,H,W] -> lossless PNG, written atomically."""
    from PIL import Image

    arr = image.detach().cpu().permute(1, 2, 0).contiguous().numpy()
    if arr.dtype != np.uint8:
        raise GenerationError(f"generated images must be uint8, got {arr.dtype}")
    pil = Image.fromarray(arr, mode="RGB")
    atomic_write(path, lambda f: pil.save(f, format="PNG", compress_level=4))


# ----------------------------------------------------------------------------------------------
def _diversity_plan(protocol: "Protocol") -> tuple[int, int]:
    """(samples_per_map, maps) of the protocol's LPIPS diversity (maps -1 = all), or (0, 0)."""
    div = protocol.diversity
    if not div.enabled or div.samples_per_map < 2:
        return 0, 0
    return div.samples_per_map, -1 if div.maps is None else div.maps


def evaluation_keys(dataset: Any, num_images: int | None) -> list[str]:
    keys = [r.key for r in dataset.records()]
    if len(set(keys)) != len(keys):
        raise DatasetError(f"dataset {dataset.name} split {dataset.split} has duplicate keys")
    if num_images is not None:
        if num_images > len(keys):
            raise DatasetError(
                f"the protocol asks for {num_images} images but split "
                f"'{dataset.split}' of dataset {dataset.name} "
                f"has only {len(keys)}")
        keys = keys[:num_images]
    return keys


@dataclass
class _Job:
    index: int
    key: str
    outputs: list[tuple[Path, int | str, int | None]]  # (file, seed, sample index)


def _origin_matches(out_dir: Path, origin: dict) -> bool:
    p = out_dir / ORIGIN
    if not p.is_file():
        return False
    try:
        return read_json(p) == origin
    except ValueError:
        return False


def generate_samples(method: "Method", dataset: "SemanticDataset", protocol: "Protocol", out_dir: str | Path, *,
                     inference: str = "random", seeds: Sequence[int] | None = None,
                     batch_size: int = 8, dist: hdist.DistInfo | None = None,
                     origin: Mapping[str, Any] | None = None, progress: bool = True,
                     extra: Mapping[str, Any] | None = None,
                     donors: Sequence[tuple[Path, Mapping[str, Any]]] = ()) -> dict:
    """Generate the evaluation set of ``protocol`` with ``method``; returns the manifest.

    ``dataset`` is the evaluation split (built with ``train=False``). ``seeds`` defaults to the
    protocol's; a method that is not multimodal gives the same image for every seed, so only the
    first seed is generated for it (recorded as ``"unimodal": true``). ``origin`` identifies what
    produced the images (run id, checkpoint); files generated from another origin are removed.
    Every rank generates its shard of keys; rank 0 writes the manifest. ``donors``: complete
    sample sets known to hold identical images (:mod:`harness.sample_reuse`); files they list
    are linked instead of generated.
    """
    out_dir = Path(out_dir)
    d = dist or hdist.info()
    if inference not in ("random", "encoded"):
        raise GenerationError(f"unknown inference mode {inference!r}; use 'random' or 'encoded'")
    if inference == "encoded" and not method.supports_style_encoding:
        raise GenerationError(
            f"method {method.name!r} cannot encode a style from an image, so "
            "--inference encoded is not available for it; use --inference random")
    multimodal = bool(method.multimodal)
    seeds = list(seeds if seeds is not None else protocol.seeds)
    if not seeds:
        raise GenerationError("no seeds to generate")
    gen_seeds = seeds if multimodal else seeds[:1]
    div_k, div_maps = _diversity_plan(protocol) if multimodal else (0, 0)

    keys = evaluation_keys(dataset, protocol.num_images)
    index_of = {r.key: i for i, r in enumerate(dataset.records())}
    div_keys = (keys if div_maps < 0 else keys[:div_maps]) if div_k else []
    pid = protocol.id
    origin_doc = {"method": method.name, "protocol": pid,
                  "inference": inference, **dict(origin or {})}

    files: dict[str, dict[str, str]] = {str(s): {} for s in gen_seeds}
    diversity: dict[str, list[str]] = {}
    jobs: list[_Job] = []
    for key in keys:
        stem = key_path(key)
        outputs = []
        for s in gen_seeds:
            rel = Path(seed_dir(s)) / stem.with_name(stem.name + ".png")
            files[str(s)][key] = rel.as_posix()
            outputs.append((rel, s, None))
        if key in div_keys:
            rels = []
            for j in range(div_k):
                rel = Path(DIVERSITY_OFFSET) / stem / f"{j}.png"
                rels.append(rel.as_posix())
                outputs.append((rel, DIVERSITY_OFFSET, j))
            diversity[key] = rels
        jobs.append(_Job(index_of[key], key, outputs))

    # Files from another checkpoint / method must not be mixed with new ones.
    reused: dict[str, int] = {}
    if d.is_main:
        if out_dir.exists() and not _origin_matches(out_dir, origin_doc):
            shutil.rmtree(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out_dir / ORIGIN, origin_doc)
        if donors:
            from harness.sample_reuse import reuse
            reused = reuse(donors, [(j.key, s, rel.as_posix()) for j in jobs
                                    for rel, s, _ in j.outputs], out_dir)
    hdist.barrier()

    mine = hdist.shard(jobs, d)
    todo = [j for j in mine if any(not (out_dir / rel).is_file() for rel, _, _ in j.outputs)]
    start = time.perf_counter()
    written = _run_jobs(method, dataset, todo, out_dir, inference=inference,
                        batch_size=batch_size, progress=progress and d.is_main)
    classwise: dict[str, dict[int, list[str]]] = {}
    if classwise_enabled(method, protocol):
        classwise = classwise_plan_files(dataset, keys, index_of, protocol)
        written += generate_classwise(method, dataset, classwise, index_of, out_dir, dist=d,
                                      progress=progress and d.is_main)
    counts = hdist.all_gather_object(written)
    hdist.barrier()

    manifest = {
        "schema": 1,
        "method": origin_doc["method"],
        "protocol": pid,
        "protocol_hash": protocol.hash(),
        "dataset": dataset.name,
        "split": dataset.split,
        "inference": inference,
        "multimodal": multimodal,
        "unimodal": not multimodal,
        "seeds": gen_seeds,
        "protocol_seeds": seeds,
        "num_images": len(keys),
        "keys": keys,
        "files": files,
        "diversity": diversity,
        "diversity_samples_per_map": div_k,
        "classwise": {k: {str(c): fs for c, fs in v.items()} for k, v in classwise.items()},
        "origin": origin_doc,
        "generated_now": int(sum(counts)),
        "reused_from": reused,
        "seconds": round(time.perf_counter() - start, 3),
        **dict(extra or {}),
    }
    if d.is_main:
        missing = [rel for s in files.values() for rel in s.values() if not (out_dir / rel).is_file()]
        missing += [rel for rels in diversity.values() for rel in rels if not (out_dir / rel).is_file()]
        missing += [rel for v in classwise.values() for rels in v.values() for rel in rels
                    if not (out_dir / rel).is_file()]
        if missing:
            raise GenerationError(f"{len(missing)} generated files are missing in {out_dir} "
                                  f"after generation, e.g. {missing[0]}")
        atomic_write_json(out_dir / MANIFEST, manifest)
    hdist.barrier()
    return manifest


def _run_jobs(method: Any, dataset: Any, jobs: list[_Job], out_dir: Path, *, inference: str,
              batch_size: int, progress: bool) -> int:
    if not jobs:
        return 0
    from tqdm import tqdm

    method.eval()
    device = method.device
    written = 0
    bar = tqdm(total=sum(len(j.outputs) for j in jobs), desc="generate", unit="img",
               file=sys.stderr, disable=not progress, leave=False)
    try:
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start:start + batch_size]
            batch = collate([dataset[j.index] for j in chunk])
            for j, k in zip(chunk, batch.key):
                if j.key != k:
                    raise DatasetError(f"dataset item {j.index} has key {k!r}, its record says "
                                       f"{j.key!r}")
            batch = batch.to(device)
            # Group the outputs by (seed, sample) so images sharing a seed go in one call.
            groups: dict[tuple[Any, Any], list[tuple[int, Path]]] = {}
            for row, j in enumerate(chunk):
                for rel, seed, sample in j.outputs:
                    if not (out_dir / rel).is_file():
                        groups.setdefault((seed, sample), []).append((row, rel))
            for (seed, sample), items in groups.items():
                rows = [r for r, _ in items]
                images = _generate(method, batch, rows, seed, sample, inference)
                for (row, rel), img in zip(items, images):
                    save_png(out_dir / rel, img)
                    written += 1
                    bar.update(1)
    finally:
        bar.close()
    return written


@torch.no_grad()
def _generate(method: Any, batch: Any, rows: list[int], seed: Any, sample: int | None,
              inference: str) -> torch.Tensor:
    idx = torch.tensor(rows, device=batch.label.device)
    label = batch.label.index_select(0, idx)
    instance = None if batch.instance is None else batch.instance.index_select(0, idx)
    edge = None if batch.edge is None else batch.edge.index_select(0, idx)
    gens = [image_generator(seed, batch.key[r], sample) for r in rows]
    kwargs: dict[str, Any] = {"instance": instance, "edge": edge, "generator": gens}
    if inference == "encoded":
        kwargs["style_image"] = batch.image.index_select(0, idx)
    images = method.generate(label, **kwargs)
    n, h, w = label.shape
    if images.dtype != torch.uint8 or tuple(images.shape) != (n, 3, h, w):
        raise GenerationError(
            f"method {getattr(method, 'name', '?')!r} returned {tuple(images.shape)} "
            f"{images.dtype}; expected uint8 [{n}, 3, {h}, {w}] (the label map's size)")
    return images.cpu()


# --- mCSD / mOCD samples (methods with per-class codes, e.g. GroupDNet) ----------------------
def classwise_enabled(method: Any, protocol: Any) -> bool:
    return bool(protocol.classwise.enabled and getattr(method, "supports_classwise_codes", False))


def classwise_plan_files(dataset: Any, keys: Sequence[str], index_of: dict[str, int], protocol: Any
         ) -> dict[str, dict[int, list[str]]]:
    """key -> class -> the K relative file names, for the first ``maps`` keys."""
    from evaluators.classwise import classwise_plan

    cw = protocol.classwise
    out: dict[str, dict[int, list[str]]] = {}
    for key in keys[:cw.maps]:
        label = dataset[index_of[key]]["label"]
        stem = key_path(key)
        out[key] = {c: [(Path(CLASSWISE) / stem / f"c{c}_{k}.png").as_posix()
                        for k in range(cw.samples_per_class)]
                    for c in classwise_plan(torch.as_tensor(label), cw.min_pixels)}
    return out


@torch.no_grad()
def generate_classwise(method: Any, dataset: Any, files: dict[str, dict[int, list[str]]],
                       index_of: dict[str, int], out_dir: Path, *, dist: Any = None,
                       progress: bool = True) -> int:
    """Write this rank's share of the missing files of ``files``; returns how many."""
    from tqdm import tqdm

    d = dist or hdist.info()
    mine = hdist.shard(sorted(files), d)
    todo = [k for k in mine if any(not (out_dir / f).is_file()
                                   for fs in files[k].values() for f in fs)]
    total = sum(len(fs) for k in todo for fs in files[k].values())
    bar = tqdm(total=total, desc="generate mCSD/mOCD samples", unit="img", file=sys.stderr,
               disable=not progress or not total, leave=False)
    device = method.device
    method.eval()
    written = 0
    try:
        for key in todo:
            batch = collate([dataset[index_of[key]]]).to(device)
            base = method.sample_class_codes(batch.label, [image_generator(CLASSWISE, key)])
            for cid, rels in files[key].items():
                for k, rel in enumerate(rels):
                    if (out_dir / rel).is_file():
                        continue
                    gen = [image_generator(CLASSWISE, key, 1000 * (cid + 1) + k)]
                    codes = method.sample_class_codes(batch.label, gen, base=base, classes=[cid])
                    image = method.generate_from_codes(batch.label, codes,
                                                       instance=batch.instance, edge=batch.edge)
                    save_png(out_dir / rel, image[0].cpu())
                    written += 1
                    bar.update(1)
    finally:
        bar.close()
    return written


def load_manifest(out_dir: str | Path) -> dict | None:
    p = Path(out_dir) / MANIFEST
    return read_json(p, expect=dict) if p.is_file() else None


def manifest_images(manifest: Mapping[str, Any], out_dir: str | Path, seed: int | str) -> dict[str, Path]:
    """key -> absolute PNG path of one seed of a manifest."""
    out_dir = Path(out_dir)
    return {k: out_dir / rel for k, rel in manifest["files"][str(seed)].items()}


def manifest_diversity(manifest: Mapping[str, Any], out_dir: str | Path) -> dict[str, list[Path]]:
    out_dir = Path(out_dir)
    return {k: [out_dir / r for r in rels] for k, rels in (manifest.get("diversity") or {}).items()}


def manifest_classwise(manifest: Mapping[str, Any], out_dir: str | Path
                       ) -> dict[str, dict[int, list[Path]]]:
    """key -> class -> the mCSD / mOCD sample files ({} when the manifest has none)."""
    out_dir = Path(out_dir)
    return {k: {int(c): [out_dir / r for r in rels] for c, rels in per.items()}
            for k, per in (manifest.get("classwise") or {}).items()}


def manifest_complete(manifest: Mapping[str, Any] | None, out_dir: str | Path,
                      origin: Mapping[str, Any] | None = None) -> bool:
    """The manifest exists, comes from ``origin`` (when given) and lists only existing files."""
    if not manifest:
        return False
    out_dir = Path(out_dir)
    if origin is not None:
        recorded = manifest.get("origin") or {}
        if any(recorded.get(k) != v for k, v in origin.items()):
            return False
    rels: Iterable[str] = [r for s in manifest["files"].values() for r in s.values()]
    rels = list(rels) + [r for rs in (manifest.get("diversity") or {}).values() for r in rs]
    rels += [r for per in (manifest.get("classwise") or {}).values() for rs in per.values()
             for r in rs]
    return all((out_dir / r).is_file() for r in rels)
