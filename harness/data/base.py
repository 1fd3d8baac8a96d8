"""What every dataset yields and declares: the contract between data, methods and evaluators.

A dataset lists its files (`records()`), declares its label semantics (`info`, `label_space`) and
inherits loading, validation, the official transforms and the instance-edge computation from
:class:`SemanticDataset`, so every method sees identical inputs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import torch

from harness.config import runtime


class DatasetError(ValueError):
    """Bad dataset layout or file; the message names the path and what was expected."""


@dataclass(frozen=True)
class DatasetInfo:
    """Label semantics of the generator input."""
    name: str
    label_nc: int                   # semantic classes in the generator input (without don't-care)
    contain_dontcare: bool          # one more channel (index label_nc) for unlabeled pixels
    has_instances: bool             # instance maps exist, so an edge channel can be used
    class_names: tuple[str, ...]    # len == label_nc
    image_size: tuple[int, int]     # (H, W) of training crops and of generated images

    @property
    def num_label_channels(self) -> int:
        """One-hot channels: label_nc (+1 don't-care). Methods add +1 for the edge map."""
        return self.label_nc + int(self.contain_dontcare)


@dataclass(frozen=True)
class EvalLabelSpace:
    """How raw label ids map to the ids that segmenters predict and mIoU is scored on."""
    name: str                       # e.g. 'cityscapes-trainid', 'ade20k-150', 'cocostuff-182'
    num_classes: int
    class_names: tuple[str, ...]
    lut: tuple[int, ...]            # raw label value (0..255) -> eval id, or ignore_index
    ignore_index: int = 255


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


class SemanticDataset(torch.utils.data.Dataset):
    """Base class of all datasets (registered in ``harness.data.DATASETS``).

    Subclasses set ``name`` and ``Options`` and implement ``records``, ``info`` and
    ``label_space``; they may override ``raw_label_to_input`` for datasets whose raw ids are not
    the generator ids. ``split`` is a split name of the dataset ('train', 'val', ...). With
    ``train=True`` the training transforms (load_size resize, random crop, flip) apply; otherwise
    the deterministic evaluation resize to the generation size. Random transform parameters are a
    pure function of (seed, epoch, index): DDP ranks, data-loader workers and resumed runs see
    exactly the same augmentation.

    ``__getitem__`` returns a dict: label [H,W] int64 (generator input ids), image [3,H,W] float
    in [-1,1], key, index, and, when the dataset has instances, instance [H,W] int64 and edge
    [1,H,W] float.
    """

    name: ClassVar[str]
    Options: ClassVar[type[DatasetOptions]] = DatasetOptions
    default_protocol: ClassVar[str | None] = None

    def __init__(self, options: DatasetOptions, split: str, *, train: bool = False,
                 seed: int = 0) -> None:
        self.options = options
        self.split = split
        self.train = train
        self.seed = seed
        self.epoch = 0

    # --- to implement -----------------------------------------------------------------------
    def records(self) -> list[Record]:
        raise NotImplementedError

    @property
    def info(self) -> DatasetInfo:
        raise NotImplementedError

    @property
    def label_space(self) -> EvalLabelSpace:
        raise NotImplementedError
