"""Leaderboard tables from recorded runs: snapshots, aggregation, ranking, protocol separation.

Regenerate the snapshots after an intended change (and review the diff):
    UPDATE_SNAPSHOTS=1 python -m pytest tests/test_leaderboard.py -q
"""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pytest

from _leaderboard_helpers import (LOSSY_NOTE, NA_DETERMINISTIC, PROTO_A, PROTO_B, SKIP_DRN,
                                  SKIP_INCEPTION, SPADE_FID, SPADE_MIOU, check_snapshot, fid, ok,
                                  record, write_fixture_runs, write_metrics, write_published)
from harness.results import build_leaderboard, collect_records
from harness.results.leaderboard import build_tables
from harness.results.published import load_published


def _build(tmp_path: Path, formats="csv,latex,md", **kw) -> dict[str, Path]:
    paths = write_fixture_runs(tmp_path)
    published = write_published(tmp_path / "published.csv")
    kw.setdefault("extra_paths", [paths["images"]])
    return build_leaderboard(paths["runs"], published, tmp_path / "out", formats, **kw)


def _csv_rows(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def _row(rows, **match) -> dict:
    found = [r for r in rows if all(r[k] == v for k, v in match.items())]
    assert len(found) == 1, (match, found)
    return found[0]


# --------------------------------------------------------------------------------------------
def test_snapshots(tmp_path):
    problems: list[str] = []
    written = _build(tmp_path, problems=problems)
    assert problems == []
    assert {k: p.name for k, p in written.items()} == {
        "csv": "leaderboard.csv", "latex": "leaderboard.tex", "md": "leaderboard.md"}
    for path in written.values():
        check_snapshot(path.name, path.read_text(encoding="utf-8"))


def test_output_is_byte_identical_across_locations(tmp_path):
    a = _build(tmp_path / "one")
    b = _build(tmp_path / "two" / "deeper")
    for fmt in a:
        assert a[fmt].read_bytes() == b[fmt].read_bytes()
        assert str(tmp_path) not in a[fmt].read_text()   # no absolute paths leak into tables


def test_aggregation_matches_independent_statistics(tmp_path):
    rows = _csv_rows(_build(tmp_path, "csv")["csv"])
    spade = _row(rows, kind="reproduced", method="spade", dataset="cityscapes")
    assert spade["n_runs"] == "3" and spade["std_over"] == "runs"
    assert spade["train_seeds"] == "0;1;2"
    assert float(spade["fid"]) == pytest.approx(np.mean(SPADE_FID), abs=1e-6)
    assert float(spade["fid_std"]) == pytest.approx(np.std(SPADE_FID, ddof=1), abs=1e-6)
    assert float(spade["miou_std"]) == pytest.approx(np.std(SPADE_MIOU, ddof=1), abs=1e-6)
    # KID was skipped in one of the three runs: mean/std over the two that measured it.
    assert spade["kid_n"] == "2"
    assert float(spade["kid"]) == pytest.approx(np.mean([0.0125, 0.0135]), abs=1e-6)
    assert float(spade["kid_std"]) == pytest.approx(np.std([0.0125, 0.0135], ddof=1), abs=1e-6)
    assert SKIP_INCEPTION in spade["kid_note"]
    # One CC-FPSE run with three generation seeds: the spread is over its seeds.
    cc = _row(rows, kind="reproduced", method="ccfpse", inference="random")
    assert cc["std_over"] == "seeds" and cc["gen_seeds"] == "0;1;2" and cc["n_runs"] == "1"
    assert float(cc["fid"]) == 54.0
    assert float(cc["fid_std"]) == pytest.approx(np.std([53.5, 54.0, 54.5], ddof=1), abs=1e-6)
    # A single-seed run has no spread at all (KID's subset std is not a seed spread).
    p2p = _row(rows, kind="reproduced", method="pix2pixhd",
               protocol_id=PROTO_A["id"])
    assert p2p["std_over"] == "" and p2p["fid_std"] == "" and p2p["kid_std"] == ""


def test_skipped_and_not_applicable_are_never_numbers(tmp_path):
    written = _build(tmp_path)
    rows = _csv_rows(written["csv"])
    cc = _row(rows, kind="reproduced", method="ccfpse", inference="encoded")
    assert (cc["miou"], cc["miou_status"], cc["miou_note"]) == ("", "skipped", SKIP_DRN)
    p2p = _row(rows, kind="reproduced", method="pix2pixhd", protocol_id=PROTO_A["id"])
    assert (p2p["lpips_diversity"], p2p["lpips_diversity_status"]) == ("", "n/a")
    assert p2p["lpips_diversity_note"] == NA_DETERMINISTIC
    md = written["md"].read_text()
    section = md.split(f"### Protocol `{PROTO_A['id']}`")[1].split("### ")[0]
    cc_line = next(line for line in section.splitlines() if "| encoded |" in line)
    assert cc_line.count("skipped [a]") == 2
    p2p_line = next(line for line in section.splitlines() if line.startswith("| pix2pixhd"))
    assert p2p_line.rstrip(" |").endswith("N/A [b]")
    assert "- [a] skipped: segmenter weights drn-d-105\\_ms\\_cityscapes.pth not found" in section
    assert f"- [b] N/A: {NA_DETERMINISTIC}" in section
    tex = written["latex"].read_text()
    assert r"skipped$^{a}$" in tex and r"N/A$^{b}$" in tex


def test_recorded_caveats_follow_their_row(tmp_path):
    written = _build(tmp_path)
    rows = _csv_rows(written["csv"])
    assert [r["label"] for r in rows if r["record_notes"]] == ["(image folder)"]
    assert _row(rows, label="(image folder)")["record_notes"] == LOSSY_NOTE
    md = written["md"].read_text()
    assert "| (image folder) [a] | my\\_images | — | 1 run |" in md
    assert f"- [a] {LOSSY_NOTE}" in md


def test_protocols_never_share_a_table(tmp_path):
    paths = write_fixture_runs(tmp_path)
    records = collect_records([paths["runs"], paths["images"]])
    board = build_tables(records)
    city = next(s for s in board.sections if s.dataset == "cityscapes")
    assert [t.protocol_id for t in city.tables] == [PROTO_A["id"], PROTO_B["id"]]
    for table in city.tables:
        assert {r.protocol_id for r in table.rows} == {table.protocol_id}
        assert table.real.protocol_id == table.protocol_id
    # pix2pixHD was evaluated under both protocols: two rows of one run each, never averaged.
    p2p = [r for t in city.tables for r in t.rows if r.method == "pix2pixhd"]
    assert [(r.protocol_id, r.n_runs, r.cells["miou"].mean) for r in p2p] == [
        (PROTO_A["id"], 1, 50.0), (PROTO_B["id"], 1, 52.0)]
    # The real-image upper bounds stay with their own protocol.
    assert [t.real.cells["miou"].mean for t in city.tables] == [71.25, 68.5]
    # Best-of-column is decided per table: protocol B's best mIoU (53) would lose in table A.
    assert [r.label for r in city.tables[1].rows if r.cells["miou"].best] == ["(image folder)"]


def test_protocol_tables_are_separate_in_every_format(tmp_path):
    written = _build(tmp_path)
    rows = _csv_rows(written["csv"])
    for r in rows:
        if r["kind"] == "published":
            assert r["protocol_id"] == "" and r["protocol_hash"] == "" and r["n"] == ""
        else:
            assert r["protocol_id"] and r["n"]
    md = written["md"].read_text()
    assert md.count(f"### Protocol `{PROTO_A['id']}` · N = 500") == 1
    assert md.count(f"### Protocol `{PROTO_B['id']}` · N = 500") == 1
    tex = written["latex"].read_text()
    assert tex.count(r"\begin{table}") == 4     # ade20k, cityscapes A and B, coco-stuff
    assert tex.count(rf"\texttt{{{PROTO_B['id']}}}") == 1


def _two_method_records(tmp_path, published_fid=None):
    root = tmp_path / "runs"
    write_metrics(root / "cityscapes" / "a" / "a-1" / "metrics.json", record(
        method="a", dataset="cityscapes", protocol=PROTO_A, run_id="a-1",
        metrics={"fid": fid(40.0), "kid": ok(0.02), "miou": ok(40.0), "accuracy": ok(80.0),
                 "lpips_diversity": ok(0.1)}))
    write_metrics(root / "cityscapes" / "b" / "b-1" / "metrics.json", record(
        method="b", dataset="cityscapes", protocol=PROTO_A, run_id="b-1",
        metrics={"fid": fid(50.0), "kid": ok(0.01), "miou": ok(60.0), "accuracy": ok(80.004),
                 "lpips_diversity": ok(0.3)}))
    return collect_records([root])


def test_best_per_column_follows_direction(tmp_path):
    board = build_tables(_two_method_records(tmp_path))
    rows = {r.method: r for r in board.sections[0].tables[0].rows}
    best = {m: sorted(k for k, c in r.cells.items() if c.best) for m, r in rows.items()}
    # a: lower FID wins (lower is better); b: lower KID, higher mIoU / LPIPS win.
    # accuracy 80.00 vs 80.004 are equal as displayed (2 decimals): both bold.
    assert best == {"a": ["accuracy", "fid"], "b": ["accuracy", "kid", "lpips_diversity", "miou"]}


def test_published_rows_are_never_ranked(tmp_path):
    records = _two_method_records(tmp_path)
    pub = tmp_path / "published.csv"
    pub.write_text("dataset,method,label,fid,kid,miou,accuracy,lpips,source,protocol_note\n"
                   "Cityscapes,X,X (paper),1.0,,99.0,99.0,0.9,paper,\n")
    board = build_tables(records, load_published(pub))
    section = board.sections[0]
    assert section.dataset == "cityscapes"
    assert [r.label for r in section.published] == ["X (paper)"]
    assert not any(c.best for c in section.published[0].cells.values())
    assert section.published[0].protocol_id is None
    table = section.tables[0]
    assert [r.method for r in table.rows if r.cells["fid"].best] == ["a"]


def test_single_row_is_not_bold(tmp_path):
    root = tmp_path / "runs"
    write_metrics(root / "cityscapes" / "a" / "a-1" / "metrics.json", record(
        method="a", dataset="cityscapes", protocol=PROTO_A, run_id="a-1",
        metrics={"fid": fid(40.0)}))
    board = build_tables(collect_records([root]))
    assert not any(c.best for c in board.sections[0].tables[0].rows[0].cells.values())


def test_dataset_filter_and_published_switch(tmp_path):
    written = _build(tmp_path, "csv", datasets=["Cityscapes"])
    rows = _csv_rows(written["csv"])
    assert {r["dataset"] for r in rows} == {"cityscapes"}
    assert sum(r["kind"] == "published" for r in rows) == 3
    written = _build(tmp_path / "again", "csv", datasets=["coco_stuff"])
    rows = _csv_rows(written["csv"])
    assert [(r["kind"], r["dataset"]) for r in rows] == [("published", "coco-stuff")]
    written = _build(tmp_path / "nopub", "csv", include_published=False)
    assert "published" not in {r["kind"] for r in _csv_rows(written["csv"])}


def test_latex_and_markdown_tables_are_well_formed(tmp_path):
    written = _build(tmp_path)
    tex = written["latex"].read_text()
    unescaped = tex.replace(r"\{", "").replace(r"\}", "")
    assert unescaped.count("{") == unescaped.count("}")
    for block in re.findall(r"\\begin\{tabular\}\{(\w+)\}(.*?)\\end\{tabular\}", tex, re.S):
        spec, body = block
        for line in body.strip().splitlines():
            if line.startswith(("\\toprule", "\\midrule", "\\bottomrule", "\\multicolumn")):
                continue
            assert line.endswith(r"\\") and line.count(" & ") == len(spec) - 1, line
    assert tex.count(r"\toprule") == tex.count(r"\bottomrule") == tex.count(r"\begin{tabular}")
    md = written["md"].read_text()
    table_lines = [line for line in md.splitlines() if line.startswith("| ")]
    widths = {line.replace("\\|", "").count("|") for line in table_lines}
    assert widths == {10}


def test_unknown_format_or_bad_published_writes_nothing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "leaderboard.md").write_text("previous\n")
    paths = write_fixture_runs(tmp_path)
    pub = write_published(tmp_path / "published.csv")
    with pytest.raises(ValueError, match="unknown leaderboard format 'html'"):
        build_leaderboard(paths["runs"], pub, out, "md,html")
    bad = tmp_path / "bad.csv"
    bad.write_text("dataset,method,label,fid,kid,miou,accuracy,lpips,source,protocol_note\n"
                   "cityscapes,SPADE,SPADE (paper),seventy,,62.3,81.9,,paper,\n")
    with pytest.raises(ValueError, match=r"bad\.csv, line 2, column 'fid': 'seventy'"):
        build_leaderboard(paths["runs"], bad, out, "md")
    assert (out / "leaderboard.md").read_text() == "previous\n"
    assert sorted(p.name for p in out.iterdir()) == ["leaderboard.md"]


