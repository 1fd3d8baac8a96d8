"""Evaluators: FID/KID (torch-fidelity), LPIPS diversity (lpips), mIoU / pixel accuracy with
segmenters, all under one hashed protocol; plus the weight-file resolution every network uses.

Public entry points (imported lazily, so ``import evaluators`` stays cheap):

- :func:`evaluators.protocol.load_protocol`, :func:`~evaluators.protocol.list_protocols`
- :func:`evaluators.evaluate.evaluate_images`, :func:`~evaluators.pairing.pair_images`
- :func:`harness.core.records.combine_seeds`, :func:`~harness.core.records.write_record`,
  :data:`~harness.core.records.METRICS`
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "Protocol": "evaluators.protocol", "load_protocol": "evaluators.protocol",
    "list_protocols": "evaluators.protocol", "METRIC_CODE_VERSION": "evaluators.protocol",
    "evaluate_images": "evaluators.evaluate", "EvaluationError": "evaluators.evaluate",
    "select_records": "evaluators.evaluate", "diversity_keys": "evaluators.evaluate",
    "pair_images": "evaluators.pairing", "PairingError": "evaluators.pairing",
    "combine_seeds": "harness.core.records", "write_record": "harness.core.records",
    "read_metrics": "harness.core.records", "METRICS": "harness.core.records",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'evaluators' has no attribute {name!r}")
