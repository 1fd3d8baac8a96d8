"""Leaderboard -> text: CSV (machine-readable, raw values), LaTeX (booktabs), Markdown.

Pure string renderers with fixed float formatting and no timestamps, so the same records always
give byte-identical files (the snapshot tests rely on this).
"""
from __future__ import annotations

import csv
import io

from harness.results.columns import METRIC_COLUMNS, MetricColumn, column_title
from harness.results.leaderboard import (Cell, DatasetSection, Leaderboard, ProtocolTable, Row,
                                         display_value, note_letter)
from harness.results.training_seeds import HEADER as SEEDS_HEADER, HEADER_TEX as SEEDS_HEADER_TEX
from harness.results.training_seeds import seeds_label

GENERATED_BY = "python -m harness leaderboard"
CSV_FLOAT = "{:.6f}"

SPREAD_MARK = {"runs": "†", "seeds": "‡"}
SPREAD_MARK_TEX = {"runs": r"$^\dagger$", "seeds": r"$^\ddagger$"}
SPREAD_TEXT = {
    "runs": "mean ± sample std (n−1) over runs of the variant (e.g. training seeds); "
            "each run's value is its own mean over generation seeds",
    "seeds": "one run: its value ± sample std (n−1) over its generation seeds",
}
BEST_TEXT = ("bold: best reproduced value of the column as displayed (direction by the arrow; "
             "ties all bold; needs two or more values; published and real-image rows excluded)")
TIED_TEXT = ("≈ and bold: not distinguishable from the column's best: its interval overlaps "
             "the best value's interval (a lenient test; `python -m harness compare` gives the "
             "paired test)")
CI_TEXT = ("[lo, hi]: {level} bootstrap interval of one run over the evaluation images (mIoU, "
           "accuracy: images; LPIPS: label maps; FID, KID: generated images); it does not "
           "cover training-seed variation (docs/statistics.md)")
RUNS_CI_TEXT = ("[lo, hi] on a row of several runs (†): {level} Student-t interval of the mean "
                "over its runs (training seeds), mean ± t·s/√n; it covers retraining variation "
                "(docs/statistics.md)")
ABSENT_TEXT = "not measured / not reported"
REAL_LABEL_MD = "Real images"
REAL_TEXT = ("the protocol's segmenter on the real images: the mIoU / accuracy a perfect "
             "generator could reach; not ranked")


def published_caveat(protocol_id: str | None, published: tuple[Row, ...] = ()) -> str:
    from harness.results.published_placement import SAME
    if protocol_id and any(r.label.endswith(f" · {SAME}") for r in published):
        return (f"published: numbers as printed by the papers, not ranked; rows marked '{SAME}' "
                f"were measured under {protocol_id}'s protocol, the others under the protocol "
                "named in the row (its footnote says how it differs); sources in "
                "results/published.csv")
    against = f"not protocol {protocol_id}" if protocol_id else "not any protocol of this harness"
    return (f"published: numbers as printed by the papers, measured under their own protocols "
            f"({against}); not ranked, sources in results/published.csv")


def _n_text(ns: tuple[int | None, ...]) -> str:
    return "/".join("?" if n is None else str(n) for n in ns)


# --------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------
CSV_HEAD = ["kind", "dataset", "protocol_id", "protocol_name", "protocol_hash", "n", "method",
            "variant", "inference", "label", "n_runs", "run_ids", "train_seeds", "gen_seeds",
            "std_over"]
CSV_TAIL = ["record_notes", "source", "protocol_note"]


def csv_header() -> list[str]:
    metric_cols = [f"{c.key}{suffix}" for c in METRIC_COLUMNS
                   for suffix in ("", "_std", "_n", "_status", "_note", "_ci_lo", "_ci_hi",
                                  "_mark")]
    return CSV_HEAD + metric_cols + CSV_TAIL