def test_no_records_at_all(tmp_path):
    problems: list[str] = []
    written = build_leaderboard(tmp_path / "runs", None, tmp_path / "out", ["md", "csv"],
                                problems=problems)
    assert problems == [f"{tmp_path / 'runs'}: no runs folder; the leaderboard has no "
                        "reproduced rows"]
    assert "No evaluation records and no published numbers matched." in written["md"].read_text()
    assert written["csv"].read_text().count("\n") == 1       # the header only


def test_same_name_different_configuration_is_never_averaged(tmp_path):
    """Runs average only when they differ by the training seed (same variant hash)."""
    runs = tmp_path / "runs"
    metrics = {"fid": fid(50.0), "miou": ok(60.0)}

    def run(run_id, seed, vhash, value):
        rec = record(method="spade", dataset="cityscapes", protocol=PROTO_A, variant="spade-x",
                     run_id=run_id, train_seed=seed, metrics={**metrics, "fid": fid(value)})
        rec["variant_hash"] = vhash
        write_metrics(runs / "cityscapes" / "spade" / run_id / "metrics.json", rec)

    run("a0", 0, "1" * 64, 50.0)
    run("a1", 1, "1" * 64, 52.0)      # same configuration, another seed: averaged with a0
    run("b0", 0, "2" * 64, 70.0)      # same name, another configuration: its own row
    out = build_leaderboard(runs, None, tmp_path / "out", "csv", include_published=False)
    rows = [r for r in _csv_rows(out["csv"]) if r["kind"] == "reproduced"]
    by_variant = {r["variant"]: r for r in rows}
    assert set(by_variant) == {"spade-x [11111111]", "spade-x [22222222]"}
    assert by_variant["spade-x [11111111]"]["n_runs"] == "2"
    assert float(by_variant["spade-x [11111111]"]["fid"]) == pytest.approx(51.0)
    assert float(by_variant["spade-x [22222222]"]["fid"]) == pytest.approx(70.0)
