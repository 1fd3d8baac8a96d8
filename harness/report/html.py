"""`python -m harness report --dataset D`: one self-contained HTML page per dataset.

The page holds, with no network access needed to view it (every image is embedded as a data URI,
no scripts, no external style sheets):

- one leaderboard table per evaluation protocol: the protocol written out in words with its full
  hash, reproduced rows (display name + training budget), the segmenter-on-real-images row, and
  the published numbers beside them (italic, never ranked, with their caveats); intervals and
  spreads where recorded;
- figures: every PNG under ``<results>/figures/`` whose path names the dataset (the `figure`
  verb writes there), and each run's generated samples and latest training sample grid;
- each run's training budget and the command that reproduces it.

Output is deterministic (no timestamps): the same records give the same bytes.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Iterable

from harness.results.columns import METRIC_COLUMNS
from harness.results.formats import published_caveat
from harness.results.leaderboard import Cell, display_value, note_letter
from harness.results.paper_latex import DATASET_NAMES, OWN_PROTOCOL, cell_note
from harness.results.protocol_text import protocol_words
from harness.results.published import dataset_key
from harness.results.run_info import RunInfo, display_name
from harness.results.select import (Selected, cell_interval, record_id, row_info,
                                    table_fields)

MAX_SAMPLES_PER_RUN = 6           # generated images shown per run (the page stays small)
MAX_IMAGE_BYTES = 4_000_000       # larger files are linked relatively, not embedded

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:1100px;padding:0 1em;color:#1a1a1a;background:#fff}
h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{padding:.25em .6em;border-bottom:1px solid #e4e4e4;text-align:right;vertical-align:top}
td[data-col]{white-space:nowrap}
th:first-child,td:first-child{text-align:left}
table.runs td,table.runs th{text-align:left}
thead th{border-bottom:2px solid #444}
tr.published td{font-style:italic;color:#555}tr.real td{color:#2a5a8a}
td.best{font-weight:bold}.budget{display:block;font-size:.8em;color:#666}
.iv{display:block;font-size:.75em;color:#666}.protocol{color:#333;font-size:.95em}
code{font-size:.85em;background:#f3f3f3;padding:.1em .3em;word-break:break-all}
figure{display:inline-block;margin:.5em;vertical-align:top}
figure img{max-width:100%;image-rendering:pixelated;border:1px solid #ddd}
figcaption{font-size:.8em;color:#444;max-width:520px}
.strip img{width:96px;height:auto;margin-right:2px}
ol.notes{font-size:.85em;color:#444}
"""


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def image_tag(path: Path, page_dir: Path, alt: str, cls: str = "") -> str:
    """<img> with the file embedded as a data URI (or a relative link when too large)."""
    data = path.read_bytes()
    attr = f' class="{cls}"' if cls else ""
    if len(data) <= MAX_IMAGE_BYTES:
        mime = "image/png" if path.suffix.lower() == ".png" else "image/jpeg"
        src = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    else:
        import os
        src = os.path.relpath(path.resolve(), page_dir.resolve())
    return f'<img{attr} src="{esc(src)}" alt="{esc(alt)}">'


def _cell_html(col, cell: Cell, interval, notes: list[str]) -> str:
    cls = ' class="best"' if cell.best else ""
    if cell.status != "ok":
        text = cell_note(cell)
        mark = ""
        if text:
            if text not in notes:
                notes.append(text)
            mark = f"<sup>{note_letter(notes.index(text))}</sup>"
        return f'<td data-col="{col.key}"{cls}>–{mark}</td>'
    shown = cell.text if cell.text is not None else display_value(col, cell.mean)
    if cell.std is not None and cell.text is None:
        shown += f" ± {display_value(col, cell.std)}"
    extra = ""
    if cell.partial:
        text = cell_note(cell)
        if text not in notes:
            notes.append(text)
        extra += f"<sup>{note_letter(notes.index(text))}</sup>"
    if interval is not None:
        lo, hi = (display_value(col, v) for v in interval)
        extra += f' <span class="iv">[{lo}, {hi}]</span>'
    return f'<td data-col="{col.key}"{cls}>{esc(shown)}{extra}</td>'


