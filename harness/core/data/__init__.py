"""Datasets: the registry and the shared data contract."""
from harness.core.data.base import (Batch, DatasetError, DatasetInfo, DatasetOptions,
                                    EvalLabelSpace, Record, SemanticDataset, collate)
from harness.core.data.edges import instance_edges
from harness.core.data.factory import build_dataset, build_dataset_from_config
from harness.core.registry import Registry


def _validate(name, cls):
    if not (isinstance(cls, type) and issubclass(cls, SemanticDataset)):
        raise TypeError(f"dataset {name!r} must be a SemanticDataset subclass, got {cls!r}")


DATASETS: Registry[type[SemanticDataset]] = Registry(
    "dataset", builtin_packages=("harness.core.data",), entry_point_group="harness.datasets",
    validate=_validate)

__all__ = ["Batch", "DATASETS", "DatasetError", "DatasetInfo", "DatasetOptions", "EvalLabelSpace",
           "Record", "SemanticDataset", "build_dataset", "build_dataset_from_config", "collate",
           "instance_edges"]
