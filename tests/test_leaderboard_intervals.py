"""Intervals in every table format and the best-or-not-distinguishable mark (interval overlap)."""
from __future__ import annotations

import csv
import io

from _leaderboard_helpers import PROTO_A, ok, record
from harness.results.formats import TIED_TEXT, to_csv, to_latex, to_markdown
from harness.results.leaderboard import build_tables, indistinguishable
from harness.results.store import parse_record


def _rec(method, miou, ci, run_id=None, seed=None):
    metrics = {"miou": ok(miou, ci=ci, ci_level=0.95, per_seed=[miou], std=None)}
    rec = record(method=method, dataset="cityscapes", protocol=PROTO_A, metrics=metrics,
                 variant=method, run_id=run_id or f"{method}-r", train_seed=seed)
    from pathlib import Path
    return parse_record(Path(f"runs/{method}/{run_id}/metrics.json"), f"{PROTO_A['id']}/random",
                        rec)


def test_overlap_rule():
    assert indistinguishable((57.5, 60.5), [(58.0, 62.0)])
    assert not indistinguishable((49.0, 51.0), [(58.0, 62.0)])
    assert not indistinguishable(None, [(58.0, 62.0)])
    assert not indistinguishable((57.0, 61.0), [None])


def test_best_and_indistinguishable_marks_in_every_format():
    records = [_rec("a", 60.0, [58.0, 62.0]), _rec("b", 59.0, [57.5, 60.5]),
               _rec("c", 50.0, [49.0, 51.0]),
               # two runs of d (training seeds 0, 1): mean 59.5, and the interval is the
               # Student-t interval of the mean over the runs (covers retraining variation)
               _rec("d", 59.0, [58.9, 59.1], run_id="d0", seed=0),
               _rec("d", 60.0, [59.9, 60.1], run_id="d1", seed=1)]
    board = build_tables(records)
    rows = {r.method: r.cells["miou"] for r in board.sections[0].tables[0].rows}
    assert rows["a"].best and not rows["a"].tied and rows["a"].ci == (58.0, 62.0)
    assert rows["b"].tied and not rows["b"].best
    assert not rows["c"].tied and not rows["c"].best
    # t_{0.975, 1} = 12.7062047 (tables); s = sqrt(0.5); half = t * s / sqrt(2) = t / 2
    half = 12.7062047 / 2
    assert rows["d"].ci_over == "runs" and rows["a"].ci_over == "images"
    assert abs(rows["d"].ci[0] - (59.5 - half)) < 1e-6 and abs(rows["d"].ci[1] - (59.5 + half)) < 1e-6
    assert rows["d"].tied and not rows["d"].best   # overlaps a's interval

    md = to_markdown(board)
    assert "| **60.00** [58.00, 62.00] |" in md
    assert "| ≈**59.00** [57.50, 60.50] |" in md
    assert "| 50.00 [49.00, 51.00] |" in md
    assert TIED_TEXT in md and "95 % bootstrap interval" in md

    table = list(csv.DictReader(io.StringIO(to_csv(board))))
    by = {r["method"]: r for r in table if r["kind"] == "reproduced"}
    assert (by["a"]["miou_mark"], by["b"]["miou_mark"], by["c"]["miou_mark"]) == \
        ("best", "tied", "")
    assert (by["b"]["miou_ci_lo"], by["b"]["miou_ci_hi"]) == ("57.500000", "60.500000")
    assert float(by["d"]["miou_ci_lo"]) == round(59.5 - half, 6) and by["d"]["miou_mark"] == "tied"
    assert "Student-t interval of the mean over its runs" in md

    tex = to_latex(board)
    assert r"$\approx$\textbf{59.00}\,{\scriptsize [57.50, 60.50]}" in tex
    assert r"\textbf{60.00}\,{\scriptsize [58.00, 62.00]}" in tex
    assert "not distinguishable from the column" in tex


def test_real_image_row_shows_its_interval():
    from pathlib import Path
    recs = []
    for method in ("a", "b"):
        metrics = {"miou": ok(50.0), "real_miou": ok(70.0, ci=[68.0, 72.0], ci_level=0.95)}
        rec = record(method=method, dataset="cityscapes", protocol=PROTO_A, metrics=metrics,
                     variant=method, run_id=f"{method}-r")
        recs.append(parse_record(Path(f"runs/{method}/metrics.json"),
                                 f"{PROTO_A['id']}/random", rec))
    table = build_tables(recs).sections[0].tables[0]
    assert table.real.cells["miou"].ci == (68.0, 72.0)
    assert "| 70.00 [68.00, 72.00] |" in to_markdown(build_tables(recs))
