"""A protocol in words, from what a record stores (``protocol.fields``), for captions and the
HTML report: "N = 500 val images generated at 256x512; FID / KID against the val images resized
to that size (bicubic); mIoU / accuracy by drn-d-105 on the generated size; seeds 0".
"""
from __future__ import annotations

from typing import Any, Mapping


def protocol_words(fields: Mapping[str, Any] | None, n_images: tuple[int | None, ...] = ()
                   ) -> str:
    if not isinstance(fields, Mapping) or not fields:
        return "protocol fields not recorded"
    parts = []
    split = fields.get("split") or "evaluation"
    res = fields.get("resolution") or []
    size = "x".join(str(v) for v in res) if res else "?"
    ns = [n for n in n_images if n is not None]
    n = "/".join(map(str, ns)) if ns else (fields.get("num_images") or "all")
    parts.append(f"N = {n} {split} images generated at {size} (HxW)")
    fid = fields.get("fid") if isinstance(fields.get("fid"), Mapping) else {}
    if fid.get("enabled", True):
        parts.append(f"FID{' / KID' if fid.get('kid', True) else ''} against the {split} images "
                     f"resized to that size ({fid.get('resize_filter', 'bicubic')})")
    seg = fields.get("segmentation") if isinstance(fields.get("segmentation"), Mapping) else {}
    if seg.get("segmenter"):
        where = ("the generated size" if seg.get("input_resolution", "generated") == "generated"
                 else "images upsampled to the original size")
        parts.append(f"mIoU / accuracy by {seg['segmenter']} on {where}, ignored pixels "
                     f"{'excluded' if seg.get('accuracy_ignored_pixels', 'exclude') == 'exclude' else 'counted as wrong'}")
    div = fields.get("diversity") if isinstance(fields.get("diversity"), Mapping) else {}
    if div.get("net"):
        parts.append(f"LPIPS diversity with {div['net']}")
    seeds = fields.get("seeds")
    if isinstance(seeds, list):
        parts.append(f"generation seeds {', '.join(map(str, seeds))}")
    return "; ".join(parts)
