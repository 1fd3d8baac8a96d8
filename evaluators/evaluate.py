"""Score one generated set under one protocol: FID/KID, mIoU/accuracy (+ real upper bound),
LPIPS diversity -> one evaluation record (see :mod:`harness.core.records`).

Used by ``python -m harness run`` (per seed, then :func:`combine_seeds`) and by the CLI to score a
bare folder of images written by an official repository (:func:`pair_images` pairs them by file
name). With a ``DistInfo`` of world_size > 1 every rank extracts features / segments / measures
1/N of the images; the pieces are gathered and rank 0 computes the final numbers, which every
rank returns (only rank 0 should write them).
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from evaluators import bootstrap as boot
from evaluators import image_pass
from evaluators import reference_cache as cache
from evaluators.diversity import backbone_spec, build_lpips, lpips_diversity, pairwise_mean
from evaluators.feature_spaces import FEATURE_METRICS, feature_stage
from evaluators.fid import (bootstrap_fid, build_extractor, extract_features, fid_value,
                            kid_value, read_uint8)
from evaluators.pairing import (PairingError, check_mapping, check_sizes, lossy_files,
                                pair_images)
from evaluators.protocol import Protocol, load_protocol
from evaluators.pytorch_fid_flavour import inception_spec
from evaluators.unverified import mark_unverified
from harness.core.records import (METRICS, SCHEMA, combine_seeds, finite_or_skipped,  # noqa: F401
                                  not_applicable, ok, single_seed_fields, skipped, with_per_image,
                                  write_record)
from evaluators.segmentation import ground_truth, per_image_confusions, segmenter_input
from evaluators.segmentation_scores import scores
from evaluators.sharding import broadcast, gather_values, shard_indices
from harness.core.weights import WeightsUnavailable, resolve
from harness.core.dist import DistInfo

METRIC_NAMES = ("fid", "kid", "miou", "accuracy", "real_miou", "real_accuracy",
                "lpips_diversity", "mcsd", "mocd")
# --skip accepts the metric names and these groups.
SKIP_GROUPS = {"segmentation": ("miou", "accuracy", "real_miou", "real_accuracy"),
               "real": ("real_miou", "real_accuracy"), "diversity": ("lpips_diversity",),
               "lpips": ("lpips_diversity",), "classwise": ("mcsd", "mocd")}


class EvaluationError(ValueError):
    """The inputs do not fit the protocol (dataset, split, label space, sizes, samples)."""


# --- what is evaluated --------------------------------------------------------------------------
def select_records(dataset, protocol: Protocol) -> list:
    """The records scored under ``protocol``: the split's first ``num_images`` (sorted by key)."""
    records = list(dataset.records())
    n = protocol.num_images
    if n is None:
        return records
    if len(records) < n:
        raise EvaluationError(f"protocol {protocol.name} scores {n} images but "
                              f"{dataset.name}/{dataset.split} has only {len(records)}")
    return records[:n]


def diversity_keys(dataset, protocol: Protocol) -> list[str]:
    """The label maps that need ``protocol.diversity.samples_per_map`` samples each."""
    keys = [r.key for r in select_records(dataset, protocol)]
    maps = protocol.diversity.maps
    return keys if maps is None else keys[:maps]


def check_dataset(dataset, protocol: Protocol) -> None:
    name = getattr(dataset, "name", None)
    if name != protocol.dataset:
        raise EvaluationError(f"protocol {protocol.name} is for dataset {protocol.dataset!r}, "
                              f"but the images are paired with dataset {name!r}")
    if dataset.split != protocol.split:
        raise EvaluationError(f"protocol {protocol.name} scores split {protocol.split!r}, but "
                              f"the dataset object is split {dataset.split!r}")
    seg = protocol.segmentation
    if seg.segmenter is not None:
        space = dataset.label_space
        if space.name != seg.label_space:
            raise EvaluationError(f"protocol {protocol.name} scores in label space "
                                  f"{seg.label_space!r}, but {name} provides {space.name!r}")
        if space.ignore_index != seg.ignore_index:
            raise EvaluationError(f"protocol {protocol.name} ignores id {seg.ignore_index}, but "
                                  f"label space {space.name} uses {space.ignore_index}")


