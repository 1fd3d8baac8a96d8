"""Where a published number goes in a table: beside the reproduced ones only under its protocol.

Every row of ``results/published.csv`` names the protocol it was measured under (a file in
``configs/protocols/``, e.g. ``spade-2019-cityscapes``). In the table of protocol P:

- published rows measured under P itself (same protocol id) are labelled ``same protocol`` and
  come first: those numbers can be read against the reproduced ones;
- every other published row is labelled with its own protocol and a footnote spells out how that
  protocol differs from P, field by field (``segmentation.accuracy_ignored_pixels:
  count-as-wrong there, exclude here``), or says that the difference is unknown;
- rows of a CSV without the ``protocol`` column stay as they were (the table's general caveat:
  measured under the papers' own protocols).

Published rows are never ranked either way (formats.py keeps them below the divider).
"""
from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import Any

from harness.results.leaderboard import ProtocolTable, Row, note_letter

SAME = "same protocol"
# Identity sub-fields that repeat what the file name already says.
_IDENTITY_DETAIL = ("key", "sha256", "sha256_prefix", "name", "label_space", "files")


@lru_cache(maxsize=None)
def _protocol(name: str):
    """The named protocol from configs/protocols (None when there is none, or it is broken)."""
    from evaluators.protocol import load_protocol
    from harness.core.config import ConfigError
    try:
        return load_protocol(name)
    except ConfigError:
        return None


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            if k in _IDENTITY_DETAIL and prefix.rsplit(".", 1)[-1] in (
                    "weights", "backbone", "segmenter_identity"):
                continue
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: data}


def _fields(protocol) -> dict[str, Any]:
    data = protocol.fields()
    data.pop("description", None)
    data.pop("name", None)
    data.get("fid", {}).setdefault("flavour", "torch-fidelity")  # hashed only when not default
    return _flatten(data)


def _base_id(table_id: str) -> str:
    """The protocol id of a table id (without '@data-...' and '+unverified-...')."""
    return table_id.split("@", 1)[0].split("+", 1)[0]


def protocol_difference(theirs: str, table: ProtocolTable) -> str:
    """One sentence: how the published rows' protocol ``theirs`` differs from ``table``'s."""
    here = table.protocol_name or table.protocol_id
    other = _protocol(theirs)
    mine = _protocol(table.protocol_name) if table.protocol_name else None
    if other is None:
        return f"{theirs}: not a protocol in configs/protocols; differences from {here} unknown"
    if mine is None or mine.id != _base_id(table.protocol_id):
        return (f"{theirs} (published rows' protocol) vs this table's {table.protocol_id}: the "
                "table's protocol is not the file of that name in configs/protocols, so the "
                "fields cannot be compared here")
    a, b = _fields(other), _fields(mine)
    diffs = [f"{k}: {a.get(k, 'absent')} there, {b.get(k, 'absent')} here"
             for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    extra = []
    if "+" in table.protocol_id:
        extra.append("this table's numbers used unverified weights")
    if "@" in table.protocol_id:
        extra.append("this table scores a folder dataset, not the paper's data")
    text = "; ".join(diffs + extra) or "same fields, another name"
    return f"{theirs} (published rows' protocol) differs from {table.protocol_id}: {text}"


def place_published(table: ProtocolTable | None, published: tuple[Row, ...]
                    ) -> tuple[ProtocolTable | None, tuple[Row, ...]]:
    """The table with the difference footnotes added, and its published rows: same-protocol
    rows first (labelled), the others labelled with their protocol and a footnote letter."""
    if not published:
        return table, published
    if table is None:
        return None, tuple(replace(r, label=f"{r.label} · {r.published_protocol}")
                           if r.published_protocol else r for r in published)
    same, other = [], []
    notes = list(table.notes)
    for row in published:
        theirs = row.published_protocol
        if theirs is None:   # a file without the column: the general caveat below covers it
            other.append(row)
            continue
        proto = _protocol(theirs)
        if proto is not None and proto.id == table.protocol_id:   # exact: no suffixes either
            same.append(replace(row, label=f"{row.label} · {SAME}"))
            continue
        text = protocol_difference(theirs, table)
        if text not in notes:
            notes.append(text)
        other.append(replace(row, label=f"{row.label} · {theirs}",
                             label_notes=(note_letter(notes.index(text)),)))
    return replace(table, notes=tuple(notes)), tuple(same + other)