def _csv_metric(cell: Cell) -> list[str]:
    if cell.status == "absent":
        return ["", "", "", "", "", "", "", ""]
    if cell.text is not None:          # published: as printed
        return [cell.text, "", "", "ok", "", "", "", ""]
    value = CSV_FLOAT.format(cell.mean) if cell.mean is not None else ""
    std = CSV_FLOAT.format(cell.std) if cell.std is not None else ""
    n = str(cell.n_ok) if cell.status == "ok" else ""
    note = "; ".join(t for t in (cell.reason, "unverified weights" if cell.unverified else None)
                     if t)   # evaluators/unverified.py: the value is marked in the CSV too
    lo, hi = (CSV_FLOAT.format(v) for v in cell.ci) if cell.ci is not None else ("", "")
    mark = "best" if cell.best else ("tied" if cell.tied else "")
    return [value, std, n, cell.status, note, lo, hi, mark]


def _csv_row(row: Row, table: ProtocolTable | None) -> list[str]:
    head = [row.kind, row.dataset,
            table.protocol_id if table else "",
            (table.protocol_name or "") if table else "",
            (table.protocol_hash or "") if table else "",
            _n_text(row.n_images), row.method or "", row.variant or "", row.inference or "",
            row.label, str(row.n_runs) if row.kind == "reproduced" else "",
            ";".join(row.run_ids), ";".join(map(str, row.train_seeds)),
            ";".join(map(str, row.gen_seeds)), row.spread or ""]
    metrics = [v for c in METRIC_COLUMNS for v in _csv_metric(row.cells[c.key])]
    return head + metrics + [" | ".join(row.record_notes), row.source or "",
                             row.protocol_note or ""]


def to_csv(board: Leaderboard) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(csv_header())
    for section in board.sections:
        for table in section.tables:
            for row in table.rows:
                w.writerow(_csv_row(row, table))
            if table.real is not None:
                w.writerow(_csv_row(table.real, table))
        for row in section.published:
            w.writerow(_csv_row(row, None))
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# shared table layout
# --------------------------------------------------------------------------------------------
def _blocks(section: DatasetSection):
    """(table or None, published rows) per rendered table of a section."""
    from harness.results.published_placement import place_published  # same protocol first
    if section.tables:
        return [place_published(t, section.published) for t in section.tables]
    return [place_published(None, section.published)] if section.published else []


def _used_spreads(table: ProtocolTable | None) -> list[str]:
    if table is None:
        return []
    used = {r.spread for r in table.rows if r.spread}
    return [s for s in ("runs", "seeds") if s in used]


def _has_best(table: ProtocolTable | None) -> bool:
    return table is not None and any(c.best for r in table.rows for c in r.cells.values())


def _has_tied(table: ProtocolTable | None) -> bool:
    return table is not None and any(c.tied for r in table.rows for c in r.cells.values())


def _ci_levels(table: ProtocolTable | None, over: str = "images") -> list[str]:
    """The interval levels shown in a table, as text ('95 %'), of intervals over ``over``
    ('images': one run's bootstrap; 'runs': the t-interval over a row's runs)."""
    if table is None:
        return []
    rows = list(table.rows) + ([table.real] if table.real is not None else [])
    levels = sorted({c.ci_level for r in rows for c in r.cells.values()
                     if c.ci is not None and c.ci_level is not None
                     and (c.ci_over or "images") == over})
    return [f"{100 * v:g} %" for v in levels]


def ci_text(col: MetricColumn, cell: Cell) -> str:
    """The interval as every table shows it: '[lo, hi]' in the column's display units."""
    lo, hi = cell.ci
    return f"[{display_value(col, lo)}, {display_value(col, hi)}]"


def _has_absent(table: ProtocolTable | None, published: tuple[Row, ...]) -> bool:
    rows = (list(table.rows) + ([table.real] if table and table.real else [])) if table else []
    return any(c.status == "absent" for r in rows + list(published) for c in r.cells.values())


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------
def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*").replace("_", "\\_")


