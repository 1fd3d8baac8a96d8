"""Evaluation records -> leaderboard tables (pure functions; writing lives in formats/build).

Grouping, in order:

- one *section* per dataset (spelling-insensitive: 'coco-stuff' == 'cocostuff');
- one *table* per protocol id inside it: numbers under different protocols are never averaged,
  ranked or put in one table; for datasets that are whatever a folder holds (``folder``) the
  table is keyed by the protocol id AND the evaluated split's content fingerprint (shown short,
  ``<protocol id>@data-<12 hex>``), so two different folders never share a table; in the other
  tables a row whose data fingerprint differs from the rest of its table gets a footnote;
- one *row* per (method, variant, inference) inside a table, aggregating every run of it:
  several runs (e.g. training seeds) -> mean and sample std over the runs ("runs");
  a single run -> its value, with the sample std over its generation seeds when it recorded
  several ("seeds");
- one *real-images row* per table: the segmenter on the real images (the mIoU / accuracy upper
  bound of that protocol), never ranked;
- the published numbers of the dataset, as their own block, never ranked and never given a
  protocol id.

Best per column (bold) is decided on the value as displayed, among reproduced rows only, when at
least two rows have a value; ties are all bold. Every other value whose bootstrap interval
overlaps the best value's interval is marked as not distinguishable from it (``Cell.tied``; rows
of several runs carry no interval and are never marked); see docs/statistics.md.
"""
from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Mapping

from harness.results.columns import METRIC_COLUMNS, MetricColumn
from harness.results.published import PublishedRow, dataset_key
from harness.results.store import Metric, Record

LOG = logging.getLogger("harness.results")

REAL_LABEL = "Real images (segmenter upper bound)"
IMAGES_LABEL = "(image folder)"
# Real-image scores of one protocol are deterministic; larger disagreement means a mixed-up cache.
REAL_TOLERANCE = 0.01
UNVERIFIED_TEXT = ("computed with unverified weights (a file whose sha256 differs from the "
                   "published one, HARNESS_ALLOW_UNVERIFIED_WEIGHTS): not the protocol's number")

Warn = Callable[[str], None]


def _log_warning(message: str) -> None:
    LOG.warning("%s", message)


@dataclass(frozen=True)
class Cell:
    status: str                       # "ok" | "skipped" | "n/a" | "absent"
    mean: float | None = None
    std: float | None = None          # spread named by the row's ``spread``
    n_ok: int = 0                     # runs that contributed a value
    n_total: int = 0                  # runs in the row
    reason: str | None = None         # skipped / n/a reason, or what the other runs had
    text: str | None = None           # published: the number exactly as the paper printed it
    best: bool = False
    note: str | None = None           # footnote letter within its table
    unverified: bool = False          # computed with unverified weights (evaluators/unverified.py)
    ci: tuple[float, float] | None = None  # one run's bootstrap interval (docs/statistics.md)
    ci_level: float | None = None
    tied: bool = False                # not distinguishable from the column's best (see mark_best)
    # What the interval covers: "images" (one run's bootstrap over the evaluation images) or
    # "runs" (several runs of one variant, e.g. training seeds: a Student-t interval of the mean).
    ci_over: str | None = None

    @property
    def partial(self) -> bool:
        return self.status == "ok" and self.n_ok < self.n_total


@dataclass(frozen=True)
class Row:
    kind: str                         # "reproduced" | "real" | "published"
    dataset: str
    label: str                        # first column: method (or a fixed label)
    cells: Mapping[str, Cell]         # METRIC_COLUMNS key -> Cell
    protocol_id: str | None = None
    method: str | None = None
    variant: str | None = None
    inference: str | None = None
    n_images: tuple[int | None, ...] = ()
    run_ids: tuple[str, ...] = ()
    train_seeds: tuple[int, ...] = ()
    gen_seeds: tuple[int, ...] = ()
    n_runs: int = 0
    spread: str | None = None         # what ± is over: "runs" | "seeds" | None
    record_notes: tuple[str, ...] = ()  # caveats recorded by the evaluator (e.g. lossy images)
    label_notes: tuple[str, ...] = ()   # footnote letters of record_notes within its table
    source: str | None = None         # published only
    protocol_note: str | None = None  # published only
    budget: str | None = None         # what was run ("8 steps, bs 4, 64 px"; run_info.py)
    published_protocol: str | None = None  # published only: the protocol it was measured under


