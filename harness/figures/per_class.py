"""The per-class IoU table of a record (most frequent class first): class, its pixel share in
the evaluation set's ground truth (so rare classes are visible), IoU on the generated images and
on the real images.

``write_per_class_csv`` writes ``per_class_iou.csv`` beside a metrics.json with one row per
(evaluation, class); ``format_table`` is the text `evaluate` logs on stderr.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

PER_CLASS_FILE = "per_class_iou.csv"
COLUMNS = ["evaluation", "protocol", "inference", "class", "pixel_share_pct", "iou_pct",
           "real_iou_pct"]


def _ok(metric: Any) -> Mapping | None:
    return metric if isinstance(metric, Mapping) and metric.get("status") == "ok" else None


def per_class_frame(record: Mapping[str, Any], evaluation: str = ""):
    """pandas DataFrame (COLUMNS) of one record; empty when mIoU was not computed."""
    import pandas as pd

    metrics = record.get("metrics") or {}
    gen, real = _ok(metrics.get("miou")), _ok(metrics.get("real_miou"))
    source = gen or real
    if not source or not source.get("per_class"):
        return pd.DataFrame(columns=COLUMNS)
    share = source.get("pixel_share") or (real or {}).get("pixel_share") or {}
    rows = []
    for cls in source["per_class"]:
        rows.append({"evaluation": evaluation,
                     "protocol": (record.get("protocol") or {}).get("id"),
                     "inference": record.get("inference"), "class": cls,
                     "pixel_share_pct": share.get(cls),
                     "iou_pct": (gen or {}).get("per_class", {}).get(cls),
                     "real_iou_pct": (real or {}).get("per_class", {}).get(cls)})
    # Most frequent classes first: the rare ones (where IoU is noisy) end up at the bottom.
    rows.sort(key=lambda r: -(r["pixel_share_pct"] if r["pixel_share_pct"] is not None else -1))
    return pd.DataFrame(rows, columns=COLUMNS)


def write_per_class_csv(metrics_file: str | Path) -> Path | None:
    """``per_class_iou.csv`` beside ``metrics_file`` (every evaluation in it); None when no
    evaluation has per-class IoU."""
    import pandas as pd

    from harness.core.io import atomic_write_text
    from harness.core.records import read_metrics

    metrics_file = Path(metrics_file)
    doc = read_metrics(metrics_file)
    frames = [per_class_frame(rec, key) for key, rec in sorted(doc["evaluations"].items())]
    frames = [f for f in frames if len(f)]
    if not frames:
        return None
    table = pd.concat(frames, ignore_index=True)
    out = metrics_file.parent / PER_CLASS_FILE
    atomic_write_text(out, table.to_csv(index=False, float_format="%.4f"))
    return out


def format_table(record: Mapping[str, Any]) -> str:
    """Aligned text: class, pixel share %, IoU % (generated), IoU % (real); '-' where undefined."""
    frame = per_class_frame(record)
    if not len(frame):
        return ""

    def num(v: Any) -> str:
        return "-" if v is None or v != v else f"{float(v):.1f}"

    rows = [("class", "pixels %", "IoU %", "real IoU %")]
    rows += [(str(r["class"]), num(r["pixel_share_pct"]), num(r["iou_pct"]),
              num(r["real_iou_pct"])) for _, r in frame.iterrows()]
    width = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(r[0].ljust(width[0]) + "  " + "  ".join(c.rjust(w) for c, w in
                                                            zip(r[1:], width[1:])) for r in rows)
