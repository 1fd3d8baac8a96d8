"""What every dataset yields and declares: the contract between data, methods and evaluators.

A dataset lists its files (`scan()`, served sorted by `records()`), declares its label semantics
(`info`, `label_space`) and inherits loading, validation, the official transforms, the
instance-edge computation and the evaluation readers from :class:`SemanticDataset`, so every
method and evaluator sees identical inputs.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from harness.core.config import runtime
from harness.core.data import imageio as _io
from harness.core.data import transforms as _tf
from harness.core.data.edges import instance_edges
from harness.core.data.errors import DatasetError


@dataclass(frozen=True)
class DatasetInfo:
    """Label semantics of the generator input."""
    name: str
    label_nc: int                   # semantic classes in the generator input (without don't-care)
    contain_dontcare: bool          # one more channel (index label_nc) for unlabeled pixels
    has_instances: bool             # instance maps exist, so an edge channel can be used
    class_names: tuple[str, ...]    # len == label_nc
    image_size: tuple[int, int]     # (H, W) of generated images (the dataset's eval_size; also
                                    # the training crop for 'fixed' / 'resize_and_crop')
    # What each one-hot channel means (len == num_label_channels). Empty: class_names followed
    # by 'dontcare'. ADE20K sets it because its official channel order puts "other" first.
    channel_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.class_names) != self.label_nc:
            raise ValueError(f"{self.name}: {len(self.class_names)} class names for label_nc="
                             f"{self.label_nc}")
        if self.channel_names and len(self.channel_names) != self.num_label_channels:
            raise ValueError(f"{self.name}: {len(self.channel_names)} channel names for "
                             f"{self.num_label_channels} label channels")

    @property
    def num_label_channels(self) -> int:
        """One-hot channels: label_nc (+1 don't-care). Methods add +1 for the edge map."""
        return self.label_nc + int(self.contain_dontcare)

    def channel_name(self, channel: int) -> str:
        if self.channel_names:
            return self.channel_names[channel]
        return self.class_names[channel] if channel < self.label_nc else "dontcare"


@dataclass(frozen=True)
class EvalLabelSpace:
    """How raw label ids map to the ids that segmenters predict and mIoU is scored on."""
    name: str                       # e.g. 'cityscapes-trainid', 'ade20k-150', 'cocostuff-182'
    num_classes: int
    class_names: tuple[str, ...]
    lut: tuple[int, ...]            # raw label value (0..255) -> eval id, or ignore_index
    ignore_index: int = 255

    def to_eval(self, raw: np.ndarray) -> np.ndarray:
        """Raw label ids -> eval ids (int64); values outside the table become ignore_index."""
        raw = np.asarray(raw)
        lut = np.asarray(self.lut, dtype=np.int64)
        inside = (raw >= 0) & (raw < len(lut))
        return np.where(inside, lut[np.clip(raw, 0, len(lut) - 1)], self.ignore_index)


@dataclass
class DatasetOptions:
    """Fields shared by every dataset; datasets subclass this with their own extra fields."""
    root: str | None = runtime(None)
    preprocess: Literal["fixed", "resize_and_crop", "scale_width", "scale_width_and_crop",
                        "none"] = "resize_and_crop"
    load_size: int = 286            # training resize (square, or width for scale_width)
    crop_size: int = 256            # training crop and generation width/size
    aspect_ratio: float = 1.0       # W / H of the 'fixed' size
    flip: bool = True               # random horizontal flip (training only)
    size_multiple: int = 1          # round sizes to a multiple of this ('none'/'scale_width')
    max_images: int | None = None   # use only the first N (sorted) files of each split
    # Fingerprint the split by file contents (sha256), not by size + mtime (harness.core.data.
    # fingerprint); slower, catches an edit that keeps size and mtime.
    verify_content: bool = runtime(False)

    def __post_init__(self) -> None:
        for name in ("load_size", "crop_size", "size_multiple"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.aspect_ratio > 0:
            raise ValueError(f"aspect_ratio must be > 0, got {self.aspect_ratio}")
        if self.max_images is not None and self.max_images < 1:
            raise ValueError(f"max_images must be >= 1 or null, got {self.max_images}")
        if self.preprocess == "resize_and_crop" and self.crop_size > self.load_size:
            raise ValueError(f"crop_size ({self.crop_size}) must not exceed load_size "
                             f"({self.load_size}) with preprocess 'resize_and_crop'")


@dataclass
class Record:
    """One sample's files."""
    key: str                        # unique, stable, used to pair generated images by file name
    image: Path | None              # None: label-only (e.g. a test split without images)
    label: Path
    instance: Path | None = None


@dataclass
class Batch:
    label: torch.Tensor                     # [N,H,W] int64, generator input ids 0..C-1
    image: torch.Tensor                     # [N,3,H,W] float32 in [-1, 1]
    key: list[str]
    instance: torch.Tensor | None = None    # [N,H,W] int64 raw instance ids
    edge: torch.Tensor | None = None        # [N,1,H,W] float32 in {0, 1}
    index: torch.Tensor | None = None       # [N] int64 dataset indices

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        def mv(t):
            return None if t is None else t.to(device, non_blocking=non_blocking)
        return Batch(mv(self.label), mv(self.image), list(self.key), mv(self.instance),
                     mv(self.edge), self.index)

    def __len__(self) -> int:
        return self.label.shape[0]

    def split(self, parts: int) -> list["Batch"]:
        """Split into `parts` micro-batches (for gradient accumulation)."""
        n = len(self)
        if parts < 1 or n % parts:
            raise ValueError(f"cannot split a batch of {n} into {parts} equal micro-batches")
        m = n // parts
        out = []
        for i in range(parts):
            s = slice(i * m, (i + 1) * m)
            out.append(Batch(self.label[s], self.image[s], self.key[s],
                             None if self.instance is None else self.instance[s],
                             None if self.edge is None else self.edge[s],
                             None if self.index is None else self.index[s]))
        return out


def collate(samples: list[dict]) -> Batch:
    """Stack dataset samples (dicts with label/image/key[/instance/edge/index]) into a Batch."""
    def stack(name):
        if samples[0].get(name) is None:
            return None
        return torch.stack([s[name] for s in samples])
    index = torch.tensor([s["index"] for s in samples]) if "index" in samples[0] else None
    return Batch(label=stack("label"), image=stack("image"), key=[s["key"] for s in samples],
                 instance=stack("instance"), edge=stack("edge"), index=index)


def describe_ids(valid: np.ndarray, dontcare: int | None = None) -> str:
    """'0..34' / '0..181 and 255 (don't care)' for the ids whose LUT entry is valid."""
    ids = np.flatnonzero(valid)
    if ids.size == 0:
        return "(none)"
    parts, start, prev = [], int(ids[0]), int(ids[0])
    for v in ids[1:].tolist() + [None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        text = str(start) if start == prev else f"{start}..{prev}"
        if dontcare is not None and start == prev == dontcare:
            text += " (don't care)"
        parts.append(text)
        if v is not None:
            start = prev = v
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]


class SemanticDataset(torch.utils.data.Dataset):
    """Base class of all datasets (registered in ``harness.core.data.DATASETS``).

    Subclasses set ``name``, ``Options`` and ``default_protocol`` and implement ``scan`` (list
    and validate the split's files), ``info`` and ``label_space``; datasets whose raw label ids
    are not the generator ids override ``input_lut``. Everything else - loading, label range
    checks, the official transforms, instance edges and the evaluation readers - lives here, so
    every method and evaluator sees identical inputs.

    ``split`` is a split name of the dataset ('train', 'val', ...). With ``train=True`` the
    training transforms (load_size resize, random crop, flip) apply; otherwise the deterministic
    evaluation resize to the generation size (``eval_size``). Random transform parameters are a
    pure function of (seed, epoch, index): DDP ranks, DataLoader workers and resumed runs see
    exactly the same augmentation. ``set_epoch`` must be called before the DataLoader iterator is
    created (workers copy the dataset then; do not use ``persistent_workers``).

    ``__getitem__`` returns a dict: label [H,W] int64 (generator input ids), image [3,H,W] float
    in [-1,1], key, index, and, when the dataset has instances, instance [H,W] int64 and edge
    [1,H,W] float (computed here, once, at the training resolution after the nearest resize).
    """

    name: ClassVar[str]
    Options: ClassVar[type[DatasetOptions]] = DatasetOptions
    default_protocol: ClassVar[str | None] = None
    # True for datasets that are whatever a folder holds: their leaderboard tables are keyed
    # by the evaluated split's fingerprint, so two different folders never share a table.
    tables_by_fingerprint: ClassVar[bool] = False

    def __init__(self, options: DatasetOptions, split: str, *, train: bool = False,
                 seed: int = 0) -> None:
        if not isinstance(options, self.Options):
            raise TypeError(f"{type(self).__name__} expects {self.Options.__name__} options, got "
                            f"{type(options).__name__}")
        self.options = options
        self.split = split
        self.train = train
        self.seed = seed
        self.epoch = 0
        self._records: list[Record] | None = None

    # --- to implement -----------------------------------------------------------------------
    def scan(self) -> list[Record]:
        """All records of the split (any order), after checking the layout and the pairing."""
        raise NotImplementedError

    @property
    def info(self) -> DatasetInfo:
        raise NotImplementedError

    @property
    def label_space(self) -> EvalLabelSpace:
        raise NotImplementedError

    def input_lut(self) -> np.ndarray:
        """raw label value -> generator input id, -1 where the value is not allowed.

        Default: ids 0..label_nc-1 are themselves; 255 is the don't-care channel ``label_nc``
        when the dataset has one (the SPADE convention)."""
        info = self.info
        lut = np.full(max(256, info.label_nc), -1, dtype=np.int64)
        lut[:info.label_nc] = np.arange(info.label_nc)
        if info.contain_dontcare:
            lut[255] = info.label_nc
        return lut

    # --- listing ------------------------------------------------------------------------------
    def records(self) -> list[Record]:
        """The split's records sorted by key, truncated to ``options.max_images``."""
        if self._records is None:
            recs = sorted(self.scan(), key=lambda r: r.key)
            seen: dict[str, Record] = {}
            for r in recs:
                if r.key in seen:
                    raise DatasetError(
                        f"{self.name} (split {self.split!r}): key {r.key!r} occurs twice: "
                        f"{seen[r.key].label} and {r.label}; keys must be unique")
                seen[r.key] = r
            if self.options.max_images is not None:
                recs = recs[:self.options.max_images]
            self._records = recs
        return self._records

    def keys(self) -> list[str]:
        return [r.key for r in self.records()]

    def __len__(self) -> int:
        return len(self.records())

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def identity_files(self) -> list[Path]:
        """Files besides the records' that define the split (e.g. a class list); fingerprinted
        with the split (harness.core.data.fingerprint)."""
        return []

    def fingerprint(self) -> str:
        """sha256 over the split's (key, file sizes) list (the harness-trained segmenter's
        cache key). What a run, its samples and the reference statistics record is the finer
        fingerprint of harness.core.data.fingerprint (paths with size + mtime, or contents)."""
        rows = []
        for r in self.records():
            sizes = []
            for path in (r.image, r.label, r.instance):
                if path is None:
                    sizes.append(None)
                    continue
                try:
                    sizes.append(os.stat(path).st_size)
                except OSError as exc:
                    raise DatasetError(f"cannot stat {path}: {exc.strerror}") from None
            rows.append([r.key, *sizes])
        return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()

    # --- label ids ------------------------------------------------------------------------------
    @cached_property
    def _input_lut(self) -> np.ndarray:
        return np.asarray(self.input_lut(), dtype=np.int64)

    def allowed_ids(self) -> str:
        """Human-readable raw ids accepted in label maps (for error messages and docs)."""
        lut = self._input_lut
        dontcare = 255 if self.info.contain_dontcare and len(lut) > 255 and lut[255] >= 0 else None
        return describe_ids(lut >= 0, dontcare)

    def raw_to_input(self, raw: np.ndarray, source: Path | str | None = None) -> np.ndarray:
        """Raw label ids -> generator input ids (e.g. 255 -> label_nc); DatasetError naming
        ``source``, the bad values and the allowed ids when a value is out of range."""
        raw = np.asarray(raw)
        lut = self._input_lut
        ids = lut[np.clip(raw, 0, len(lut) - 1)]
        bad = (raw < 0) | (raw >= len(lut)) | (ids < 0)
        if bad.any():
            values = np.unique(raw[bad])
            shown = ", ".join(str(v) for v in values[:20].tolist())
            more = f" (and {values.size - 20} more)" if values.size > 20 else ""
            where = f"label map {source}" if source is not None else "label map"
            raise DatasetError(
                f"{where} contains ids {shown}{more} in {int(bad.sum())} pixels, outside the "
                f"range of {self.name}: allowed raw ids are {self.allowed_ids()}")
        return ids

    # --- sizes --------------------------------------------------------------------------------
    @cached_property
    def native_size(self) -> tuple[int, int]:
        """(H, W) of the first file of the split, for size-keeping modes (scale_width, none)."""
        recs = self.records()
        if not recs:
            raise DatasetError(f"{self.name} (split {self.split!r}) has no samples")
        r = recs[0]
        return _io.image_size_hw(r.image) if r.image is not None else \
            _io.image_size_hw(r.label, "label map")

    def _size_for(self, train: bool) -> tuple[int, int]:
        mode = self.options.preprocess
        if mode == "fixed" or (mode == "resize_and_crop"):
            src = (0, 0)  # these modes do not depend on the source size
        else:
            src = self.native_size
        return _tf.output_hw(self.options, src, train=train)

    @property
    def eval_size(self) -> tuple[int, int]:
        """(H, W) produced by the evaluation transform: the generation size."""
        return self._size_for(False)

    @property
    def train_size(self) -> tuple[int, int]:
        """(H, W) of the training samples (crops)."""
        return self._size_for(True)

    # --- evaluation readers (original resolution, no augmentation) -----------------------------
    def read_image(self, rec: Record) -> np.ndarray:
        """uint8 [H, W, 3] RGB."""
        if rec.image is None:
            raise DatasetError(f"{self.name}: sample {rec.key!r} has no image")
        return np.asarray(_io.open_rgb(rec.image), dtype=np.uint8).copy()

    def read_label(self, rec: Record) -> np.ndarray:
        """int64 [H, W] raw ids (validated against the dataset's range)."""
        raw = _io.ids_to_array(_io.open_ids(rec.label, "label map"))
        self.raw_to_input(raw, rec.label)
        return raw

    def read_instance(self, rec: Record) -> np.ndarray | None:
        """int64 [H, W] raw instance ids, or None without instance maps."""
        if rec.instance is None:
            return None
        return _io.ids_to_array(_io.open_ids(rec.instance, "instance map"))

    def image_resized(self, rec: Record, size_hw: tuple[int, int],
                      filter: str = "bicubic") -> torch.Tensor:
        """uint8 [3, H, W] RGB resized with PIL (the FID reference set)."""
        if filter not in _tf.FILTERS:
            raise ValueError(f"unknown resize filter {filter!r}; use one of {sorted(_tf.FILTERS)}")
        if rec.image is None:
            raise DatasetError(f"{self.name}: sample {rec.key!r} has no image")
        img = _io.open_rgb(rec.image)
        h, w = size_hw
        if img.size != (w, h):
            img = img.resize((w, h), _tf.FILTERS[filter])
        return _tf.to_uint8_tensor(img)

    def label_resized(self, rec: Record, size_hw: tuple[int, int]) -> np.ndarray:
        """int64 [H, W] raw ids, NEAREST-resized to ``size_hw``."""
        raw = self.read_label(rec)
        h, w = size_hw
        if raw.shape == (h, w):
            return raw
        img = _io.array_to_ids(raw).resize((w, h), _tf.FILTERS["nearest"])
        return np.asarray(img).astype(np.int64)

    # --- training / generation samples -----------------------------------------------------------
    def __getitem__(self, index: int) -> dict[str, Any]:
        recs = self.records()
        if not -len(recs) <= index < len(recs):
            raise IndexError(f"index {index} out of range for {len(recs)} samples")
        index = index % len(recs)
        rec = recs[index]
        label_raw = _io.ids_to_array(_io.open_ids(rec.label, "label map"))
        label = self.raw_to_input(label_raw, rec.label)
        src_hw = label.shape
        image = _io.open_rgb(rec.image) if rec.image is not None else None
        if image is not None and (image.size[1], image.size[0]) != src_hw:
            raise DatasetError(
                f"image {rec.image} is {image.size[0]}x{image.size[1]} (W x H) but its label map "
                f"{rec.label} is {src_hw[1]}x{src_hw[0]}; image and label must have the same size")
        instance = None
        if self.info.has_instances:
            if rec.instance is None:
                raise DatasetError(f"{self.name}: sample {rec.key!r} has no instance map but the "
                                   "dataset uses instance maps")
            instance = _io.ids_to_array(_io.open_ids(rec.instance, "instance map"))
            if instance.shape != src_hw:
                raise DatasetError(
                    f"instance map {rec.instance} is {instance.shape[1]}x{instance.shape[0]} "
                    f"(W x H) but its label map {rec.label} is {src_hw[1]}x{src_hw[0]}; they must "
                    "have the same size")

        plan = _tf.make_plan(self.options, src_hw, train=self.train, seed=self.seed,
                             epoch=self.epoch, index=index)
        out_hw = plan.output_hw or src_hw
        expected_hw = self.train_size if self.train else self.eval_size
        if tuple(out_hw) != tuple(expected_hw):
            # Only the size-keeping modes get here: samples of one batch must share one size.
            raise DatasetError(
                f"label map {rec.label} ({src_hw[1]}x{src_hw[0]}, W x H) becomes "
                f"{out_hw[1]}x{out_hw[0]} with preprocess={self.options.preprocess!r}, but the "
                f"split's first sample gives {expected_hw[1]}x{expected_hw[0]}; with this mode "
                "all images need the same size (or use 'fixed' / 'resize_and_crop')")
        nearest = _tf.FILTERS["nearest"]
        label_t = torch.from_numpy(
            np.asarray(_tf.apply(_io.array_to_ids(label), plan, nearest)).astype(np.int64))
        if image is not None:
            image_t = _tf.to_image_tensor(_tf.apply(image, plan, _tf.FILTERS["bicubic"]))
        else:  # label-only splits: generation needs no real image
            image_t = torch.zeros(3, *label_t.shape)
        sample: dict[str, Any] = {"label": label_t, "image": image_t, "key": rec.key,
                                  "index": index}
        if instance is not None:
            inst_t = torch.from_numpy(
                np.asarray(_tf.apply(_io.array_to_ids(instance), plan, nearest)).astype(np.int64))
            sample["instance"] = inst_t
            sample["edge"] = instance_edges(inst_t)
        return sample

    def __repr__(self) -> str:
        n = len(self._records) if self._records is not None else "?"
        return (f"{type(self).__name__}(split={self.split!r}, train={self.train}, seed={self.seed}, "
                f"samples={n})")