@dataclass(frozen=True)
class ProtocolTable:
    dataset: str
    protocol_id: str
    protocol_name: str | None
    protocol_hash: str | None
    n_images: tuple[int | None, ...]  # distinct N over the table (one, unless records disagree)
    rows: tuple[Row, ...]             # reproduced rows, stable order
    real: Row | None
    notes: tuple[str, ...] = ()       # footnote texts; notes[i] has letter note_letter(i)
    lpips_net: str | None = None      # protocol diversity.net (the LPIPS header names it)

    @property
    def n_varies(self) -> bool:
        return len(self.n_images) > 1


@dataclass(frozen=True)
class DatasetSection:
    dataset: str
    tables: tuple[ProtocolTable, ...]
    published: tuple[Row, ...]


@dataclass(frozen=True)
class Leaderboard:
    sections: tuple[DatasetSection, ...]
    n_records: int = 0
    spreads: frozenset[str] = field(default_factory=frozenset)  # "runs"/"seeds" used anywhere


def note_letter(i: int) -> str:
    letters = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        letters = chr(ord("a") + r) + letters
    return letters


def display_value(col: MetricColumn, value: float) -> str:
    """The value as every table shows it (scaled, fixed decimals)."""
    return f"{value * col.scale:.{col.decimals}f}"


# --------------------------------------------------------------------------------------------
# rows
# --------------------------------------------------------------------------------------------
def _sort_text(v: str | None) -> tuple[str, str]:
    return ((v or "").lower(), v or "")


def _distinct_n(records: list[Record]) -> tuple[int | None, ...]:
    return tuple(sorted({r.n_images for r in records}, key=lambda v: (v is None, v or 0)))


def _stdev(values: list[float]) -> float | None:
    return statistics.stdev(values) if len(values) >= 2 else None


def _describe_missing(metrics: list[Metric | None]) -> str:
    parts = []
    for m in metrics:
        if m is None:
            parts.append("not recorded")
        elif m.status == "skipped":
            parts.append(f"skipped ({m.reason})" if m.reason else "skipped")
        elif m.status == "n/a":
            parts.append("N/A")
    return ", ".join(sorted(set(parts)))


def aggregate_cell(metrics: list[Metric | None]) -> Cell:
    """One column of one row from the metric of each of its runs (None: run lacks it)."""
    n = len(metrics)
    ok = [m for m in metrics if m is not None and m.status == "ok"]
    if ok:
        unverified = any(getattr(m, "unverified", False) for m in ok)
        if n == 1:
            return Cell("ok", ok[0].value, _stdev(list(ok[0].per_seed)), 1, 1,
                        unverified=unverified, ci=ok[0].ci, ci_level=ok[0].ci_level,
                        ci_over="images" if ok[0].ci is not None else None)
        values = [m.value for m in ok]
        rest = [m for m in metrics if m is None or m.status != "ok"]
        levels = {m.ci_level for m in ok if m.ci_level is not None}
        level = levels.pop() if len(levels) == 1 else 0.95
        ci = runs_interval(values, level)
        return Cell("ok", statistics.fmean(values), _stdev(values), len(ok), n,
                    reason=_describe_missing(rest) if rest else None, unverified=unverified,
                    ci=ci, ci_level=level if ci is not None else None,
                    ci_over="runs" if ci is not None else None)
    present = [m for m in metrics if m is not None]
    if not present:
        return Cell("absent", n_total=n)
    status = "skipped" if any(m.status == "skipped" for m in present) else "n/a"
    reasons = sorted({m.reason for m in present if m.status == status and m.reason})
    return Cell(status, n_total=n, reason="; ".join(reasons) or None)


