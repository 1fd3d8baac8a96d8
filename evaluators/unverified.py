"""Numbers computed with unverified weights carry their own protocol identity and a mark.

``HARNESS_ALLOW_UNVERIFIED_WEIGHTS=1`` lets a file whose sha256 differs from the published one be
used (a re-converted Inception, a fine-tuned segmenter, the tests' seeded stand-ins). Such a
number is not the protocol's number: :func:`mark_unverified` gives the record

- ``protocol.identity`` = ``<protocol id>+unverified-<8 hex>``, the hex a sha256 over the
  (weight key, file sha256) pairs that were not verified, so the same stand-in files give the same
  identity and other files another. The leaderboard and ``compare`` key tables by this identity:
  results with unverified weights never share a table (or a paired comparison) with verified ones.
  ``protocol.id`` itself (the name of the sample folder and of the metrics.json entry) is left as
  it is, so a run's evaluation slot does not move when its weights change;
- ``protocol.unverified`` = ``{"suffix", "weights": [{key, file, sha256}], "metrics": [...]}``,
  the metrics those files served (each table marks exactly these values);
- a note naming the files, which every table format prints with the row.
"""
from __future__ import annotations

from typing import Any

from harness.core.config import sha256_of

SUFFIX_PREFIX = "unverified-"
ALL_METRICS = ("fid", "kid", "miou", "accuracy", "real_miou", "real_accuracy",
               "lpips_diversity", "mcsd", "mocd")


def unverified_weights(weights_used: dict[str, dict]) -> list[dict]:
    """The resolved-weight records (``ResolvedWeights.record()``) whose hash did not match."""
    return [w for _, w in sorted(weights_used.items()) if w.get("verified") is False]


def identity_suffix(unverified: list[dict]) -> str:
    pairs = sorted((str(w.get("key")), str(w.get("sha256"))) for w in unverified)
    return SUFFIX_PREFIX + sha256_of(pairs)[:8]


def metrics_served(protocol: Any, keys: set[str]) -> list[str]:
    """The metrics computed with any of the weight files ``keys`` under ``protocol``."""
    from evaluators.diversity import backbone_spec
    from evaluators.pytorch_fid_flavour import inception_spec

    served: dict[str, set[str]] = {}

    def add(key: str, *metrics: str) -> None:
        served.setdefault(key, set()).update(metrics)

    add(inception_spec(protocol.fid.flavour).key, "fid", "kid")
    if protocol.segmentation.segmenter is not None:
        from evaluators.segmenters import SEGMENTERS
        for spec in SEGMENTERS.get(protocol.segmentation.segmenter).weights:
            add(spec.key, "miou", "accuracy", "real_miou", "real_accuracy")
    add(backbone_spec(protocol.diversity.net).key, "lpips_diversity")
    add(backbone_spec(protocol.classwise.net).key, "mcsd", "mocd")
    out: set[str] = set()
    for key in keys:
        # A file the declared needs do not know (a plugin's): mark every metric, never fewer.
        out.update(served.get(key) or ALL_METRICS)
    return [m for m in ALL_METRICS if m in out] + sorted(out - set(ALL_METRICS))


def mark_unverified(record: dict, protocol: Any) -> dict:
    """Add the unverified identity, metric list and note to ``record`` (in place; returned)."""
    unverified = unverified_weights(record.get("weights") or {})
    if not unverified:
        return record
    suffix = identity_suffix(unverified)
    metrics = [m for m in metrics_served(protocol, {str(w["key"]) for w in unverified})
               if (record.get("metrics") or {}).get(m, {}).get("status") == "ok"]
    proto = record["protocol"]
    proto["identity"] = f"{proto['id']}+{suffix}"
    proto["unverified"] = {
        "suffix": suffix, "metrics": metrics,
        "weights": [{"key": w.get("key"), "file": w.get("file"), "sha256": w.get("sha256")}
                    for w in unverified]}
    files = ", ".join(f"{w.get('file')} (sha256 {str(w.get('sha256'))[:12]})" for w in unverified)
    record.setdefault("notes", []).append(
        f"unverified weights (HARNESS_ALLOW_UNVERIFIED_WEIGHTS): {files} differ from the "
        f"published files; {', '.join(metrics) or 'no metric'} computed with them are not the "
        f"protocol's numbers (protocol identity {proto['identity']})")
    return record