def _md_cell(col: MetricColumn, cell: Cell, *, italic: bool = False) -> str:
    note = f" [{cell.note}]" if cell.note else ""
    if cell.status == "absent":
        return "—"
    if cell.status == "skipped":
        return f"skipped{note}"
    if cell.status == "n/a":
        return f"N/A{note}"
    if cell.text is not None:
        return f"*{cell.text}*" if italic else cell.text
    value = display_value(col, cell.mean)
    if cell.best:
        value = f"**{value}**"
    elif cell.tied:
        value = f"≈**{value}**"
    if cell.std is not None:
        value += f" ± {display_value(col, cell.std)}"
    if cell.ci is not None:
        value += f" {ci_text(col, cell)}"
    return value + note


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def shown_columns(table: ProtocolTable | None, published: tuple[Row, ...]) -> list[MetricColumn]:
    """The metric columns of one Markdown / LaTeX table: every column, except an optional one
    that no row of the table has a value or a skip for (the CSV keeps every column)."""
    rows = list(published)
    if table is not None:
        rows += list(table.rows) + ([table.real] if table.real is not None else [])
    return [c for c in METRIC_COLUMNS
            if not c.optional or any(r.cells[c.key].status in ("ok", "skipped") for r in rows)]


def _md_table(dataset: str, table: ProtocolTable | None, published: tuple[Row, ...]) -> list[str]:
    out: list[str] = []
    columns = shown_columns(table, published)
    n_col = table is not None and table.n_varies
    if table is None:
        out += [f"### Published numbers only (no reproduced runs of {dataset})", ""]
    else:
        n = "N varies (column N)" if n_col else f"N = {_n_text(table.n_images)}"
        out += [f"### Protocol `{table.protocol_id}` · {n}", ""]
    head = ["Method", "Variant", "Inference", SEEDS_HEADER] + (["N"] if n_col else []) + \
        [f"{column_title(c, table)} {c.arrow}" for c in columns]
    align = [":--"] * 3 + ["--:"] * (1 + int(n_col)) + ["--:"] * len(columns)
    out += [_md_row(head), _md_row(align)]
    width = len(head)
    if table is not None:
        for row in table.rows:
            mark = f" {SPREAD_MARK[row.spread]}" if row.spread else ""
            mark += "".join(f" [{n}]" for n in row.label_notes)
            cells = [_md_escape(row.label) + mark, _md_escape(row.variant or "—") +
                     (f" ({_md_escape(row.budget)})" if row.budget else ""),
                     _md_escape(row.inference or "—"), seeds_label(row)]
            cells += [_n_text(row.n_images)] if n_col else []
            cells += [_md_cell(c, row.cells[c.key]) for c in columns]
            out.append(_md_row(cells))
        if table.real is not None:
            cells = [f"*{_md_escape(table.real.label)}*", "", "", ""] + ([""] if n_col else [])
            cells += [_md_cell(c, table.real.cells[c.key]) for c in columns]
            out.append(_md_row(cells))
    if published:
        if table is not None:
            out.append(_md_row(["*published (papers' own protocols; not ranked)*"]
                               + [""] * (width - 1)))
        for row in published:
            mark = "".join(f" [{n}]" for n in row.label_notes)  # its protocol's difference
            cells = [f"*{_md_escape(row.label)}*{mark}", "", "", ""] + ([""] if n_col else [])
            cells += [_md_cell(c, row.cells[c.key], italic=True) for c in columns]
            out.append(_md_row(cells))
    out.append("")
    notes = [f"- {SPREAD_MARK[s]} {SPREAD_TEXT[s]}" for s in _used_spreads(table)]
    if _has_best(table):
        notes.append(f"- {BEST_TEXT}")
    if _has_tied(table):
        notes.append(f"- {TIED_TEXT}")
    for level in _ci_levels(table):
        notes.append(f"- {CI_TEXT.format(level=level)}")
    for level in _ci_levels(table, "runs"):
        notes.append(f"- {RUNS_CI_TEXT.format(level=level)}")
    if table is not None and table.real is not None:
        notes.append(f"- *{REAL_LABEL_MD}*: {REAL_TEXT}")
    if published:
        notes.append(f"- {published_caveat(table.protocol_id if table else None, published)}")
    if _has_absent(table, published):
        notes.append(f"- —: {ABSENT_TEXT}")
    for i, text in enumerate(table.notes if table else ()):
        notes.append(f"- [{note_letter(i)}] {_md_escape(text)}")
    return out + notes + [""]