def runs_interval(values: list[float], level: float) -> tuple[float, float] | None:
    """Student-t interval of the mean over a row's runs (training seeds of one variant):
    mean ± t_{n-1, (1+level)/2} · s / sqrt(n). It covers retraining variation (and each run's
    evaluation noise inside it); with two seeds t is 12.7 at 95 %, so the interval is wide, as
    it should be. None with fewer than two values."""
    n = len(values)
    if n < 2:
        return None
    from scipy.stats import t as student_t
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    half = float(student_t.ppf((1 + level) / 2, n - 1)) * sd / n ** 0.5
    return (mean - half, mean + half)


def dedupe_runs(records: list[Record], warn: Warn = _log_warning) -> list[Record]:
    """Drop repeated copies of one run (same run id), which would shrink the std over runs."""
    seen: dict[str, Record] = {}
    out = []
    for r in records:
        if r.run_id is not None and r.run_id in seen:
            warn(f"{r.source}: evaluation {r.key!r} repeats run {r.run_id!r} already read from "
                 f"{seen[r.run_id].source}; counted once")
            continue
        if r.run_id is not None:
            seen[r.run_id] = r
        out.append(r)
    return out


def reproduced_row(records: list[Record]) -> Row:
    """Aggregate the runs of one (dataset, protocol, method, variant, inference)."""
    first = records[0]
    cells = {c.key: aggregate_cell([r.metrics.get(c.record_key) for r in records])
             for c in METRIC_COLUMNS}
    has_std = any(c.std is not None for c in cells.values())
    spread = ("runs" if len(records) > 1 else "seeds") if has_std else None
    return Row(kind="reproduced", dataset=first.dataset, label=first.method or IMAGES_LABEL,
               cells=cells, protocol_id=first.protocol_id, method=first.method,
               variant=first.variant, inference=first.inference,
               n_images=_distinct_n(records),
               run_ids=tuple(r.run_id for r in records if r.run_id is not None),
               train_seeds=tuple(sorted({r.train_seed for r in records
                                         if r.train_seed is not None})),
               gen_seeds=tuple(sorted({s for r in records for s in r.seeds})),
               n_runs=len(records), spread=spread,
               record_notes=tuple(dict.fromkeys(n for r in records for n in r.notes)))


def real_row(records: list[Record], warn: Warn = _log_warning) -> Row | None:
    """The segmenter on real images of one protocol (None when no record measured it)."""
    cells: dict[str, Cell] = {}
    for col in METRIC_COLUMNS:
        if col.real_key is None:
            cells[col.key] = Cell("absent")
            continue
        metrics = [r.metrics[col.real_key] for r in records if col.real_key in r.metrics]
        ok = [m.value for m in metrics if m.status == "ok"]
        if ok:
            if max(ok) - min(ok) > REAL_TOLERANCE:
                warn(f"protocol {records[0].protocol_id}: {col.real_key} differs between records "
                     f"({min(ok)} .. {max(ok)}) although the protocol fixes it; showing the mean "
                     "— check for stale reference caches")
            # Every record of the protocol scored the same real images with the same resampled
            # indices, so their intervals agree as their values do: show the first one's.
            first = next(m for m in metrics if m.status == "ok")
            cells[col.key] = Cell("ok", statistics.fmean(ok), None, len(ok), len(ok),
                                  ci=first.ci, ci_level=first.ci_level)
        else:
            cells[col.key] = aggregate_cell(metrics) if metrics else Cell("absent")
    if all(c.status == "absent" for c in cells.values()):
        return None
    first = records[0]
    return Row(kind="real", dataset=first.dataset, label=REAL_LABEL, cells=cells,
               protocol_id=first.protocol_id,
               n_images=_distinct_n(records))


def published_row(p: PublishedRow) -> Row:
    cells = {}
    for col in METRIC_COLUMNS:
        text = p.values.get(col.published_key) if col.published_key else None
        cells[col.key] = (Cell("ok", float(text), text=text, n_ok=1, n_total=1) if text
                          else Cell("absent"))
    protocol = getattr(p, "protocol", None)
    note = f"protocol {protocol}; {p.protocol_note}" if protocol else p.protocol_note
    return Row(kind="published", dataset=p.dataset, label=p.label, cells=cells, method=p.method,
               source=p.source, protocol_note=note, published_protocol=protocol)