def _leaderboard_tables(sel: Selected, section) -> list[str]:
    out: list[str] = []
    blocks = [(t, section.published) for t in section.tables] or \
        ([(None, section.published)] if section.published else [])
    for table, published in blocks:
        tid = table.protocol_id if table is not None else ""
        rows = list(table.rows) if table is not None else []
        columns = [c for c in METRIC_COLUMNS
                   if any(r.cells[c.key].status in ("ok", "skipped")
                          for r in rows + list(published))]
        notes: list[str] = []
        if table is not None:
            words = protocol_words(table_fields(sel, tid), table.n_images)
            out.append(f'<h3 id="{esc(tid)}">Protocol {esc(table.protocol_name or tid)}</h3>')
            out.append(f'<p class="protocol">{esc(words)}.<br>Protocol id <code>{esc(tid)}'
                       f'</code>, hash <code>{esc(table.protocol_hash or "not recorded")}</code>'
                       '</p>')
        else:
            out.append("<h3>Published numbers</h3>")
        out.append(f'<table class="leaderboard" data-protocol="{esc(tid)}">')
        out.append("<thead><tr><th>Method</th><th>Inference</th><th>Runs</th>" +
                   "".join(f'<th data-col="{c.key}">{esc(c.title)} {c.arrow}</th>'
                           for c in columns) + "</tr></thead><tbody>")
        for row in rows:
            info = row_info(sel, tid, row)
            if info is not None and info.external:
                name, budget = row.variant or row.label, "external images, evaluated here"
            else:
                name = display_name(row.method or row.label)
                budget = info.budget if info is not None else "budget not recorded"
            marks = ""
            for t in row.record_notes:
                if t not in notes:
                    notes.append(t)
                marks += f"<sup>{note_letter(notes.index(t))}</sup>"
            out.append(f'<tr class="reproduced" data-label="{esc(name)}"><td>{esc(name)}{marks}'
                       f'<span class="budget">{esc(budget)}</span></td>'
                       f"<td>{esc(row.inference or '–')}</td><td>{row.n_runs}</td>" +
                       "".join(_cell_html(c, row.cells[c.key],
                                          cell_interval(sel, tid, row, c), notes)
                               for c in columns) + "</tr>")
        if table is not None and table.real is not None and any(
                table.real.cells[c.key].status == "ok" for c in columns):
            out.append('<tr class="real" data-label="Real images"><td>Real images '
                       '<span class="budget">the protocol\'s segmenter on the real images '
                       '(upper bound, not ranked)</span></td><td></td><td></td>' +
                       "".join(f'<td data-col="{c.key}">'
                               f'{esc(display_value(c, table.real.cells[c.key].mean)) if table.real.cells[c.key].status == "ok" else ""}</td>'
                               for c in columns) + "</tr>")
        for row in published:
            note = f"{row.label}: {row.protocol_note or OWN_PROTOCOL}. " \
                   f"Source: {row.source}."
            if note not in notes:
                notes.append(note)
            out.append(f'<tr class="published" data-label="{esc(row.label)}"><td>'
                       f'{esc(row.label)}<sup>{note_letter(notes.index(note))}</sup>'
                       '<span class="budget">published</span></td><td></td><td></td>' +
                       "".join(f'<td data-col="{c.key}">'
                               f'{esc(row.cells[c.key].text) if row.cells[c.key].status == "ok" else "–"}</td>'
                               for c in columns) + "</tr>")
        out.append("</tbody></table>")
        if published:
            out.append(f'<p class="protocol">{esc(published_caveat(tid or None))}.</p>')
        if notes:
            out.append('<ol class="notes" type="a">' +
                       "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ol>")
    return out


def _dataset_figures(results_dir: Path, dataset: str) -> list[Path]:
    root = results_dir / "figures"
    if not root.is_dir():
        return []
    key = dataset_key(dataset)
    return sorted(p for p in root.rglob("*.png")
                  if any(key == dataset_key(part) or key in dataset_key(part)
                         for part in p.relative_to(root).parts))


