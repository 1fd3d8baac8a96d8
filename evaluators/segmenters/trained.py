"""A segmenter the harness trains itself, for datasets without a published one (synthetic, folders).

``train_segmenter(dataset, options)`` trains a compact U-Net (plain PyTorch, no pretrained
weights) on the dataset's train split with its training transforms, a mild brightness /
contrast jitter and class-frequency loss weights, scores it on the real val images (mIoU and
pixel accuracy in percent, classes with an empty union excluded), and caches checkpoint + JSON
record under ``<cache root>/segmenters/<dataset>/<hash of dataset identity + recipe>/``. A second
call with the same dataset and recipe is a cache hit; two processes starting at once train once
(file lock).

Registry entries: ``synthetic-unet`` (the synthetic dataset) and ``harness-trained``
(``build(dataset=..., dataset_options=...)``); both train on first use.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from evaluators.segmenters import (DATASET_LABEL_SPACE, Segmenter, SegmenterEntry,
                                   register_segmenter)
from evaluators.segmenters._common import check_images, load_strict, module_device
from harness.core.weights import ResolvedWeights, WeightSpec, file_sha256
from harness.core.io import atomic_torch_save, atomic_write_json, read_json
from harness.core.paths import cache_root

CHECKPOINT_FORMAT = "harness-trained-segmenter"
RECIPE_VERSION = 1          # bump when training changes, so cached models are not reused
CHECKPOINT_NAME = "model.pt"
RECORD_NAME = "record.json"
# Steps timed (after the first, which pays one-off costs) before the log states an estimate.
ESTIMATE_AFTER_STEPS = 5

# Above this estimate the log says what makes it shorter (the time grows with the training
# crop's pixels: dataset.crop_size, 256 for folder datasets by default).
LONG_TRAINING_S = 300
LONG_TRAINING_HINT = (
    ". It is trained once per dataset and recipe (then read from the cache). To avoid the wait: "
    "train it ahead of time with `python -m harness train-segmenter` (e.g. --set "
    "segmenter.steps=100) and pass that file with --segmenter-weights; or train at the "
    "resolution of your images (--set dataset.load_size=64 --set dataset.crop_size=64 for 64x64 "
    "images); on an oversubscribed CPU, OMP_NUM_THREADS=1; docs/segmenters.md")

LOG = logging.getLogger("harness")

# Fixed input normalisation of the trained segmenter: RGB / 255, then (x - 0.5) / 0.25.
INPUT_MEAN, INPUT_STD = 0.5, 0.25


class TrainedSegmenterError(ValueError):
    """A trained-segmenter checkpoint or dataset is unusable; the message names it."""


# --- the network ---------------------------------------------------------------------------------
def _conv_bn_relu(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class CompactUNet(nn.Module):
    """Four-level encoder (full, 1/2, 1/4, 1/8 resolution) and a skip-connected decoder back to
    full resolution: per-pixel texture and colour cues plus enough context for object shapes,
    at ~0.3 M parameters. Any input size works (the decoder resizes to each skip's size)."""

    def __init__(self, num_classes: int, widths: Sequence[int] = (16, 32, 64, 96),
                 decoder_widths: Sequence[int] = (48, 32, 16)) -> None:
        super().__init__()
        w, d = tuple(widths), tuple(decoder_widths)
        self.enc0 = _conv_bn_relu(3, w[0])
        self.enc1 = nn.Sequential(_conv_bn_relu(w[0], w[1], 2), _conv_bn_relu(w[1], w[1]))
        self.enc2 = nn.Sequential(_conv_bn_relu(w[1], w[2], 2), _conv_bn_relu(w[2], w[2]))
        self.enc3 = nn.Sequential(_conv_bn_relu(w[2], w[3], 2), _conv_bn_relu(w[3], w[3], dilation=2))
        self.dec2 = _conv_bn_relu(w[3] + w[2], d[0])
        self.dec1 = _conv_bn_relu(d[0] + w[1], d[1])
        self.dec0 = _conv_bn_relu(d[1] + w[0], d[2])
        self.classifier = nn.Conv2d(d[2], num_classes, 1)

    @staticmethod
    def _merge(coarse: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(coarse, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat([up, skip], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = self.enc0(x)
        s1 = self.enc1(s0)
        s2 = self.enc2(s1)
        y = self.enc3(s2)
        y = self.dec2(self._merge(y, s2))
        y = self.dec1(self._merge(y, s1))
        y = self.dec0(self._merge(y, s0))
        return self.classifier(y)


def normalize_uint8(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    return (images.to(device, torch.float32) / 255.0 - INPUT_MEAN) / INPUT_STD


class TrainedSegmenter(Segmenter):
    """A CompactUNet trained by the harness; predicts the dataset's evaluation ids."""
    name = "harness-trained"

    def __init__(self, num_classes: int, label_space: str, class_names: Sequence[str],
                 widths: Sequence[int], decoder_widths: Sequence[int]) -> None:
        super().__init__()
        self.num_classes = int(num_classes)
        self.label_space = label_space
        self.class_names = tuple(class_names)
        self.net = CompactUNet(self.num_classes, widths, decoder_widths)
        self.eval()

    def logits(self, images: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        out = self.net(normalize_uint8(images, module_device(self)))
        return F.interpolate(out, size=out_size, mode="bilinear", align_corners=False)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, out_size: Sequence[int]) -> torch.Tensor:
        size = check_images(images, out_size)
        return self.logits(images, size).argmax(dim=1)


# --- recipe, identity, cache ---------------------------------------------------------------------
@dataclass(frozen=True)
class TrainRecipe:
    """Everything that decides the trained weights (hashed into the cache key)."""
    steps: int = 300
    batch_size: int = 8
    seed: int = 0
    lr: float = 3e-3                 # one-cycle peak, AdamW
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.15
    brightness: float = 0.05         # additive jitter, uniform in +-brightness (images in [0, 1])
    contrast: float = 0.1            # multiplicative jitter around the image mean, 1 +- contrast
    class_weights: str = "sqrt-median-frequency"   # or "none": plain cross-entropy
    widths: tuple[int, ...] = (16, 32, 64, 96)
    decoder_widths: tuple[int, ...] = (48, 32, 16)
    arch: str = "compact-unet"
    version: int = RECIPE_VERSION

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps ({self.steps}) and batch_size ({self.batch_size}) must be >= 1")
        if self.class_weights not in ("none", "sqrt-median-frequency"):
            raise ValueError(f"class_weights must be 'none' or 'sqrt-median-frequency', got "
                             f"{self.class_weights!r}")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class TrainedSegmenterResult:
    checkpoint: Path                 # the model file (in the cache, or out_path)
    record: dict                     # what record.json holds
    cached: bool                     # True: found in the cache, nothing was trained

    @property
    def miou(self) -> float:
        return float(self.record["score"]["miou"])

    @property
    def accuracy(self) -> float:
        return float(self.record["score"]["accuracy"])

    @property
    def directory(self) -> Path:
        return self.checkpoint.parent


def _build_dataset(name: str, options, split: str, *, train: bool, seed: int):
    from harness.core.data import build_dataset
    return build_dataset(name, options, split, train=train, seed=seed)


def dataset_identity(name: str, train_ds, val_ds) -> dict:
    """What identifies the data: options without runtime fields, both splits' file lists (keys
    and sizes, no paths) and the evaluation label space."""
    from harness.core.config import identity_dict
    space = train_ds.label_space
    return {"dataset": name, "options": identity_dict(train_ds.options),
            "train": train_ds.fingerprint(), "val": val_ds.fingerprint(),
            "label_space": {"name": space.name, "num_classes": space.num_classes,
                            "lut": list(space.lut), "ignore_index": space.ignore_index}}


def cache_key(identity: dict, recipe: TrainRecipe) -> str:
    text = json.dumps({"data": identity, "recipe": recipe.to_dict()}, sort_keys=True,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_dir(dataset_name: str, key: str) -> Path:
    return cache_root() / "segmenters" / dataset_name / key


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """An inter-process lock (POSIX flock); elsewhere no lock (writes stay atomic anyway)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- labels: generator input ids -> evaluation ids -----------------------------------------------
def input_to_eval_table(dataset) -> torch.Tensor:
    """Eval id of every generator input id (what ``__getitem__`` labels hold), via the raw ids."""
    raw_to_input = np.asarray(dataset.input_lut(), dtype=np.int64)
    space = dataset.label_space
    lut = np.asarray(space.lut, dtype=np.int64)
    size = int(raw_to_input.max()) + 1 if (raw_to_input >= 0).any() else 1
    table = np.full(max(size, 1), -1, dtype=np.int64)
    for raw, inp in enumerate(raw_to_input.tolist()):
        if inp < 0:
            continue
        ev = int(lut[raw]) if raw < len(lut) else space.ignore_index
        if table[inp] not in (-1, ev):
            raise TrainedSegmenterError(
                f"{dataset.name}: generator input id {inp} comes from raw ids with different "
                f"evaluation ids ({table[inp]} and {ev}); cannot train a segmenter on input ids")
        table[inp] = ev
    table[table < 0] = space.ignore_index
    return torch.from_numpy(table)


# --- training ------------------------------------------------------------------------------------
def _batches(dataset, recipe: TrainRecipe, generator: torch.Generator) -> Iterator[dict]:
    """Endless shuffled batches; the dataset's own augmentation is a function of (seed, epoch)."""
    epoch = 0
    while True:
        dataset.set_epoch(epoch)
        order = torch.randperm(len(dataset), generator=generator).tolist()
        if len(order) < recipe.batch_size:   # tiny datasets: repeat the permutation
            order = (order * (recipe.batch_size // max(len(order), 1) + 1))
        for start in range(0, len(order) - recipe.batch_size + 1, recipe.batch_size):
            items = [dataset[i] for i in order[start:start + recipe.batch_size]]
            yield {"image": torch.stack([it["image"] for it in items]),
                   "label": torch.stack([it["label"] for it in items])}
        epoch += 1


def _jitter(x01: torch.Tensor, recipe: TrainRecipe, generator: torch.Generator) -> torch.Tensor:
    n = x01.shape[0]
    contrast = 1 + (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * recipe.contrast
    brightness = (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * recipe.brightness
    mean = x01.mean(dim=(1, 2, 3), keepdim=True)
    return ((x01 - mean) * contrast + mean + brightness).clamp(0, 1)


MAX_RECORDS_FOR_FREQUENCIES = 512


def class_weights(train_ds, scheme: str) -> torch.Tensor | None:
    """Loss weights (median frequency / class frequency) ** 0.5 over the train labels, so the
    small classes (e.g. the synthetic 'person' and 'ball') are learned reliably; classes without
    pixels get weight 1. Counted on at most MAX_RECORDS_FOR_FREQUENCIES label maps."""
    if scheme == "none":
        return None
    space = train_ds.label_space
    counts = np.zeros(space.num_classes, dtype=np.float64)
    for rec in train_ds.records()[:MAX_RECORDS_FOR_FREQUENCIES]:
        ids = space.to_eval(train_ds.read_label(rec))
        counts += np.bincount(ids[ids != space.ignore_index].ravel(), minlength=space.num_classes)
    present = counts > 0
    weights = np.ones_like(counts)
    if present.any():
        weights[present] = np.sqrt(np.median(counts[present]) / counts[present])
    return torch.tensor(weights, dtype=torch.float32)


def _fit(model: TrainedSegmenter, train_ds, recipe: TrainRecipe, device: torch.device,
         progress: bool) -> list[float]:
    generator = torch.Generator().manual_seed(recipe.seed)
    table = input_to_eval_table(train_ds).to(device)
    weights = class_weights(train_ds, recipe.class_weights)
    weights = None if weights is None else weights.to(device)
    # channels_last: the same maths, ~1.3x faster convolutions on CPU (measured at 256x256,
    # docs/segmenters.md); the weights go back to the default layout after training.
    net = model.net.to(device, memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=recipe.steps,
                                                pct_start=recipe.warmup_fraction)
    losses = []
    batches = _batches(train_ds, recipe, generator)
    timer = _Estimate(recipe.steps, train_ds.name)
    # leave=True: the finished bar (steps, time, rate) stays on stderr as the trace of a
    # first-use training that may take minutes.
    with tqdm(total=recipe.steps, desc=f"[segmenter] train on {train_ds.name}", unit="step",
              disable=not progress, leave=True) as bar:
        for _ in range(recipe.steps):
            batch = next(batches)
            # The quantised uint8 picture predict() will see, jittered in [0, 1].
            x01 = ((batch["image"] + 1) * 127.5).round().clamp(0, 255) / 255.0
            x = (_jitter(x01, recipe, generator).to(device) - INPUT_MEAN) / INPUT_STD
            x = x.contiguous(memory_format=torch.channels_last)
            labels = batch["label"].to(device)
            target = table[labels.clamp(0, len(table) - 1)]
            target[(labels < 0) | (labels >= len(table))] = train_ds.label_space.ignore_index
            loss = F.cross_entropy(net(x), target, weight=weights,
                                   ignore_index=train_ds.label_space.ignore_index)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            timer.step()
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
    net.to(memory_format=torch.contiguous_format)
    model.eval()                     # stays on the training device for scoring
    return losses


class _Estimate:
    """Logs once how long the training will take, from the time of steps 2..1+N (the first step
    pays one-off costs: allocator, thread pools, the first image decodes)."""

    def __init__(self, steps: int, dataset: str) -> None:
        self.steps, self.dataset, self.done = steps, dataset, 0
        self.start: float | None = None

    def step(self) -> None:
        self.done += 1
        if self.done == 1:
            self.start = time.perf_counter()
        elif self.done == 1 + ESTIMATE_AFTER_STEPS and self.steps > self.done:
            per_step = (time.perf_counter() - self.start) / ESTIMATE_AFTER_STEPS
            left = per_step * (self.steps - self.done)
            LOG.log(logging.WARNING if left > LONG_TRAINING_S else logging.INFO,
                    "segmenter for %s: %.2f s/step, about %s for the remaining %d steps%s",
                    self.dataset, per_step, _duration(left), self.steps - self.done,
                    LONG_TRAINING_HINT if left > LONG_TRAINING_S else "")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _announce(train_ds, val_ds, recipe: TrainRecipe, device, folder: Path) -> None:
    """One line before a first-use training: what is trained, on what, the budget, the cache."""
    first = train_ds[0]["image"]
    LOG.info("training the harness segmenter for %s (first use; cached afterwards): %s, %d "
             "steps x batch %d on %d train images at %dx%d (the dataset's training transforms), "
             "scored on %d real val images, device %s; cache: %s. A time estimate follows "
             "after %d steps; a checkpoint of your own instead: --segmenter-weights FILE", train_ds.name, recipe.arch, recipe.steps,
             recipe.batch_size, len(train_ds), first.shape[-2], first.shape[-1], len(val_ds),
             device, folder, ESTIMATE_AFTER_STEPS + 1)


@torch.no_grad()
def score_on_real_images(model: Segmenter, val_ds, progress: bool = False) -> dict:
    """mIoU (classes with a non-empty union) and pixel accuracy (ignored pixels excluded), in %,
    of ``model`` on the real val images at their own size."""
    space = val_ds.label_space
    k = space.num_classes
    cm = torch.zeros(k, k, dtype=torch.int64)
    for rec in tqdm(val_ds.records(), desc="[segmenter] score on real val images", unit="img",
                    disable=not progress, leave=False):
        image = torch.from_numpy(val_ds.read_image(rec)).permute(2, 0, 1)[None]
        gt = torch.from_numpy(space.to_eval(val_ds.read_label(rec))).long()
        pred = model.predict(image, tuple(gt.shape))[0].cpu()
        valid = gt != space.ignore_index
        cm += torch.bincount(gt[valid] * k + pred[valid], minlength=k * k).reshape(k, k)
    cm = cm.double()
    tp = cm.diag()
    union = cm.sum(0) + cm.sum(1) - tp
    iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))
    total = cm.sum()
    return {"miou": float(np.nanmean(iou.numpy())) * 100 if (union > 0).any() else float("nan"),
            "accuracy": float(tp.sum() / total) * 100 if total > 0 else float("nan"),
            "per_class_iou": {name: (None if np.isnan(v) else round(float(v) * 100, 4))
                              for name, v in zip(space.class_names, iou.tolist())},
            "images": len(val_ds.records()), "pixels": int(total)}


def _new_model(train_ds, recipe: TrainRecipe) -> TrainedSegmenter:
    space = train_ds.label_space
    return TrainedSegmenter(space.num_classes, space.name, space.class_names, recipe.widths,
                            recipe.decoder_widths)


def _checkpoint(model: TrainedSegmenter, recipe: TrainRecipe, identity: dict) -> dict:
    return {"format": CHECKPOINT_FORMAT, "version": RECIPE_VERSION, "arch": recipe.arch,
            "widths": list(recipe.widths), "decoder_widths": list(recipe.decoder_widths),
            "num_classes": model.num_classes, "label_space": model.label_space,
            "class_names": list(model.class_names),
            "normalize": {"scale": 1 / 255, "mean": INPUT_MEAN, "std": INPUT_STD},
            "dataset": identity["dataset"], "cache_key": cache_key(identity, recipe),
            "state_dict": {k: v.detach().cpu() for k, v in model.net.state_dict().items()}}


def train_segmenter(dataset_name: str, dataset_options: Mapping[str, Any] | Any = None, *,
                    steps: int = TrainRecipe.steps, batch_size: int = TrainRecipe.batch_size,
                    seed: int = 0, device: str | torch.device = "cpu",
                    out_path: str | Path | None = None, progress: bool = True,
                    recipe: TrainRecipe | None = None) -> TrainedSegmenterResult:
    """Train (or fetch from the cache) the harness segmenter of a dataset; see the module doc.

    ``dataset_options``: the dataset's Options instance, a mapping validated like a config
    section, or None for the defaults. ``out_path``: also write the checkpoint there (and the
    record beside it, ``<out_path>.json``). ``recipe`` overrides steps / batch_size / seed.
    """
    if recipe is None:
        recipe = TrainRecipe(steps=steps, batch_size=batch_size, seed=seed)
    train_ds = _build_dataset(dataset_name, dataset_options, "train", train=True, seed=recipe.seed)
    val_ds = _build_dataset(dataset_name, train_ds.options, "val", train=False, seed=recipe.seed)
    if len(train_ds) == 0 or len(val_ds) == 0:
        raise TrainedSegmenterError(f"{dataset_name}: the segmenter needs non-empty train and val "
                                    f"splits (got {len(train_ds)} / {len(val_ds)} samples)")
    identity = dataset_identity(dataset_name, train_ds, val_ds)
    key = cache_key(identity, recipe)
    folder = cache_dir(dataset_name, key)
    ckpt_path, record_path = folder / CHECKPOINT_NAME, folder / RECORD_NAME
    with _exclusive(folder.parent / f".{key}.lock"):
        record = _cached_record(folder)
        cached = record is not None
        if record is None:
            with torch.random.fork_rng(devices=[]):  # seeded initial weights, caller's RNG kept
                torch.manual_seed(recipe.seed)
                model = _new_model(train_ds, recipe)
            _announce(train_ds, val_ds, recipe, device, folder)
            start = time.perf_counter()
            losses = _fit(model, train_ds, recipe, torch.device(device), progress)
            train_s = time.perf_counter() - start
            score = score_on_real_images(model, val_ds, progress)
            atomic_torch_save(ckpt_path, _checkpoint(model.cpu(), recipe, identity))
            from harness.core.env import environment
            record = {"format": CHECKPOINT_FORMAT, "dataset": dataset_name, "cache_key": key,
                      "checkpoint": CHECKPOINT_NAME, "sha256": file_sha256(ckpt_path),
                      "score": score, "recipe": recipe.to_dict(), "data": identity,
                      "label_space": model.label_space, "num_classes": model.num_classes,
                      "training": {"device": str(device), "seconds": round(train_s, 2),
                                   "final_loss": losses[-1],
                                   "mean_loss_last_10": float(np.mean(losses[-10:]))},
                      "environment": environment()}
            atomic_write_json(record_path, record)
            LOG.info("segmenter for %s trained in %s: mIoU %.1f %%, pixel accuracy %.1f %% on "
                     "the real val images; cached in %s", dataset_name, _duration(train_s),
                     score["miou"], score["accuracy"], folder)
    if out_path is not None:
        out = Path(out_path).expanduser()
        atomic_torch_save(out, torch.load(ckpt_path, map_location="cpu", weights_only=True))
        atomic_write_json(out.with_name(out.name + ".json"), record)
        return TrainedSegmenterResult(out, record, cached)
    return TrainedSegmenterResult(ckpt_path, record, cached)


def _cached_record(folder: Path) -> dict | None:
    """The record of a complete cache entry (checkpoint present, hash matching), else None."""
    record_path, ckpt_path = folder / RECORD_NAME, folder / CHECKPOINT_NAME
    if not (record_path.is_file() and ckpt_path.is_file()):
        return None
    try:
        record = read_json(record_path)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("sha256") != file_sha256(ckpt_path):
        return None                  # a stale or damaged entry: train again, replace it
    return record


# --- loading and the registry --------------------------------------------------------------------
def load_trained_segmenter(path: str | Path, device="cpu", *, origin: str = "explicit"
                           ) -> TrainedSegmenter:
    """A TrainedSegmenter from a checkpoint written by :func:`train_segmenter`."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise TrainedSegmenterError(f"trained segmenter checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TrainedSegmenterError(f"{path} could not be read as a trained segmenter checkpoint "
                                    f"({type(exc).__name__}: {exc})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise TrainedSegmenterError(f"{path} is not a checkpoint written by train_segmenter "
                                    f"(no format '{CHECKPOINT_FORMAT}')")
    model = TrainedSegmenter(ckpt["num_classes"], ckpt["label_space"], ckpt["class_names"],
                             ckpt["widths"], ckpt["decoder_widths"])
    load_strict(model.net, ckpt["state_dict"], path)
    spec = WeightSpec(key=f"harness-trained-{ckpt['dataset']}", filename=path.name,
                      source=f"train_segmenter('{ckpt['dataset']}'), cache key {ckpt['cache_key']}")
    model.resolved_weights = [ResolvedWeights(spec, path, file_sha256(path), None, origin)]
    model.config = {"arch": ckpt["arch"], "dataset": ckpt["dataset"],
                    "cache_key": ckpt["cache_key"], "normalize": ckpt["normalize"]}
    return model.to(device).eval()


def build_harness_trained(weights=None, device="cpu", *, dataset: str | None = None,
                          dataset_options: Mapping[str, Any] | Any = None,
                          steps: int = TrainRecipe.steps, batch_size: int = TrainRecipe.batch_size,
                          seed: int = 0, progress: bool = True) -> TrainedSegmenter:
    """The harness-trained segmenter of ``dataset``: trained on first use, then from the cache.

    ``weights``: a checkpoint written by train_segmenter (then nothing is trained).
    """
    if weights is not None:
        return load_trained_segmenter(weights, device)
    if dataset is None:
        raise ValueError("the 'harness-trained' segmenter needs dataset=<registered dataset name> "
                         "(and dataset_options=...) to train on, or weights=<checkpoint>")
    result = train_segmenter(dataset, dataset_options, steps=steps, batch_size=batch_size,
                             seed=seed, device=device, progress=progress)
    return load_trained_segmenter(result.checkpoint, device,
                                  origin="cache" if result.cached else "trained")


def build_synthetic_unet(weights=None, device="cpu", *,
                         dataset_options: Mapping[str, Any] | Any = None,
                         steps: int = TrainRecipe.steps, batch_size: int = TrainRecipe.batch_size,
                         seed: int = 0, progress: bool = True) -> TrainedSegmenter:
    """The harness-trained segmenter of the built-in synthetic dataset."""
    return build_harness_trained(weights, device, dataset="synthetic",
                                 dataset_options=dataset_options, steps=steps,
                                 batch_size=batch_size, seed=seed, progress=progress)


_IDENTITY = {"architecture": "CompactUNet (evaluators.segmenters.trained)",
             "recipe": TrainRecipe().to_dict(),
             "preprocessing": {"color": "RGB", "scale": 1 / 255, "mean": INPUT_MEAN,
                               "std": INPUT_STD, "input_resize": "none"},
             "output_resize": "bilinear (align_corners=False) on logits"}

register_segmenter(SegmenterEntry(
    name="synthetic-unet", label_space="synthetic",
    description="compact U-Net trained by the harness on the synthetic train split (cached; "
                "trains on first use, ~30 s on CPU; 97 % mIoU on the real val images)",
    build=build_synthetic_unet,
    identity={**_IDENTITY, "dataset": "synthetic (default options)"},
    options={}))

register_segmenter(SegmenterEntry(
    name="harness-trained", label_space=DATASET_LABEL_SPACE,
    description="compact U-Net trained by the harness on any dataset's train split "
                "(build(dataset=..., dataset_options=...)); the dataset's own label space",
    build=build_harness_trained,
    identity=_IDENTITY,
    options={}))

__all__ = ["CompactUNet", "TrainRecipe", "TrainedSegmenter", "TrainedSegmenterResult",
           "build_harness_trained", "build_synthetic_unet", "load_trained_segmenter",
           "score_on_real_images", "train_segmenter"]