# --------------------------------------------------------------------------------------------
# per-table decorations
# --------------------------------------------------------------------------------------------
def mark_best(rows: Iterable[Row]) -> tuple[Row, ...]:
    """Bold the best displayed value per column, respecting the direction (>= 2 candidates),
    and mark ``tied`` every other value whose interval overlaps a best value's interval."""
    rows = list(rows)
    best_cols: list[dict[str, bool]] = [{} for _ in rows]
    tied_cols: list[dict[str, bool]] = [{} for _ in rows]
    for col in METRIC_COLUMNS:
        shown = [(i, float(display_value(col, r.cells[col.key].mean)))
                 for i, r in enumerate(rows) if r.cells[col.key].status == "ok"]
        if len(shown) < 2:
            continue
        pick = min if col.direction == "lower" else max
        target = pick(v for _, v in shown)
        for i, v in shown:
            if v == target:
                best_cols[i][col.key] = True
        best_cis = [rows[i].cells[col.key].ci for i, v in shown if v == target]
        for i, v in shown:
            if v != target and indistinguishable(rows[i].cells[col.key].ci, best_cis):
                tied_cols[i][col.key] = True
    return tuple(replace(r, cells={k: replace(c, best=best_cols[i].get(k, False),
                                              tied=tied_cols[i].get(k, False))
                                   for k, c in r.cells.items()})
                 for i, r in enumerate(rows))


def indistinguishable(ci: tuple[float, float] | None,
                      best: list[tuple[float, float] | None]) -> bool:
    """A value is not distinguishable from the best when its bootstrap interval overlaps the
    best value's interval (both recorded). Overlap is a lenient test: two overlapping 95 %
    intervals can still differ significantly in a paired test (`harness compare`), so a mark
    means "not shown to differ by the intervals", never "shown equal"."""
    if ci is None:
        return False
    return any(b is not None and ci[0] <= b[1] and b[0] <= ci[1] for b in best)


def note_text(cell: Cell) -> str | None:
    if cell.status == "skipped":
        return f"skipped: {cell.reason}" if cell.reason else "skipped (no reason recorded)"
    if cell.status == "n/a":
        return f"N/A: {cell.reason}" if cell.reason else "N/A: not applicable (no reason recorded)"
    if cell.partial:
        return f"mean over {cell.n_ok} of {cell.n_total} runs; the other runs: {cell.reason}"
    if cell.unverified:
        return UNVERIFIED_TEXT
    return None


def assign_notes(rows: tuple[Row, ...], real: Row | None
                 ) -> tuple[tuple[Row, ...], Row | None, tuple[str, ...]]:
    """Give each distinct explanation (a row's recorded caveats, skipped / N/A / partial
    cells) a footnote letter, in reading order."""
    notes: list[str] = []

    def letter(text: str) -> str:
        if text not in notes:
            notes.append(text)
        return note_letter(notes.index(text))

    def annotate(row: Row) -> Row:
        label_notes = tuple(letter(t) for t in row.record_notes)
        cells = {}
        for col in METRIC_COLUMNS:
            cell = row.cells[col.key]
            text = note_text(cell)
            if text is not None:
                cell = replace(cell, note=letter(text))
            cells[col.key] = cell
        return replace(row, cells=cells, label_notes=label_notes)

    new_rows = tuple(annotate(r) for r in rows)
    new_real = annotate(real) if real is not None else None
    return new_rows, new_real, tuple(notes)


def usual_data(records: list[Record]) -> str | None:
    """The data fingerprint most records of a table share (None: fewer than two differ)."""
    fps = [r.data_fingerprint for r in records if r.data_fingerprint]
    if len(set(fps)) < 2:
        return None
    return max(sorted(set(fps)), key=fps.count)


def flag_other_data(row: Row, group: list[Record], usual: str | None, warn: Warn) -> Row:
    """A caveat on a row whose runs evaluated other data than the table's usual data: the
    same protocol on different files is not comparable."""
    if usual is None:
        return row
    other = sorted({r.data_fingerprint for r in group
                    if r.data_fingerprint and r.data_fingerprint != usual})
    if not other:
        return row
    text = (f"evaluated on other data than the rest of this table (val fingerprint "
            f"{', '.join(o[:12] for o in other)}, the others {usual[:12]}): not comparable")
    warn(f"protocol {group[0].protocol_id}: {row.label} ({row.variant}) {text}")
    return replace(row, record_notes=(*row.record_notes, text))


