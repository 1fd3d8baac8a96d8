"""The leaderboard's cost columns (``leaderboard --columns +cost``): what each method cost to
train and to run, read from each run's ``cost.json`` (written by :mod:`harness.cost`).

The metric tables stay as they are; the cost columns come as one more table per dataset and
protocol (a row per method / variant / inference mode, the same rows as the metric table's
reproduced rows) appended to ``leaderboard.md`` and ``leaderboard.tex``, and as
``leaderboard_cost.csv`` (one line per row, raw numbers). Several runs of one variant (seeds)
show the mean of each measured number. A run without a training record (imported official
weights, a plugin that cannot train) has only the inference columns; an image folder evaluated
with ``evaluate --images`` has no cost at all (its row says so).
"""
from __future__ import annotations

import csv
import io
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Sequence

from harness.core.io import atomic_write_text

# column key -> (Markdown header, LaTeX header, decimals or None for integers / text)
HEADERS: dict[str, tuple[str, str, int | None]] = {
    "params_G": ("params G", r"params $G$", None),
    "params_D": ("params D", r"params $D$", None),
    "params_E": ("params E", r"params $E$", None),
    "train_steps": ("steps", "steps", None),
    "train_images": ("images seen", "images seen", None),
    "train_hours": ("train h", "train h", 4),
    "device_hours": ("device-h", "device-h", 4),
    "train_peak_mem_gib": ("train peak GiB", "train peak GiB", 2),
    "gen_s_per_image": ("gen s/img", "gen s/img", 4),
    "gen_peak_mem_gib": ("gen peak GiB", "gen peak GiB", 2),
    "device": ("device", "device", None),
}
COLUMN_SETS = ("cost",)


def parse_columns(text: str | None) -> set[str]:
    """``--columns +cost`` (a leading '+' means "in addition to the metrics") -> {'cost'}."""
    out: set[str] = set()
    for item in (text or "").split(","):
        name = item.strip().lstrip("+").lower()
        if not name:
            continue
        if name not in COLUMN_SETS:
            raise ValueError(f"unknown column set {item.strip()!r}; choose from "
                             f"{', '.join('+' + c for c in COLUMN_SETS)}")
        out.add(name)
    return out


def cost_rows(records: Iterable[Any]) -> list[dict]:
    """One row per (dataset, table, method, variant, inference) with the mean cost of its runs."""
    from harness.cost import COST_COLUMNS, iter_cost_fields, read_cost

    groups: "OrderedDict[tuple, list[dict]]" = OrderedDict()
    for r in records:
        run_dir = Path(r.source).parent
        has_run = (run_dir / "run.json").is_file()
        values = dict(iter_cost_fields(read_cost(run_dir), r.key)) if has_run else {}
        key = (r.dataset, r.table_id, r.method or "?", r.variant or r.method or "?",
               r.inference or "none")
        groups.setdefault(key, []).append(values)
    rows = []
    for (dataset, table, method, variant, inference), runs in sorted(groups.items()):
        row: dict[str, Any] = {"dataset": dataset, "protocol": table, "method": method,
                               "variant": variant, "inference": inference, "runs": len(runs)}
        for col in COST_COLUMNS:
            vals = [v.get(col) for v in runs if v.get(col) is not None]
            if col == "device":
                row[col] = ", ".join(sorted(set(map(str, vals)))) or None
            elif vals:
                mean = sum(vals) / len(vals)
                row[col] = int(round(mean)) if HEADERS[col][2] is None else mean
            else:
                row[col] = None
        rows.append(row)
    return rows


def _shown(col: str, value: Any) -> str:
    if value is None:
        return "–"
    decimals = HEADERS[col][2]
    if decimals is None:
        return f"{value:,}" if isinstance(value, int) else str(value)
    return f"{value:.{decimals}f}"


def _tables(rows: Sequence[dict]):
    tables: "OrderedDict[tuple, list[dict]]" = OrderedDict()
    for row in rows:
        tables.setdefault((row["dataset"], row["protocol"]), []).append(row)
    return tables.items()


def to_markdown(rows: Sequence[dict]) -> str:
    from harness.cost import COST_COLUMNS

    lines = ["", "## Cost", "",
             "Measured by the harness on the device named in each row (`cost.json` of each run; "
             "docs/leaderboard.md#cost). – : not measured (no training for imported weights; "
             "no run directory for an image folder).", ""]
    for (dataset, protocol), group in _tables(rows):
        lines += [f"### {dataset} — {protocol}", ""]
        header = ["method", "inference"] + [HEADERS[c][0] for c in COST_COLUMNS]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---"] * len(header)) + "|")
        for r in group:
            name = r["variant"] if r["variant"] == r["method"] else f"{r['method']} ({r['variant']})"
            cells = [name, r["inference"]] + [_shown(c, r[c]) for c in COST_COLUMNS]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def to_latex(rows: Sequence[dict]) -> str:
    from harness.cost import COST_COLUMNS
    from harness.results.formats import tex_escape

    lines = ["", "% Cost (measured by the harness; cost.json of each run)"]
    for (dataset, protocol), group in _tables(rows):
        lines += [r"\begin{table}[t]", r"\centering", r"\small",
                  r"\begin{tabular}{ll" + "r" * (len(COST_COLUMNS) - 1) + "l}", r"\toprule",
                  " & ".join(["Method", "Inference"] + [HEADERS[c][1] for c in COST_COLUMNS])
                  + r" \\", r"\midrule"]
        for r in group:
            cells = [tex_escape(r["variant"]), tex_escape(r["inference"])]
            cells += [tex_escape(_shown(c, r[c]).replace("–", "--")) for c in COST_COLUMNS]
            lines.append(" & ".join(cells) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}",
                  rf"\caption{{Cost on {tex_escape(dataset)} ({tex_escape(protocol)}).}}",
                  r"\end{table}", ""]
    return "\n".join(lines)


def to_csv(rows: Sequence[dict]) -> str:
    from harness.cost import COST_COLUMNS

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = ["dataset", "protocol", "method", "variant", "inference", "runs", *COST_COLUMNS]
    w.writerow(head)
    for r in rows:
        w.writerow(["" if r.get(c) is None else r[c] for c in head])
    return buf.getvalue()


def add_cost_tables(paths: Sequence[str | Path], results_dir: str | Path,
                    formats: Sequence[str]) -> list[Path]:
    """Append the cost tables to the written leaderboard.md / .tex and write
    leaderboard_cost.csv (for the csv format); returns the files changed."""
    from harness.results.store import collect_records

    paths = [Path(p) for p in paths if Path(p).exists()] or []
    rows = cost_rows(collect_records(paths)) if paths else []
    results_dir = Path(results_dir)
    changed = []
    for fmt in formats:
        if fmt == "md":
            p = results_dir / "leaderboard.md"
            atomic_write_text(p, p.read_text().rstrip("\n") + "\n" + to_markdown(rows))
        elif fmt == "latex":
            p = results_dir / "leaderboard.tex"
            atomic_write_text(p, p.read_text().rstrip("\n") + "\n" + to_latex(rows))
        else:
            p = atomic_write_text(results_dir / "leaderboard_cost.csv", to_csv(rows))
        changed.append(p)
    return changed
