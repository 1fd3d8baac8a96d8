"""Datasets: the registry and the shared data contract."""
from harness.data.base import (Batch, DatasetError, DatasetInfo, DatasetOptions, EvalLabelSpace,
                               Record, SemanticDataset, collate)
from harness.registry import Registry


def _validate(name, cls):
    if not (isinstance(cls, type) and issubclass(cls, SemanticDataset)):
        raise TypeError(f"dataset {name!r} must be a SemanticDataset subclass, got {cls!r}")


DATASETS: Registry[type[SemanticDataset]] = Registry(
    "dataset", builtin_packages=("harness.data",), entry_point_group="harness.datasets",
    validate=_validate)

__all__ = ["Batch", "DATASETS", "DatasetError", "DatasetInfo", "DatasetOptions", "EvalLabelSpace",
           "Record", "SemanticDataset", "collate"]