# --------------------------------------------------------------------------------------------
# the whole leaderboard
# --------------------------------------------------------------------------------------------
def protocol_table(records: list[Record], warn: Warn = _log_warning) -> ProtocolTable:
    """One table from the records of one (dataset, protocol id)."""
    groups: dict[tuple, list[Record]] = {}
    for r in records:
        # Runs average only when they differ by the training seed alone (same variant hash).
        groups.setdefault((r.method, r.variant, r.variant_hash, r.inference), []).append(r)
    names: dict[tuple, set] = {}
    for method, variant, vhash, inference in groups:
        names.setdefault((method, variant, inference), set()).add(vhash)
    rows = []
    usual = usual_data(records)
    for (method, variant, vhash, inference), g in groups.items():
        row = flag_other_data(reproduced_row(dedupe_runs(g, warn)), g, usual, warn)
        if len(names[(method, variant, inference)]) > 1:
            # Two configurations share a name: tell them apart instead of averaging them.
            row = replace(row, variant=f"{variant} [{(vhash or 'unknown')[:8]}]")
        rows.append(row)
    rows.sort(key=lambda r: (_sort_text(r.method), _sort_text(r.variant), _sort_text(r.inference)))
    first = records[0]
    n_images = _distinct_n(records)
    if len(n_images) > 1:
        warn(f"protocol {first.protocol_id} ({first.dataset}): records disagree on the number of "
             f"images {list(n_images)}; the table shows N per row")
    hashes = sorted({r.protocol_hash for r in records if r.protocol_hash})
    if len(hashes) > 1:
        warn(f"protocol {first.protocol_id}: records carry different hashes {hashes}")
    best_rows = mark_best(rows)
    noted_rows, noted_real, notes = assign_notes(best_rows, real_row(records, warn))
    return ProtocolTable(dataset=first.dataset, protocol_id=first.table_id,
                         protocol_name=first.protocol_name,
                         protocol_hash=hashes[0] if hashes else None, n_images=n_images,
                         rows=noted_rows, real=noted_real, notes=notes,
                         lpips_net=(((first.raw.get("protocol") or {}).get("fields") or {})
                                    .get("diversity") or {}).get("net"))


def build_tables(records: Iterable[Record], published: Iterable[PublishedRow] = (), *,
                 datasets: Iterable[str] | None = None,
                 warn: Warn = _log_warning) -> Leaderboard:
    """The leaderboard of ``records`` (+ ``published`` blocks), optionally for some datasets."""
    wanted = {dataset_key(d) for d in datasets} if datasets is not None else None
    records = sorted((r for r in records
                      if wanted is None or dataset_key(r.dataset) in wanted),
                     key=lambda r: (r.source.as_posix(), r.key))
    published = [p for p in published if wanted is None or dataset_key(p.dataset) in wanted]

    by_dataset: dict[str, dict[str, list[Record]]] = {}
    names: dict[str, str] = {}
    for r in records:
        k = dataset_key(r.dataset)
        names.setdefault(k, r.dataset)
        by_dataset.setdefault(k, {}).setdefault(r.table_id, []).append(r)
    pub_by_dataset: dict[str, list[PublishedRow]] = {}
    for p in published:
        k = dataset_key(p.dataset)
        names.setdefault(k, p.dataset)
        pub_by_dataset.setdefault(k, []).append(p)

    sections = []
    spreads: set[str] = set()
    for k in sorted(names):
        tables = tuple(protocol_table(recs, warn)
                       for _, recs in sorted(by_dataset.get(k, {}).items()))
        for t in tables:
            spreads.update(r.spread for r in t.rows if r.spread)
        pub = tuple(published_row(p) for p in pub_by_dataset.get(k, []))
        sections.append(DatasetSection(names[k], tables, pub))
    return Leaderboard(tuple(sections), n_records=len(records), spreads=frozenset(spreads))
