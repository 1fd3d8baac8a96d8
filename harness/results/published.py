"""The papers' numbers (``results/published.csv``): read and validated strictly.

Unlike metrics.json files (many, machine-written, read forgivingly), this is one hand-edited file
that ships with the project, so any problem is an error naming the line and column. Values are
kept as written ("71.8" stays "71.8"): a paper's precision is part of what it reported.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

from harness.core.config import CONFIGS_ROOT
from harness.core.env import REPO_ROOT

DEFAULT_PUBLISHED_CSV = REPO_ROOT / "results" / "published.csv"
PROTOCOLS_DIR = CONFIGS_ROOT / "protocols"

VALUE_COLUMNS = ("fid", "kid", "miou", "accuracy", "lpips")
TEXT_COLUMNS = ("dataset", "method", "label", "source", "protocol_note")
COLUMNS = ("dataset", "method", "label", *VALUE_COLUMNS, "source", "protocol_note")
REQUIRED = ("dataset", "method", "label", "source")
# The protocol (configs/protocols/<name>.yaml) the number was measured under. Optional in the
# header so older files still load (their rows count as "protocol unknown"); every row of the
# shipped results/published.csv names one (tests/test_protocols_named.py).
OPTIONAL_COLUMNS = ("protocol",)


class PublishedError(ValueError):
    """results/published.csv is malformed; the message names the file, line and column."""


@dataclass(frozen=True)
class PublishedRow:
    dataset: str
    method: str
    label: str                         # shown in tables, e.g. "SPADE (paper)"
    values: dict[str, str]             # VALUE_COLUMNS key -> number as written (absent: not
                                       # reported)
    source: str                        # paper / table / where the number was taken from
    protocol_note: str                 # what is known about how it was measured
    line: int                          # line in the CSV (for messages)
    protocol: str | None = None        # the named protocol it was measured under, if known

    def value(self, column: str) -> float | None:
        text = self.values.get(column)
        return float(text) if text else None


def dataset_key(name: str) -> str:
    """Spelling-insensitive dataset name: 'COCO-Stuff', 'coco_stuff', 'cocostuff' match."""
    return "".join(ch for ch in name.lower() if ch.isalnum())


def load_published(path: str | Path) -> list[PublishedRow]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PublishedError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    missing = [c for c in COLUMNS if c not in header]
    unknown = [c for c in header if c not in COLUMNS + OPTIONAL_COLUMNS]
    if missing or unknown:
        raise PublishedError(
            f"{path}: header must be {','.join(COLUMNS)}"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; unknown {', '.join(unknown)}" if unknown else ""))
    rows: list[PublishedRow] = []
    seen: dict[tuple[str, str], int] = {}
    for raw in reader:
        i = reader.line_num
        if None in raw or any(v is None for v in raw.values()):
            raise PublishedError(f"{path}, line {i}: expected {len(COLUMNS)} fields "
                                 "(quote values that contain commas)")
        raw = {k: v.strip() for k, v in raw.items()}
        protocol = raw.get("protocol") or None
        if protocol is not None and not (PROTOCOLS_DIR / f"{protocol}.yaml").is_file():
            raise PublishedError(f"{path}, line {i}, column 'protocol': {protocol!r} is not a "
                                 f"protocol in {PROTOCOLS_DIR} (`python -m harness list "
                                 "protocols` lists them; leave the cell empty when unknown)")
        for c in REQUIRED:
            if not raw[c]:
                raise PublishedError(f"{path}, line {i}: column {c!r} is empty")
        values = {}
        for c in VALUE_COLUMNS:
            if not raw[c]:
                continue
            try:
                number = float(raw[c])
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                raise PublishedError(f"{path}, line {i}, column {c!r}: {raw[c]!r} is not a "
                                     "number (leave the cell empty when not reported)")
            values[c] = raw[c]
        if not values:
            raise PublishedError(f"{path}, line {i}: no value in any of {', '.join(VALUE_COLUMNS)}")
        ident = (dataset_key(raw["dataset"]), raw["label"])
        if ident in seen:
            raise PublishedError(f"{path}, line {i}: dataset {raw['dataset']!r} and label "
                                 f"{raw['label']!r} repeat line {seen[ident]}")
        seen[ident] = i
        rows.append(PublishedRow(raw["dataset"], raw["method"], raw["label"], values,
                                 raw["source"], raw["protocol_note"], i, protocol))
    return rows
