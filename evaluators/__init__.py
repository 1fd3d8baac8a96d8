"""Evaluators: FID/KID (torch-fidelity), LPIPS diversity (lpips), mIoU / pixel accuracy with
segmenters, all under one hashed protocol. They build on the foundation (harness.core: weight-file
resolution, the metrics-record schema in harness.core.records) and never import methods/.

Public entry points (imported lazily, so ``import evaluators`` stays cheap):

- :func:`evaluators.protocol.load_protocol`, :func:`~evaluators.protocol.list_protocols`
- :func:`evaluators.evaluate.evaluate_images`, :func:`~evaluators.pairing.pair_images`
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "Protocol": "evaluators.protocol", "load_protocol": "evaluators.protocol",
    "list_protocols": "evaluators.protocol", "METRIC_CODE_VERSION": "evaluators.protocol",
    "evaluate_images": "evaluators.evaluate", "EvaluationError": "evaluators.evaluate",
    "select_records": "evaluators.evaluate", "diversity_keys": "evaluators.evaluate",
    "pair_images": "evaluators.pairing", "PairingError": "evaluators.pairing",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'evaluators' has no attribute {name!r}")