def _md_sources(published: tuple[Row, ...]) -> list[str]:
    if not published:
        return []
    out = ["Published rows — where each number comes from and how it was measured:", ""]
    for row in published:
        note = (f" How it was measured: {_md_escape(row.protocol_note)}"
                if row.protocol_note else "")
        out.append(f"- *{_md_escape(row.label)}*: {_md_escape(row.source or '')}.{note}")
    return out + [""]


def to_markdown(board: Leaderboard) -> str:
    out = ["# Leaderboard", "",
           f"<!-- generated by `{GENERATED_BY}` from the recorded runs; do not edit by hand -->",
           "",
           f"{board.n_records} evaluation record(s). One table per (dataset, evaluation "
           "protocol): numbers under different protocol ids are never compared. KID is shown "
           "×10³ (the CSV keeps raw values); mIoU and accuracy are percentages.", ""]
    if not board.sections:
        out += ["No evaluation records and no published numbers matched.", ""]
    for section in board.sections:
        out += [f"## {_md_escape(section.dataset)}", ""]
        for table, published in _blocks(section):
            out += _md_table(section.dataset, table, published)
        out += _md_sources(section.published)
    return "\n".join(out).rstrip("\n") + "\n"


# --------------------------------------------------------------------------------------------
# LaTeX (booktabs)
# --------------------------------------------------------------------------------------------
_TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                "^": r"\textasciicircum{}", "±": r"$\pm$", "×": r"$\times$", "−": "-",
                "—": "---", "–": "--", "·": r"$\cdot$", "√": r"$\surd$", "†": r"\dag{}"}


def tex_escape(text: str) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in text)


def _tex_cell(col: MetricColumn, cell: Cell, *, italic: bool = False) -> str:
    note = f"$^{{{cell.note}}}$" if cell.note else ""
    if cell.status == "absent":
        return "--"
    if cell.status == "skipped":
        return f"skipped{note}"
    if cell.status == "n/a":
        return f"N/A{note}"
    if cell.text is not None:
        return rf"\textit{{{cell.text}}}" if italic else cell.text
    value = display_value(col, cell.mean)
    if cell.best:
        value = rf"\textbf{{{value}}}"
    elif cell.tied:
        value = rf"$\approx$\textbf{{{value}}}"
    if cell.std is not None:
        value += rf"\,$\pm$\,{display_value(col, cell.std)}"
    if cell.ci is not None:
        value += rf"\,{{\scriptsize {ci_text(col, cell)}}}"
    return value + note


def _tex_row(cells: list[str]) -> str:
    return " & ".join(cells) + r" \\"


