"""`leaderboard --paper FILE`: LaTeX tables ready to ``\\input`` into a paper.

Unlike results/leaderboard.tex (every internal detail, for the record), a paper table holds only
what a reader needs: the methods' display names with what was run under them (steps, batch,
resolution), one column per metric with its direction arrow, the best reproduced value in bold,
recorded intervals, the protocol written out in the caption, and the published numbers with their
caveats as footnotes. No file paths, run ids, hashes beyond the protocol's short one, or error
text. Needs ``\\usepackage{booktabs}`` only. A table whose estimated width exceeds one column of
a two-column paper (about 240 pt) becomes ``table*``.
"""
from __future__ import annotations

import logging
import re

from harness.results.columns import METRIC_COLUMNS, MetricColumn
from harness.results.leaderboard import Cell, ProtocolTable, Row, display_value, note_letter
from harness.results.protocol_text import protocol_words
from harness.results.run_info import display_name
from harness.results.select import Selected, cell_interval, row_info, table_fields

LOG = logging.getLogger("harness.results")

OWN_PROTOCOL = "measured under its paper's own protocol"
COLUMN_PT = 240.0          # \columnwidth of a two-column paper (ACL / CVPR / IEEE: 237-241 pt)
# \footnotesize (8 pt Computer Modern): digits are 4.25 pt wide; letters ~4 pt on average.
CHAR_PT = 4.25
SEP_PT = 6.0               # 2 x \tabcolsep (3 pt)

_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                "^": r"\textasciicircum{}", "×": r"$\times$", "±": r"$\pm$", "−": "-",
                "→": r"$\to$", "≈": r"$\approx$", "–": "--", "—": "---"}


DATASET_NAMES = {"cityscapes": "Cityscapes", "ade20k": "ADE20K", "coco-stuff": "COCO-Stuff",
                 "cocostuff": "COCO-Stuff", "synthetic": "Synthetic scenes"}


def tex(text: str) -> str:
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in str(text))


def _safe_reason(reason: str | None) -> str | None:
    """A recorded reason is printed only when it is short prose: never a path, URL, exception or
    network error text."""
    if not reason or len(reason) > 90:
        return None
    if re.search(r"[/\\]|https?:|Errno|error|Error|service|\.pth|\.pt\b|\.py\b", reason):
        return None
    return reason


def cell_note(cell: Cell) -> str | None:
    if cell.status == "skipped" and cell.reason and "on request" in cell.reason:
        return "not computed (skipped on request)"
    if cell.status == "skipped":
        return "not computed in this run (the metric's model weights were not available)" \
            if cell.reason and re.search(r"weight|offline|not found|download", cell.reason, re.I) \
            else "not computed in this run"
    if cell.status == "n/a":
        reason = _safe_reason(cell.reason)
        return f"not applicable ({reason})" if reason else "not applicable to this method"
    if cell.partial:
        return f"mean over the {cell.n_ok} of {cell.n_total} runs that have this metric"
    return None


class _Notes:
    def __init__(self) -> None:
        self.texts: list[str] = []

    def mark(self, text: str) -> str:
        if text not in self.texts:
            self.texts.append(text)
        return rf"\textsuperscript{{{note_letter(self.texts.index(text))}}}"


def _shown(table: ProtocolTable | None, published: tuple[Row, ...]) -> list[MetricColumn]:
    rows = list(table.rows if table else ()) + list(published)
    return [c for c in METRIC_COLUMNS
            if any(r.cells[c.key].status in ("ok", "skipped") for r in rows)]


def _value(col: MetricColumn, cell: Cell, interval: tuple[float, float] | None,
           notes: _Notes) -> tuple[str, int]:
    """(LaTeX, estimated characters) of one cell."""
    if cell.status != "ok":
        text = cell_note(cell)
        mark = notes.mark(text) if text else ""
        return "--" + mark, 3
    shown = cell.text if cell.text is not None else display_value(col, cell.mean)
    body = rf"\textbf{{{shown}}}" if cell.best else shown
    chars = len(shown)
    if cell.std is not None and cell.text is None:
        body += rf"$\pm${display_value(col, cell.std)}"
        chars += 1 + len(display_value(col, cell.std))
    mark = notes.mark(cell_note(cell)) if cell.partial else ""
    if interval is not None:
        # the interval under the value: one column stays as narrow as its widest number
        lo, hi = (display_value(col, v) for v in interval)
        chars = max(chars, int(0.8 * (len(lo) + len(hi) + 4)))
        return (rf"\begin{{tabular}}[t]{{@{{}}r@{{}}}}{body}{mark}\\[-1pt]"
                rf"{{\scriptsize[{lo}, {hi}]}}\end{{tabular}}"), chars
    return body + mark, chars


def _label(name: str, sub: str | None, notes_mark: str = "", italic: bool = False) -> str:
    head = (rf"\textit{{{tex(name)}}}" if italic else tex(name)) + notes_mark
    if not sub:
        return head
    return rf"\begin{{tabular}}[t]{{@{{}}l@{{}}}}{head}\\[-1pt]{{\scriptsize {tex(sub)}}}" \
           r"\end{tabular}"


