"""Segmenters for mIoU / accuracy, behind one registry (``python -m harness list segmenters``)."""
from evaluators.segmenters.base import DATASET_LABEL_SPACE, Segmenter, SegmenterEntry
from harness.core.registry import Registry


def _validate(name, entry):
    if not isinstance(entry, SegmenterEntry):
        raise TypeError(f"segmenter {name!r} must be registered as a SegmenterEntry, got {entry!r}")


SEGMENTERS: Registry[SegmenterEntry] = Registry(
    "segmenter", builtin_packages=("evaluators.segmenters",),
    entry_point_group="harness.segmenters", validate=_validate)


def register_segmenter(entry: SegmenterEntry) -> SegmenterEntry:
    SEGMENTERS.add(entry.name, entry, f"builtin ({entry.build.__module__})")
    return entry


__all__ = ["DATASET_LABEL_SPACE", "SEGMENTERS", "Segmenter", "SegmenterEntry", "register_segmenter"]
