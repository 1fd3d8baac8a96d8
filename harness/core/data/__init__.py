"""Datasets: the registry and the shared data contract."""
from harness.core.data.base import (Batch, DatasetError, DatasetInfo, DatasetOptions,
                                    EvalLabelSpace, Record, SemanticDataset, collate)
from harness.core.data.edges import instance_edges
from harness.core.data.factory import DATASETS, build_dataset, build_dataset_from_config

__all__ = ["Batch", "DATASETS", "DatasetError", "DatasetInfo", "DatasetOptions", "EvalLabelSpace",
           "Record", "SemanticDataset", "build_dataset", "build_dataset_from_config", "collate",
           "instance_edges"]
