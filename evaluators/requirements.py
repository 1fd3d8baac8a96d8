"""What an evaluation under a protocol will load: the weight files, declared up front.

:func:`protocol_weight_needs` answers from the protocol's fields alone (nothing is built), so the
preflight can check every file before a model is trained: Inception for FID/KID, the LPIPS
backbone for diversity (multimodal methods only), the segmenter's files for mIoU / accuracy.
A metric the protocol disables or the user skips needs nothing.
"""
from __future__ import annotations

from typing import Iterable

from evaluators.protocol import Protocol
from harness.core.weights import WeightNeed

SEGMENTATION_METRICS = ("miou", "accuracy", "real_miou", "real_accuracy")


def protocol_weight_needs(protocol: Protocol, *, skip: Iterable[str] = (),
                          multimodal: bool | None = None) -> list[WeightNeed]:
    """The weight files evaluating under ``protocol`` resolves, each with the metrics it serves.

    ``skip``: metric names or groups as ``evaluate --skip`` takes them. ``multimodal``: whether
    the evaluated method samples several images per label map (None: unknown; the LPIPS need
    is then marked ``maybe``).
    """
    from evaluators.diversity import backbone_spec
    from evaluators.evaluate import normalise_skip

    skips = normalise_skip(skip)
    needs: list[WeightNeed] = []
    fs = protocol.fid
    if fs.enabled:
        metrics = tuple(m for m, on in (("fid", True), ("kid", fs.kid)) if on and m not in skips)
        if metrics:
            from evaluators.pytorch_fid_flavour import inception_spec
            needs.append(WeightNeed(inception_spec(fs.flavour),
                                    f"Inception for FID/KID ({fs.flavour})", metrics))
    seg = protocol.segmentation
    if seg.segmenter is not None:
        names = SEGMENTATION_METRICS if seg.real_images else SEGMENTATION_METRICS[:2]
        metrics = tuple(m for m in names if m not in skips)
        if metrics:
            from evaluators.segmenters import SEGMENTERS
            entry = SEGMENTERS.get(seg.segmenter)
            needs += [WeightNeed(spec, f"segmenter {entry.name}", metrics)
                      for spec in entry.weights]
    ds = protocol.diversity
    if ds.enabled and multimodal is not False and "lpips_diversity" not in skips:
        needs.append(WeightNeed(backbone_spec(ds.net), f"LPIPS ({ds.net}) for diversity",
                                ("lpips_diversity",), maybe=multimodal is None))
    from evaluators.feature_spaces import feature_weight_needs
    needs += feature_weight_needs(protocol.features, skips)
    return needs
