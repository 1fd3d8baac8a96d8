"""The leaderboard's metric columns: record key, header, direction and display precision.

One place decides how a metric is shown, so the CSV, LaTeX and Markdown writers and the
best-per-column rule all agree.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.core.records import METRICS


@dataclass(frozen=True)
class MetricColumn:
    key: str                          # column key in tables and the CSV
    record_key: str                   # key in a record's "metrics" for generated images
    real_key: str | None              # key of the segmenter-on-real-images value, if any
    published_key: str | None         # column of results/published.csv
    title: str                        # plain header (Markdown)
    latex_title: str
    direction: Literal["lower", "higher"]
    decimals: int                     # shown digits after the point, after scaling
    scale: float = 1.0                # shown value = recorded value * scale (CSV keeps raw)
    # Shown in a Markdown / LaTeX table only when one of its rows has a value (or a skip) for
    # it: metrics that only some methods have (mCSD / mOCD) would else be a column of 'n/a'.
    optional: bool = False

    @property
    def arrow(self) -> str:
        return "↓" if self.direction == "lower" else "↑"

    @property
    def latex_arrow(self) -> str:
        return r"$\downarrow$" if self.direction == "lower" else r"$\uparrow$"

    def better(self, a: float, b: float) -> bool:
        return a < b if self.direction == "lower" else a > b


METRIC_COLUMNS: tuple[MetricColumn, ...] = (
    MetricColumn("fid", "fid", None, "fid", "FID", "FID", "lower", 2),
    # KID values are ~1e-2; papers print them x10^3, and so do the tables (the CSV keeps raw).
    MetricColumn("kid", "kid", None, "kid", "KID×10³", r"KID$\times10^3$", "lower", 2, 1e3),
    MetricColumn("miou", "miou", "real_miou", "miou", "mIoU", "mIoU", "higher", 2),
    MetricColumn("accuracy", "accuracy", "real_accuracy", "accuracy", "acc", "acc.", "higher", 2),
    MetricColumn("lpips_diversity", "lpips_diversity", None, "lpips", "LPIPS", "LPIPS",
                 "higher", 3),
    # GroupDNet's class-wise control (evaluators/classwise.py); 'n/a' for other methods.
    MetricColumn("mcsd", "mcsd", None, None, "mCSD", "mCSD", "higher", 3, optional=True),
    MetricColumn("mocd", "mocd", None, None, "mOCD", "mOCD", "lower", 3, optional=True),
    # Opt-in feature-space metrics (protocol 'features:'); CMMD is already x1000 (its paper's).
    MetricColumn("fd_dinov2", "fd_dinov2", None, None, "FD_DINOv2", r"FD$_\text{DINOv2}$",
                 "lower", 2, optional=True),
    MetricColumn("fd_clip", "fd_clip", None, None, "FD_CLIP", r"FD$_\text{CLIP}$", "lower", 2,
                 optional=True),
    MetricColumn("cmmd", "cmmd", None, None, "CMMD", "CMMD", "lower", 3, optional=True),
    MetricColumn("precision", "precision", None, None, "precision", "precision", "higher", 3,
                 optional=True),
    MetricColumn("recall", "recall", None, None, "recall", "recall", "higher", 3, optional=True),
    MetricColumn("density", "density", None, None, "density", "density", "higher", 3,
                 optional=True),
    MetricColumn("coverage", "coverage", None, None, "coverage", "coverage", "higher", 3,
                 optional=True),
)

# The LPIPS trunk a table's reproduced rows used (protocol diversity.net), named in its header.
LPIPS_BACKBONES = {"alex": "AlexNet", "vgg": "VGG"}


def column_title(col: MetricColumn, table, *, latex: bool = False) -> str:
    """The header of ``col`` in one table (a leaderboard ProtocolTable, None: published numbers
    only): LPIPS names its backbone, 'LPIPS (AlexNet)'; published rows keep their papers' own,
    named in their sources."""
    title = col.latex_title if latex else col.title
    if col.key != "lpips_diversity":
        return title
    if table is None:
        return f"{title} (papers' backbones)"
    net = getattr(table, "lpips_net", None)
    return f"{title} ({LPIPS_BACKBONES.get(net, net) if net else 'backbone not recorded'})"

COLUMNS_BY_KEY = {c.key: c for c in METRIC_COLUMNS}

# The evaluators define which way each metric is better; the columns must agree with them.
for _c in METRIC_COLUMNS:
    if METRICS[_c.record_key]["direction"] != _c.direction:
        raise AssertionError(f"column {_c.key}: direction {_c.direction} disagrees with "
                             f"harness.core.records.METRICS")