def normalise_skip(skip: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for name in skip:
        if name in METRIC_NAMES or name in FEATURE_METRICS:
            out.add(name)
        elif name in SKIP_GROUPS:
            out.update(SKIP_GROUPS[name])
        else:
            valid = ", ".join([*METRIC_NAMES, *SKIP_GROUPS])
            raise EvaluationError(f"unknown metric {name!r} to skip; valid: {valid}")
    return out


# --- the evaluation ----------------------------------------------------------------------------
class _Run:
    """State shared by the metric groups of one evaluation."""

    def __init__(self, dataset, protocol, records, paths, *, device, batch_size, skips, dist,
                 weights, progress):
        self.dataset = dataset
        self.protocol = protocol
        self.records = records
        self.keys = [r.key for r in records]
        self.paths = [paths[k] for k in self.keys]
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.skips = skips
        self.dist = dist if dist is not None else DistInfo()
        self.weights = dict(weights or {})
        self.progress = progress and self.dist.is_main
        self.weights_used: dict[str, dict] = {}
        # Per-image data the intervals were computed from (rank 0), stored beside metrics.json
        # by harness.core.records.write_record so intervals and paired comparisons can be redone.
        self.per_image: dict[str, Any] = {}
        self.stats = boot.settings(protocol)
        self._ref_dir: Path | None = None
        self._content: str | None = None

    @property
    def content_fingerprint(self) -> str:
        """sha256 over the evaluated split's files (rank 0 reads them; every rank gets it)."""
        if self._content is None:
            digest = cache.data_fingerprint(self.dataset) if self.is_main else None
            self._content = broadcast(digest, self.dist)
        return self._content

    @property
    def is_main(self) -> bool:
        return self.dist.is_main

    @property
    def ref_dir(self) -> Path:
        if self._ref_dir is None:
            self._ref_dir = cache.reference_dir(self.protocol, self.dataset,
                                                self.content_fingerprint)
        return self._ref_dir

    def real_image(self, i: int) -> torch.Tensor:
        return self.dataset.image_resized(self.records[i], self.protocol.resolution_hw,
                                          filter=self.protocol.fid.resize_filter)

    def generated_image(self, i: int) -> torch.Tensor:
        return read_uint8(self.paths[i])

    def cached(self, path: Path) -> dict | None:
        """The cache entry (on rank 0) and whether it exists (on every rank)."""
        entry = cache.load(path, self.keys) if self.is_main else None
        hit = broadcast(entry is not None, self.dist)
        if not hit:
            return None
        return entry if self.is_main else {}


class _Stage:
    """One metric group's part in the shared image pass (evaluators/image_pass.py):
    ``consumers`` read the decoded images, then ``result()`` gives the group's metrics."""

    def __init__(self, consumers=(), result: Callable[[], dict] | None = None,
                 done: dict | None = None) -> None:
        self.consumers = [c for c in consumers if c is not None]
        self._result = result if result is not None else (lambda: dict(done or {}))

    def result(self) -> dict:
        return self._result()


def _fid_kid(run: _Run) -> _Stage:
    fs = run.protocol.fid
    out: dict[str, dict] = {}
    if not fs.enabled:
        return _Stage(done={"fid": not_applicable("the protocol disables FID/KID"),
                            "kid": not_applicable("the protocol disables FID/KID")})
    want = {"fid": "fid" not in run.skips, "kid": fs.kid and "kid" not in run.skips}
    for name in ("fid", "kid"):
        if name == "kid" and not fs.kid:
            out[name] = not_applicable("the protocol disables KID")
        elif not want[name]:
            out[name] = skipped("skipped on request")
    if not any(want.values()):
        return _Stage(done=out)
    spec = inception_spec(fs.flavour)   # torch-fidelity's or pytorch-fid's Inception file
    try:
        resolved = resolve(spec, run.weights.get(spec.key))
    except WeightsUnavailable as exc:
        return _Stage(done={**out, **{n: skipped(str(exc)) for n, w in want.items() if w}})
    run.weights_used[resolved.spec.key] = resolved.record()
    extractor = build_extractor(resolved.path, run.device, flavour=fs.flavour)

    def inception(images: Dataset) -> torch.Tensor:
        return extract_features(images, extractor, batch_size=run.batch_size,
                                device=run.device, progress=False)
    gen_rows = image_pass.FeatureRows("Inception (generated)", image_pass.GENERATED, inception)
    path = run.ref_dir / f"fid-real-{cache.weights_tag([resolved.sha256])}.pt"
    entry = run.cached(path)
    real_rows = None
    if entry is None:
        real_rows = image_pass.FeatureRows("Inception (real, cached afterwards)",
                                           image_pass.REAL, inception)
    return _Stage([gen_rows, real_rows],
                  lambda: _fid_kid_result(run, out, want, resolved, gen_rows, real_rows, entry,
                                          path))


def _fid_kid_result(run: _Run, out, want, resolved, gen_rows, real_rows, entry, path) -> dict:
    fs = run.protocol.fid
    gen = gen_rows.gathered(run)
    if entry is not None:
        real = entry.get("features")
    else:
        real = real_rows.gathered(run)
        if run.is_main:
            cache.save(path, run.keys, features=real, weights_sha256=resolved.sha256)
    if not run.is_main:
        return out
    n = gen.shape[0]
    if n < 2:
        reason = f"FID/KID need at least 2 images, the protocol selects {n}"
        return {**out, **{name: skipped(reason) for name, w in want.items() if w}}
    run.per_image.update(gen_features=gen.numpy().astype("float32"),
                         real_features=real.numpy().astype("float32"))
    if want["fid"]:
        value = fid_value(gen, real, flavour=fs.flavour)
        extra = {"flavour": fs.flavour, "ci95": None, "confidence": fs.confidence, "n": n, "n_real": int(real.shape[0])}
        if fs.bootstrap_resamples > 0:
            b = bootstrap_fid(gen, real, resamples=fs.bootstrap_resamples,
                              confidence=fs.confidence, seed=fs.bootstrap_seed, point=value)
            extra.update(ci95=b["ci"], bootstrap_bias=b["bias"],
                         bootstrap_resamples=b["resamples"], ci=b["ci"],
                         ci_level=fs.confidence, ci_method=boot.METHOD_FEATURES,
                         ci_resamples=b["resamples"], ci_degenerate=False)
        out["fid"] = ok(value, **extra)
    if want["kid"]:
        kid = kid_value(gen, real, subsets=fs.kid_subsets, subset_size=fs.kid_subset_size)
        extra = {}
        if run.stats.resamples > 0:
            idx = boot.resample_indices(n, run.stats.resamples, run.stats.seed)
            extra = boot.interval_fields(boot.kid_replicates(gen, real, idx), kid["value"],
                                         run.stats, n=n, method=boot.METHOD_FEATURES,
                                         shift_bias=True)
        out["kid"] = ok(kid["value"], std=kid["std"], subset_size=kid["subset_size"],
                        subsets=fs.kid_subsets, note=kid["note"], **extra)
    return out


# A registry entry with this label space is trained by the harness on the evaluated dataset.
DATASET_LABEL_SPACE = "dataset"


def _build_options(entry, run: _Run) -> dict:
    """The entry's options, plus what harness-trained segmenters need to find their data: they
    learn from the evaluated dataset's train split (same dataset options), trained once and then
    read from the cache."""
    kwargs = dict(entry.options)
    params = inspect.signature(entry.build).parameters
    if entry.label_space == DATASET_LABEL_SPACE and "dataset" in params:
        kwargs.setdefault("dataset", run.dataset.name)
    if "dataset_options" in params:
        kwargs.setdefault("dataset_options", run.dataset.options)
    if "progress" in params:
        kwargs.setdefault("progress", run.progress)
    return kwargs


class _Confusions(image_pass.Consumer):
    """Per-image sparse confusion matrices of the segmenter on one image set (GENERATED or
    REAL) against the ground truth, this rank's share; batches as one loop over the set would
    (image_pass.StreamBatches), so the predictions equal a single ``per_image_confusions``."""

    def __init__(self, name: str, source: str, model, run: _Run, space) -> None:
        self.name, self.source = name, source
        self.needs = frozenset({source, image_pass.LABELS})
        self.model, self.run, self.space = model, run, space
        self.batches = image_pass.StreamBatches(run.batch_size)
        self.indices: list[int] = []
        self.values: list = []

    def _predict(self, items: list) -> None:
        if items:
            self.values.extend(per_image_confusions(
                self.model, items, num_classes=self.space.num_classes,
                ignore_index=self.space.ignore_index, batch_size=self.run.batch_size))

    def feed(self, chunk: "image_pass.Chunk") -> None:
        images = getattr(chunk, self.source)
        self.indices.extend(chunk.indices)
        self._predict(self.batches.push(
            (segmenter_input(image, tuple(gt.shape), self.run.protocol), gt)
            for image, gt in zip(images, chunk.labels)))

    def finish(self) -> None:
        self._predict(self.batches.flush())

    def gathered(self) -> boot.SparseConfusions:
        every = gather_values(self.indices, self.values, len(self.run.keys), self.run.dist)
        return boot.sparse_from_cells(every, self.space.num_classes)


def _segmentation(run: _Run) -> _Stage:
    seg = run.protocol.segmentation
    gen_names, real_names = ("miou", "accuracy"), ("real_miou", "real_accuracy")
    if seg.segmenter is None:
        return _Stage(done={n: not_applicable("the protocol has no segmenter")
                            for n in (*gen_names, *real_names)})
    out: dict[str, dict] = {}
    want_gen = not set(gen_names) <= run.skips
    want_real = seg.real_images and not set(real_names) <= run.skips
    for n in (*gen_names, *real_names):
        if n in real_names and not seg.real_images:
            out[n] = not_applicable("the protocol does not score the real images")
        elif n in run.skips:
            out[n] = skipped("skipped on request")
    if not (want_gen or want_real):
        return _Stage(done=out)

    from evaluators.segmenters import SEGMENTERS
    entry = SEGMENTERS.get(seg.segmenter)
    space = run.dataset.label_space
    trained_here = entry.label_space == DATASET_LABEL_SPACE
    if not trained_here and entry.label_space != seg.label_space:
        raise EvaluationError(f"segmenter {entry.name} predicts label space "
                              f"{entry.label_space!r}, the protocol scores {seg.label_space!r}")
    wanted = [*(gen_names if want_gen else ()), *(real_names if want_real else ())]
    try:
        model = entry.build(weights=run.weights.get(entry.name), device=run.device,
                            **_build_options(entry, run))
    except WeightsUnavailable as exc:
        return _Stage(done={**out, **{n: skipped(str(exc)) for n in wanted if n not in out}})
    if getattr(model, "label_space", space.name) != space.name:
        raise EvaluationError(f"segmenter {entry.name} predicts label space "
                              f"{model.label_space!r}, the dataset scores {space.name!r}")
    for w in getattr(model, "resolved_weights", []):
        run.weights_used[w.spec.key] = w.record()

    def confusion(source: str, desc: str) -> "_Confusions":
        """Per-image confusion matrices (sparse) of one image set, fed by the shared pass."""
        return _Confusions(f"{entry.name} ({desc})", source, model, run, space)

    def scored(conf: boot.SparseConfusions, prefix: str) -> dict:
        s = scores(conf.total(), seg.absent_classes, space.class_names,
                   seg.accuracy_ignored_pixels)
        run.per_image.update(conf.arrays(f"{prefix}_confusion"))
        s["ci"] = {}
        if run.stats.resamples > 0:
            idx = boot.resample_indices(conf.n_images, run.stats.resamples, run.stats.seed)
            reps = boot.confusion_replicates(conf, idx, seg.absent_classes,
                                             seg.accuracy_ignored_pixels)
            s["ci"] = {name: boot.interval_fields(reps[name], s[name], run.stats,
                                                  n=conf.n_images, method=boot.METHOD_IMAGES)
                       for name in ("miou", "accuracy")}
        return s

    gen_conf = confusion(image_pass.GENERATED, "generated") if want_gen else None
    real_conf, real_hit, real_path = None, None, None
    if want_real:
        shas = [w.sha256 for w in getattr(model, "resolved_weights", [])]
        tag = cache.weights_tag(shas) if shas else cache.module_tag(model)
        # "-per-image": the entry holds the per-image matrices (older, summed-only entries are
        # not read: recomputed once)
        real_path = run.ref_dir / f"seg-real-{entry.name}-{tag}-per-image.pt"
        real_hit = run.cached(real_path)
        if real_hit is None:
            real_conf = confusion(image_pass.REAL, "real, cached afterwards")

    def result() -> dict:
        results: dict[str, dict] = {}
        if want_gen:
            conf = gen_conf.gathered()
            if run.is_main:
                results["gen"] = scored(conf, "gen")
        if want_real:
            if real_hit is not None:
                conf = boot.SparseConfusions.from_arrays(
                    {k: v.numpy() for k, v in real_hit["per_image"].items()}, "c") \
                    if run.is_main else None
            else:
                conf = real_conf.gathered()
                if run.is_main:
                    cache.save(real_path, run.keys, confusion=conf.total(), per_image={
                        k: torch.from_numpy(v) for k, v in conf.arrays("c").items()})
            if run.is_main:
                results["real"] = scored(conf, "real")
        return _segmentation_result(run, out, results, gen_names, real_names)
    return _Stage([gen_conf, real_conf], result)


def _segmentation_result(run: _Run, out: dict, results: dict, gen_names, real_names) -> dict:
    seg = run.protocol.segmentation
    for prefix, names in (("gen", gen_names), ("real", real_names)):
        if prefix not in results:
            continue
        s = results[prefix]
        if names[0] not in out:
            out[names[0]] = ok(s["miou"], per_class=s["per_class"], policy=seg.absent_classes,
                               pixel_share=s["pixel_share"], **s["ci"].get("miou", {}))
        if names[1] not in out:
            out[names[1]] = ok(s["accuracy"], ignored_pixels=seg.accuracy_ignored_pixels,
                               excluding_ignored=s["accuracy_excluding_ignored"],
                               including_ignored=s["accuracy_including_ignored"],
                               ignored_fraction=s["ignored_fraction"],
                               **s["ci"].get("accuracy", {}))
    return out


def _diversity(run: _Run, samples: Mapping[str, Sequence[str | Path]] | None,
               multimodal: bool | None) -> dict:
    ds = run.protocol.diversity
    if not ds.enabled:
        return not_applicable("the protocol disables LPIPS diversity")
    if "lpips_diversity" in run.skips:
        return skipped("skipped on request")
    if multimodal is False:
        return not_applicable("the method is not multimodal: it produces one image per label map")
    if samples is None:
        if multimodal:
            return skipped("no diversity samples were given")
        return not_applicable("no diversity samples were given (the method's multimodality is "
                              "unknown)")
    keys = diversity_keys(run.dataset, run.protocol)
    k = ds.samples_per_map
    short = [f"{key} ({len(samples.get(key, ()))})" for key in keys
             if len(samples.get(key, ())) < k]
    if short:
        shown = ", ".join(short[:10]) + (f", ... and {len(short) - 10} more" if len(short) > 10
                                         else "")
        raise EvaluationError(f"LPIPS diversity needs {k} samples for each of {len(keys)} label "
                              f"maps; too few for {len(short)}: {shown}")
    files = {key: [Path(p) for p in samples[key][:k]] for key in keys}
    check_sizes({f"{key}/{p.name}": p for key in keys for p in files[key]},
                run.protocol.resolution_hw)
    try:
        model, resolved = build_lpips(ds.net, ds.version, device=run.device,
                                      weights_path=run.weights.get(backbone_spec(ds.net).key))
    except WeightsUnavailable as exc:
        return skipped(str(exc))
    run.weights_used[resolved.spec.key] = resolved.record()
    idx = shard_indices(len(keys), run.dist)
    values = []
    for i in tqdm(idx, desc="[eval] LPIPS diversity", unit="map", disable=not run.progress,
                  leave=False):
        images = torch.stack([read_uint8(p) for p in files[keys[i]]])
        values.append(pairwise_mean(model, images, batch_size=max(1, run.batch_size)))
    per_map = gather_values(idx, values, len(keys), run.dist)
    if not run.is_main:
        return {}
    value = lpips_diversity(per_map)
    run.per_image.update(lpips_per_map=np.asarray(per_map, dtype=np.float64),
                         lpips_keys=np.asarray(keys))
    extra = {}
    if run.stats.resamples > 0:
        idx = boot.resample_indices(len(keys), run.stats.resamples, run.stats.seed)
        extra = boot.interval_fields(boot.mean_replicates(per_map, idx), value, run.stats,
                                     n=len(keys), method=boot.METHOD_MAPS)
    return ok(value, net=ds.net, version=ds.version, samples_per_map=k,
              maps=len(keys), pairs_per_map=k * (k - 1) // 2, **extra)


def _classwise(run: _Run, samples: Mapping[str, Mapping[int, Sequence[str | Path]]] | None
               ) -> dict[str, dict]:
    """mCSD / mOCD from the class-wise samples (evaluators/classwise.py)."""
    from evaluators.classwise import classwise_diversity

    cw = run.protocol.classwise
    if not cw.enabled:
        return dict.fromkeys(("mcsd", "mocd"), not_applicable("the protocol disables mCSD / mOCD"))
    if samples is None:
        return dict.fromkeys(("mcsd", "mocd"), not_applicable(
            "the method has no per-class latent codes (mCSD / mOCD need images that differ in "
            "one class's code only)"))
    if {"mcsd", "mocd"} <= run.skips:
        return dict.fromkeys(("mcsd", "mocd"), skipped("skipped on request"))
    try:
        model, resolved = build_lpips(cw.net, cw.version, spatial=True, device=run.device,
                                      weights_path=run.weights.get(backbone_spec(cw.net).key))
    except WeightsUnavailable as exc:
        return dict.fromkeys(("mcsd", "mocd"), skipped(str(exc)))
    run.weights_used[resolved.spec.key] = resolved.record()
    index = {r.key: i for i, r in enumerate(run.records)}
    unknown = sorted(set(samples) - set(index))
    if unknown:
        raise EvaluationError(f"mCSD / mOCD samples for keys outside the evaluated set: "
                              f"{unknown[:5]}")
    check_sizes({f"{k}/{c}/{Path(p).name}": Path(p) for k, per in samples.items()
                 for c, ps in per.items() for p in ps}, run.protocol.resolution_hw)
    position = {r.key: j for j, r in enumerate(run.dataset.records())}
    labels = {k: generation_label(run, position[k]) for k in samples}
    keys = sorted(samples)
    idx = shard_indices(len(keys), run.dist)
    mine = {keys[i]: samples[keys[i]] for i in idx}
    part = classwise_diversity(model, labels, mine, read_uint8, batch_size=max(1, run.batch_size),
                               progress=lambda ks: tqdm(ks, desc="[eval] mCSD / mOCD", unit="map",
                                                        disable=not run.progress, leave=False))
    per_map = gather_values(idx, [part["per_map"][keys[i]] for i in idx], len(keys), run.dist)
    if not run.is_main:
        return {}
    from evaluators.classwise import aggregate
    result = aggregate({k: {int(c): v for c, v in m.items()} for k, m in zip(keys, per_map)})
    extra = dict(net=cw.net, version=cw.version, samples_per_class=cw.samples_per_class,
                 maps=result["maps"], classes=result["classes"], masking=cw.masking)
    out = {}
    for name in ("mcsd", "mocd"):
        if name in run.skips:
            out[name] = skipped("skipped on request")
        elif result[name] is None:
            out[name] = not_applicable("no class region to score (every class below "
                                       "min_pixels, or covering the whole map)")
        else:
            out[name] = ok(result[name], **extra)
    return out


def generation_label(run: _Run, position: int) -> torch.Tensor:
    """The label map of dataset item ``position`` as the method saw it: the dataset's ids at
    the generation size (nearest), [H,W] int64."""
    label = torch.as_tensor(run.dataset[position]["label"])
    if tuple(label.shape[-2:]) != run.protocol.resolution_hw:
        label = torch.nn.functional.interpolate(label[None, None].float(),
                                                size=run.protocol.resolution_hw,
                                                mode="nearest")[0, 0].long()
    return label


def evaluate_images(images: str | Path | Mapping[str, str | Path], dataset,
                    protocol: Protocol | str | Path, *,
                    diversity: Mapping[str, Sequence[str | Path]] | None = None,
                    classwise: Mapping[str, Mapping[int, Sequence[str | Path]]] | None = None,
                    multimodal: bool | None = None, device: str | torch.device = "cpu",
                    batch_size: int = 8, skip: Iterable[str] = (), dist: DistInfo | None = None,
                    method: str | None = None, variant: str | None = None,
                    run_id: str | None = None, inference: str | None = None,
                    seed: int | None = None, weights: Mapping[str, str | Path] | None = None,
                    progress: bool = True) -> dict:
    """One evaluation record for a generated set (a folder, or key -> file).

    ``dataset``: the evaluation split (a ``harness.core.data`` dataset of ``protocol.dataset`` /
    ``protocol.split``). ``diversity``: key -> K sample files for LPIPS diversity (keys from
    :func:`diversity_keys`). ``classwise``: key -> class -> K files that differ only in that
    class's code (mCSD / mOCD; None: the method has no per-class codes). ``weights``: explicit weight files by WeightSpec key
    ('inception-v3-compat', 'alexnet-imagenet', 'vgg16-imagenet') or segmenter name. ``skip``: metric names or groups
    (segmentation, real, diversity) not to compute.
    """
    protocol = protocol if isinstance(protocol, Protocol) else load_protocol(protocol)
    check_dataset(dataset, protocol)
    skips = normalise_skip(skip)
    records = select_records(dataset, protocol)
    keys = [r.key for r in records]
    if isinstance(images, (str, Path)):
        paths = pair_images(images, dataset, keys)
        source = str(images)
    else:
        paths = check_mapping(images, keys)
        source = "mapping"
    if not paths:
        raise PairingError(f"no images to evaluate for {dataset.name}/{dataset.split}")
    check_sizes(paths, protocol.resolution_hw)
    run = _Run(dataset, protocol, records, paths, device=device, batch_size=batch_size,
               skips=skips, dist=dist, weights=weights, progress=progress)

    content = run.content_fingerprint
    metrics: dict[str, Any] = {}
    # One pass over the evaluated images (evaluators/image_pass.py): each generated / real image
    # and label map is decoded once and fed to Inception, the segmenter and every feature
    # extractor (opt-in: protocol.features, feature_spaces.py) that needs it.
    fid_kid, segmentation = _fid_kid(run), _segmentation(run)
    features, features_result = feature_stage(run)
    image_pass.run_pass(run, [*fid_kid.consumers, *segmentation.consumers, *features],
                        label=lambda i: ground_truth(run.dataset, run.records[i], protocol))
    metrics.update(fid_kid.result())
    metrics.update(segmentation.result())
    metrics["lpips_diversity"] = _diversity(run, diversity, multimodal)
    metrics.update(_classwise(run, classwise))
    metrics.update(features_result())
    record = None
    if run.is_main:
        from harness.core.env import environment
        notes = []
        lossy = lossy_files(paths.values())
        if lossy:
            notes.append(f"{len(lossy)} of {len(paths)} generated images are stored in a lossy "
                         "format (JPEG/WebP); compression changes FID and segmentation scores")
        record = {
            "schema": SCHEMA, "method": method, "dataset": protocol.dataset, "variant": variant,
            "run_id": run_id, "protocol": protocol.summary(), "inference": inference,
            "n_images": len(keys), "seeds": [int(seed)] if seed is not None else [],
            "metrics": single_seed_fields(finite_or_skipped({n: metrics[n]
                                                             for n in (*METRIC_NAMES,
                                                                       *FEATURE_METRICS)
                                                             if n in metrics})),
            "weights": run.weights_used, "environment": environment(),
            "images": {"source": source, "lossy": len(lossy)}, "notes": notes,
            # Which data was scored: the leaderboard keys folder datasets' tables by it and
            # flags rows of named datasets whose data differs from the rest of their table.
            "data": {"split": dataset.split, "content": content,
                     "tables_by_fingerprint": bool(getattr(dataset, "tables_by_fingerprint",
                                                           False))},
        }
        mark_unverified(record, protocol)   # unverified weights: own identity, marked values
        if run.per_image:
            # Arrays, not JSON: write_record stores them in a .npz beside metrics.json.
            record = with_per_image(record, {"keys": np.asarray(keys), **run.per_image})
    return broadcast(record, run.dist)