def paper_table(sel: Selected, dataset: str, table: ProtocolTable | None,
                published: tuple[Row, ...]) -> str:
    notes = _Notes()
    columns = _shown(table, published)
    body: list[list[str]] = []
    widths: list[list[int]] = []
    tid = table.protocol_id if table else ""
    for row in (table.rows if table else ()):
        info = row_info(sel, tid, row)
        if info is not None and info.external:
            name, sub = (row.variant or row.label), "released images, evaluated here"
        else:
            name = display_name(row.method or row.label)
            if row.inference == "encoded":
                name += " (encoded style)"
            sub = info.short_budget if info is not None else None
        marks = "".join(notes.mark(_plain_note(t)) for t in row.record_notes)
        cells = [_label(name, sub, marks)]
        w = [max(len(name) + 2, int(0.75 * len(sub or "")))]
        for col in columns:
            v, chars = _value(col, row.cells[col.key], cell_interval(sel, tid, row, col), notes)
            cells.append(v)
            w.append(chars + 1)
        body.append(cells)
        widths.append(w)
    real = table.real if table is not None else None
    real_row = None
    if real is not None and any(real.cells[c.key].status == "ok" for c in columns):
        real_row = [r"\textit{Real images}" + notes.mark(
            "Real images: the protocol's segmenter on the real images, the mIoU / accuracy a "
            "perfect generator could reach; not ranked.")]
        real_row += [display_value(c, real.cells[c.key].mean)
                     if real.cells[c.key].status == "ok" else "" for c in columns]
    pub_rows: list[list[str]] = []
    for row in published:
        text = f"{row.label}: {row.protocol_note or OWN_PROTOCOL}." \
               f" Source: {row.source}."
        mark = notes.mark(_plain_note(text))
        name, _, sub = row.label.partition(" (")
        sub = f"({sub}" if sub else None
        cells = [_label(name, sub, mark, italic=True)]
        w = [max(len(name) + 2, int(0.75 * len(sub or "")))]
        for col in columns:
            cell = row.cells[col.key]
            cells.append(rf"\textit{{{cell.text}}}" if cell.status == "ok" and cell.text else "--")
            w.append(len(cell.text or "--") + 1)
        pub_rows.append(cells)
        widths.append(w)
    head = ["Method"] + [f"{c.latex_title}{c.latex_arrow}" for c in columns]
    col_chars = [max([len("Method")] + [w[0] for w in widths])]
    for i, c in enumerate(columns, start=1):
        col_chars.append(max([len(re.sub(r"\$.*?\$|\\\w+", "", c.latex_title)) + 2] +
                             [w[i] for w in widths]))
    est = sum(col_chars) * CHAR_PT + SEP_PT * (len(col_chars) - 1)
    env = "table" if est <= COLUMN_PT - 20 else "table*"   # margin: the estimate is rough
    LOG.debug("paper table %s: estimated width %.0f pt -> %s", tid, est, env)

    fields = table_fields(sel, tid) if table else {}
    dataset = DATASET_NAMES.get(dataset.lower(), dataset)
    if table is not None:
        words = protocol_words(fields, table.n_images)
        caption = (f"{tex(dataset)} under protocol \\texttt{{{tex(table.protocol_name or tid)}}} "
                   f"(hash {tex((table.protocol_hash or '?')[:12])}): {tex(words)}. Bold: best "
                   "reproduced value per column. Under each name: the training budget "
                   "(optimiser steps, batch, training resolution).")
    else:
        caption = (f"{tex(dataset)}: published numbers only, each measured under its "
                   "paper's own protocol.")
    if published and table is not None:
        caption += " Italic rows: published numbers under the papers' own protocols (not ranked)."
    label = "tab:" + re.sub(r"[^A-Za-z0-9:-]+", "-", f"{dataset}-{tid or 'published'}")
    out = [rf"\begin{{{env}}}[t]", r"\centering", r"\footnotesize",
           r"\setlength{\tabcolsep}{3pt}", rf"\caption{{{caption}}}", rf"\label{{{label}}}",
           r"\begin{tabular}{@{}l" + "r" * len(columns) + "@{}}", r"\toprule",
           " & ".join(head) + r" \\", r"\midrule"]
    out += [" & ".join(c) + r" \\" for c in body]
    if real_row:
        out += [r"\midrule", " & ".join(real_row) + r" \\"]
    if pub_rows:
        out.append(r"\midrule")
        out += [" & ".join(c) + r" \\" for c in pub_rows]
    out += [r"\bottomrule", r"\end{tabular}"]
    if notes.texts:
        out += [r"\par\smallskip", r"\begin{minipage}{\linewidth}\scriptsize\raggedright"]
        out += [rf"\textsuperscript{{{note_letter(i)}}}\,{tex(t)}\par"
                for i, t in enumerate(notes.texts)]
        out.append(r"\end{minipage}")
    out.append(rf"\end{{{env}}}")
    return "\n".join(out) + "\n"


def _plain_note(text: str) -> str:
    """Record notes and sources may name files; keep the prose, drop path-like words."""
    words = [w for w in text.split() if not re.search(r"[/\\].*[/\\]|\.pth?\b|https?:", w)]
    return " ".join(words)


def to_paper_latex(sel: Selected) -> str:
    """Every selected (dataset, protocol) table; published-only datasets get their own table."""
    out = ["% generated by `python -m harness leaderboard --paper`; needs \\usepackage{booktabs}."]
    for section in sel.board.sections:
        if section.tables:
            for i, t in enumerate(section.tables):
                out.append(paper_table(sel, section.dataset, t, section.published))
        elif section.published:
            out.append(paper_table(sel, section.dataset, None, section.published))
    return "\n".join(out)
