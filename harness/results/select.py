"""Pick part of the leaderboard: `leaderboard --dataset D --protocol P --methods a,b`.

The files results/leaderboard.{csv,md,tex} always hold every record (a filter never drops rows
from them); a selection decides what is printed, what `--paper` writes and what `report` shows.
Methods match spelling-insensitively ('cc-fpse' == 'ccfpse' == 'CC-FPSE'), so a filter picks
the published rows of the same method too; an external row matches by its label.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from harness.results.external import external_root
from harness.results.leaderboard import Leaderboard, build_tables
from harness.results.published import (DEFAULT_PUBLISHED_CSV, PublishedRow, dataset_key,
                                       load_published)
from harness.results.run_info import RunInfo, run_info
from harness.results.store import Record, Reporter, collect_records


class SelectionError(ValueError):
    """A filter that matches nothing; the message lists what there is."""


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (text or "").split(",") if p.strip())


@dataclass(frozen=True)
class Selection:
    datasets: tuple[str, ...] = ()       # empty: all
    protocols: tuple[str, ...] = ()      # protocol names or ids
    methods: tuple[str, ...] = ()

    @classmethod
    def parse(cls, dataset: str | None = None, protocol: str | None = None,
              methods: str | None = None) -> "Selection":
        return cls(_split(dataset), _split(protocol), _split(methods))

    def keeps_dataset(self, name: str) -> bool:
        return not self.datasets or dataset_key(name) in {dataset_key(d) for d in self.datasets}

    def keeps_method(self, *names: str | None) -> bool:
        wanted = {dataset_key(m) for m in self.methods}
        return not self.methods or any(n and dataset_key(n) in wanted for n in names)

    def keeps_record(self, r: Record) -> bool:
        if not self.keeps_dataset(r.dataset):
            return False
        if self.protocols and not ({r.protocol_name, r.protocol_id, r.table_id}
                                   & set(self.protocols)):
            return False
        return self.keeps_method(r.method, r.variant)

    def keeps_published(self, p: PublishedRow) -> bool:
        return self.keeps_dataset(p.dataset) and self.keeps_method(p.method, p.label)


@dataclass
class Selected:
    board: Leaderboard
    records: list[Record]
    published: list[PublishedRow]
    infos: dict[str, RunInfo] = field(default_factory=dict)   # run id / label -> RunInfo

    def info_of(self, run_ids: Iterable[str]) -> RunInfo | None:
        for rid in run_ids:
            if rid in self.infos:
                return self.infos[rid]
        return None


def record_id(r: Record) -> str:
    """What identifies a record's run in a row: its run id, else its label (image folders)."""
    return r.run_id or r.variant or r.method or r.source.parent.name


def select(runs_dirs: Iterable[str | Path], results_dir: str | Path, selection: Selection, *,
           published: bool = True, problems: list[str] | None = None) -> Selected:
    """Records under ``runs_dirs`` + the external rows of ``results_dir``, and the published
    numbers, filtered by ``selection``; an empty result is an error naming what exists."""
    paths = [Path(p) for p in runs_dirs if Path(p).exists()]
    ext = external_root(results_dir)
    if ext.is_dir():
        paths.append(ext)
    records = collect_records(paths, problems=problems)
    local = Path(results_dir) / "published.csv"
    pub = (load_published(local if local.is_file() else DEFAULT_PUBLISHED_CSV)
           if published else [])
    kept = [r for r in records if selection.keeps_record(r)]
    kept_pub = [p for p in pub if selection.keeps_published(p)
                and not (selection.protocols and not kept)]
    if not kept and not kept_pub:
        have = sorted({f"{r.dataset}/{r.protocol_name or r.protocol_id}/{r.method or r.variant}"
                       for r in records})
        raise SelectionError(
            f"no record matches dataset={','.join(selection.datasets) or 'any'} "
            f"protocol={','.join(selection.protocols) or 'any'} "
            f"methods={','.join(selection.methods) or 'any'}; recorded (dataset/protocol/method): "
            f"{', '.join(have) or 'none'}")
    board = build_tables(kept, kept_pub, warn=Reporter(problems))
    infos = {record_id(r): run_info(r) for r in kept}
    return Selected(board, kept, kept_pub, infos)


def row_records(sel: Selected, table_id: str, row) -> list[Record]:
    """The records behind one reproduced row of table ``table_id``."""
    variant = row.variant.split(" [")[0] if row.variant else row.variant
    return [r for r in sel.records if r.table_id == table_id and r.method == row.method
            and r.variant == variant and r.inference == row.inference]


def cell_interval(sel: Selected, table_id: str, row, col) -> tuple[float, float] | None:
    """The recorded interval of one cell (raw units), if any: an ``interval`` the leaderboard
    put on the cell, else the bootstrap ``ci95`` of a single-run row's record."""
    cell = row.cells[col.key]
    for name in ("interval", "ci", "ci95"):
        iv = getattr(cell, name, None)
        if isinstance(iv, (tuple, list)) and len(iv) == 2 and all(
                isinstance(v, (int, float)) for v in iv):
            return float(iv[0]), float(iv[1])
    recs = row_records(sel, table_id, row) if row.kind == "reproduced" else []
    if len(recs) != 1:
        return None
    m = (recs[0].raw.get("metrics") or {}).get(col.record_key)
    iv = m.get("ci95") if isinstance(m, dict) else None
    if isinstance(iv, list) and len(iv) == 2 and all(isinstance(v, (int, float)) for v in iv):
        return float(iv[0]), float(iv[1])
    return None


def row_info(sel: Selected, table_id: str, row) -> RunInfo | None:
    recs = row_records(sel, table_id, row)
    return sel.infos.get(record_id(recs[0])) if recs else None


def table_fields(sel: Selected, table_id: str) -> dict:
    """The protocol fields recorded with the table's records."""
    for r in sel.records:
        if r.table_id == table_id:
            proto = r.raw.get("protocol")
            if isinstance(proto, dict) and isinstance(proto.get("fields"), dict):
                return proto["fields"]
    return {}