def _tex_table(dataset: str, table: ProtocolTable | None, published: tuple[Row, ...]) -> list[str]:
    columns = shown_columns(table, published)
    n_col = table is not None and table.n_varies
    ncols = 4 + int(n_col) + len(columns)
    if table is None:
        caption = (f"{tex_escape(dataset)}: published numbers only (no reproduced runs); "
                   "each measured under its paper's own protocol.")
        label = f"tab:leaderboard-{dataset}-published"
    else:
        n = "$N$ varies per row" if n_col else f"$N={_n_text(table.n_images)}$"
        caption = (f"{tex_escape(dataset)}, evaluation protocol "
                   rf"\texttt{{{tex_escape(table.protocol_id)}}} ({n}).")
        label = f"tab:leaderboard-{table.protocol_id}"
    label = "".join(ch if ch.isalnum() or ch in "-:." else "-" for ch in label)
    out = [r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{caption}}}",
           rf"\label{{{label}}}",
           r"\begin{tabular}{lll" + "r" * (1 + int(n_col)) + "r" * len(columns) + "}",
           r"\toprule"]
    head = ["Method", "Variant", "Inference", SEEDS_HEADER_TEX] + (["$N$"] if n_col else []) + \
        [f"{column_title(c, table, latex=True)}~{c.latex_arrow}"
         for c in columns]
    out += [_tex_row(head), r"\midrule"]
    if table is not None:
        for row in table.rows:
            mark = SPREAD_MARK_TEX[row.spread] if row.spread else ""
            mark += "".join(f"$^{{{n}}}$" for n in row.label_notes)
            cells = [tex_escape(row.label) + mark, tex_escape(row.variant or "---") +
                     (f" ({tex_escape(row.budget)})" if row.budget else ""),
                     tex_escape(row.inference or "---"), seeds_label(row)]
            cells += [_n_text(row.n_images)] if n_col else []
            cells += [_tex_cell(c, row.cells[c.key]) for c in columns]
            out.append(_tex_row(cells))
        if table.real is not None:
            cells = [rf"\textit{{{tex_escape(table.real.label)}}}", "", "", ""]
            cells += [""] if n_col else []
            cells += [_tex_cell(c, table.real.cells[c.key]) for c in columns]
            out += [r"\midrule", _tex_row(cells)]
    if published:
        if table is not None:
            out += [r"\midrule", rf"\multicolumn{{{ncols}}}{{l}}{{\textit{{Published "
                                 r"(papers' own protocols; not ranked)}} \\"]
        for row in published:
            mark = "".join(f"$^{{{n}}}$" for n in row.label_notes)  # its protocol's difference
            cells = [rf"\textit{{{tex_escape(row.label)}}}" + mark, "", "", ""] + \
                ([""] if n_col else [])
            cells += [_tex_cell(c, row.cells[c.key], italic=True) for c in columns]
            out.append(_tex_row(cells))
    out += [r"\bottomrule", r"\end{tabular}"]
    notes = [f"{SPREAD_MARK_TEX[s]} {tex_escape(SPREAD_TEXT[s])}." for s in _used_spreads(table)]
    if _has_best(table):
        notes.append(tex_escape(BEST_TEXT[0].upper() + BEST_TEXT[1:]) + ".")
    if _has_tied(table):
        notes.append(r"$\approx$" + tex_escape(TIED_TEXT[1:]) + ".")
    for level in _ci_levels(table):
        notes.append(tex_escape(CI_TEXT.format(level=level)) + ".")
    for level in _ci_levels(table, "runs"):
        notes.append(tex_escape(RUNS_CI_TEXT.format(level=level)) + ".")
    if table is not None and table.real is not None:
        notes.append(rf"\textit{{{REAL_LABEL_MD}}}: {tex_escape(REAL_TEXT)}.")
    if published:
        text = published_caveat(table.protocol_id if table else None, published)
        notes.append(tex_escape(text[0].upper() + text[1:]) + ".")
    if _has_absent(table, published):
        notes.append(f"--: {tex_escape(ABSENT_TEXT)}.")
    for i, text in enumerate(table.notes if table else ()):
        notes.append(f"$^{{{note_letter(i)}}}$ {tex_escape(text)}.")
    if notes:
        out += [r"\par\smallskip", r"\begin{minipage}{\linewidth}\footnotesize"]
        out += [n + r"\par" for n in notes]
        out.append(r"\end{minipage}")
    out.append(r"\end{table}")
    return out


def _tex_sources(published: tuple[Row, ...]) -> list[str]:
    out = []
    for row in published:
        out.append(f"% {row.label}: {row.source}" + (f" | protocol: {row.protocol_note}"
                                                    if row.protocol_note else ""))
    return [line.replace("\n", " ") for line in out]


def to_latex(board: Leaderboard) -> str:
    out = [f"% generated by `{GENERATED_BY}` from the recorded runs; do not edit by hand.",
           r"% Needs \usepackage{booktabs}. KID is shown x10^3; mIoU and accuracy in percent.",
           f"% {board.n_records} evaluation record(s); one table per (dataset, protocol id).", ""]
    if not board.sections:
        out += ["% No evaluation records and no published numbers matched.", ""]
    for section in board.sections:
        out.append(f"% ---- {section.dataset} ----")
        out += _tex_sources(section.published)
        for table, published in _blocks(section):
            out += _tex_table(section.dataset, table, published)
            out.append("")
        if not _blocks(section):
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"