def _run_images(info: RunInfo) -> tuple[list[Path], Path | None]:
    """(first generated samples, latest training sample grid) of a run."""
    if info.run_dir is None:
        return [], None
    samples = sorted((info.run_dir / "samples").glob("*/*/**/*.png"))[:MAX_SAMPLES_PER_RUN] \
        if (info.run_dir / "samples").is_dir() else []
    grids = sorted((info.run_dir / "train_samples").glob("*.png")) \
        if (info.run_dir / "train_samples").is_dir() else []
    return samples, grids[-1] if grids else None


def render_report(sel: Selected, dataset: str, results_dir: Path, page_dir: Path,
                  command: str) -> str:
    title = DATASET_NAMES.get(dataset.lower(), dataset)
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>sis-harness report: {esc(title)}</title>", f"<style>{CSS}</style>",
           "</head><body>", f"<h1>Semantic image synthesis on {esc(title)}</h1>",
           f"<p>Generated by <code>{esc(command)}</code> from {len(sel.records)} evaluation "
           "record(s). Numbers under different protocols are never in one table; published "
           "numbers were measured under the papers' own protocols.</p>",
           "<h2>Leaderboard</h2>"]
    for section in sel.board.sections:
        out += _leaderboard_tables(sel, section)
    out.append("<h2>Figures</h2>")
    figs = _dataset_figures(results_dir, dataset)
    for f in figs:
        out.append(f"<figure>{image_tag(f, page_dir, f.stem)}<figcaption>"
                   f"{esc(f.relative_to(results_dir).as_posix())}</figcaption></figure>")
    runs = _runs(sel)
    for rid, info in runs:
        samples, grid = _run_images(info)
        if samples:
            out.append(f'<figure class="strip">' +
                       "".join(image_tag(p, page_dir, p.stem) for p in samples) +
                       f"<figcaption>{esc(rid)}: first {len(samples)} generated evaluation "
                       "images</figcaption></figure>")
        if grid is not None:
            out.append(f"<figure>{image_tag(grid, page_dir, grid.stem)}<figcaption>{esc(rid)}: "
                       f"training samples ({esc(grid.stem)})</figcaption></figure>")
    if not figs and not any(any(_run_images(i)) for _, i in runs):
        out.append("<p>No figures yet: <code>python -m harness figure ...</code> writes them "
                   "under results/figures/.</p>")
    out.append("<h2>Runs</h2>")
    out.append('<table class="runs"><thead><tr><th>Run</th><th>Method</th><th>Budget</th>'
               "<th>Command</th></tr></thead><tbody>")
    for rid, info in runs:
        cmd = info.command or ("external images: " + (info.images_dir or "folder not recorded")
                               if info.external else "not recorded")
        method = next((display_name(r.method) for r in sel.records if record_id(r) == rid), "?")
        out.append(f'<tr data-run="{esc(rid)}"><td>{esc(rid)}</td><td>{esc(method)}</td>'
                   f'<td>{esc(info.budget)}</td><td style="text-align:left"><code>{esc(cmd)}'
                   "</code></td></tr>")
    out += ["</tbody></table>", "</body></html>", ""]
    return "\n".join(out)


def _runs(sel: Selected) -> list[tuple[str, RunInfo]]:
    seen: dict[str, RunInfo] = {}
    for r in sel.records:
        rid = record_id(r)
        if rid not in seen:
            seen[rid] = sel.infos[rid]
    return sorted(seen.items())


def write_report(runs_dirs: Iterable[str | Path], results_dir: str | Path, dataset: str, *,
                 out: str | Path | None = None, protocol: str | None = None,
                 methods: str | None = None, command: str = "python -m harness report"
                 ) -> Path:
    from harness.core.io import atomic_write_text
    from harness.results.select import Selection, select

    results_dir = Path(results_dir)
    sel = select(runs_dirs, results_dir, Selection.parse(dataset, protocol, methods))
    path = Path(out) if out else results_dir / f"report-{dataset}.html"
    return atomic_write_text(path, render_report(sel, dataset, results_dir, path.parent,
                                                 command))
