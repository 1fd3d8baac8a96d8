"""`leaderboard --paper`: the LaTeX table compiles with pdflatex in a two-column article without
an overfull box, and holds display names, arrows, bold best, intervals, the protocol caption and
the published caveats as footnotes -- and no file paths, run ids or network error text. Also the
--dataset / --protocol / --methods filters and the external rows store."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from _cli_helpers import call_main
from _report_helpers import NETWORK_REASON, narrow_record, write_report_fixture

from harness.results.external import add_external, list_external, remove_external
from harness.results.paper_latex import to_paper_latex
from harness.results.select import Selection, SelectionError, select

DOC = r"""\documentclass[twocolumn]{article}
\usepackage{booktabs}
\begin{document}
Text before the table.
\input{table}
\end{document}
"""


def compile_latex(folder: Path, table: str) -> str:
    """pdflatex on a two-column article that \\inputs ``table``; returns the log."""
    if shutil.which("pdflatex") is None:
        pytest.skip("SKIPPED LOUDLY: pdflatex is not installed (apt-get install "
                    "texlive-latex-base texlive-latex-recommended; .ci/run does it as root)")
    (folder / "table.tex").write_text(table)
    (folder / "doc.tex").write_text(DOC)
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
                          cwd=folder, capture_output=True, text=True, timeout=120)
    log = (folder / "doc.log").read_text(errors="replace")
    assert proc.returncode == 0, log[-3000:]
    assert (folder / "doc.pdf").stat().st_size > 1000
    return log


def test_paper_table_compiles_without_overfull_and_hides_internals(tmp_path):
    paths = write_report_fixture(tmp_path)
    sel = select([paths["runs"], paths["images"].parent], paths["results"],
                 Selection.parse("cityscapes"))
    tex = to_paper_latex(sel)
    log = compile_latex(tmp_path, tex)
    assert "Overfull \\hbox" not in log, re.findall(r"Overfull.*", log)
    # No local paths, run ids, internal columns or network error text.
    for bad in ("/root", "/tmp", str(tmp_path), "Name or service", "Errno", "https://",
                "spade-synthetic-s0", "Variant", "Runs &", "groupdnet-x", ".pth"):
        assert bad not in tex, bad
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"FID$\downarrow$" in tex and r"mIoU$\uparrow$" in tex
    # display names and the training budget under them
    assert "SPADE" in tex and "CC-FPSE" in tex and "pix2pixHD" in tex and "GroupDNet" in tex
    assert "8 steps, bs 4, 64 px" in tex
    # best reproduced FID of protocol A: CC-FPSE encoded 48.00 (published 54.3 is not ranked)
    first = tex.split(r"\end{table")[0]
    assert r"\textbf{48.00}" in first and r"\textbf{54.3}" not in first
    # the interval recorded with a single run's FID (pix2pixHD: 70 +- 1)
    assert "[69.00, 71.00]" in first
    # published caveats are footnotes (a letter in the table, the text under it), not % comments
    assert re.search(r"SPADE protocol\. Source: SPADE paper, Table 1", first)
    assert not re.search(r"^%.*SPADE paper", tex, re.M)
    # the protocol is the caption: name, short hash, N and resolution in words
    assert r"\caption{Cityscapes under protocol \texttt{cityscapes-val} (hash aaaaaaaaaaaa): " \
        r"N = 500" in first
    # GroupDNet's skipped FID becomes '--' with a generic footnote
    assert "not computed in this run (the metric's model weights were not available)" in first
    assert NETWORK_REASON not in tex


def test_narrow_selection_fits_one_column(tmp_path):
    runs = narrow_record(tmp_path)
    sel = select([runs], tmp_path / "results", Selection.parse("ade20k"), published=False)
    tex = to_paper_latex(sel)
    assert r"\begin{table}[t]" in tex and "table*" not in tex
    log = compile_latex(tmp_path, tex)
    assert "Overfull \\hbox" not in log
    # best: CC-FPSE has the lower FID (31.00) and the higher mIoU (43.50)
    assert r"\textbf{31.00}" in tex and r"\textbf{43.50}" in tex
    assert r"\textbf{33.50}" not in tex


def test_filters_pick_datasets_protocols_and_methods(tmp_path):
    paths = write_report_fixture(tmp_path)
    runs = [paths["runs"]]
    sel = select(runs, paths["results"], Selection.parse("cityscapes", None, "spade"))
    assert {r.method for r in sel.records} == {"spade"}
    assert {p.label for p in sel.published} == {"SPADE (paper)",
                                                "SPADE (re-measured by GroupDNet authors)"}
    sel = select(runs, paths["results"], Selection.parse(None, "cityscapes-val-upsampled", None))
    assert {(r.method, r.protocol_name) for r in sel.records} == \
        {("pix2pixhd", "cityscapes-val-upsampled")}
    sel = select(runs, paths["results"], Selection.parse(None, None, "CC-FPSE,pix2pixHD"))
    assert {r.method for r in sel.records} == {"ccfpse", "pix2pixhd"}
    with pytest.raises(SelectionError, match="cityscapes/cityscapes-val/spade"):
        select(runs, paths["results"], Selection.parse("cityscapes", None, "oasis-x"))

    code, out, err = call_main("leaderboard", "--runs-dir", str(paths["runs"]), "--results-dir",
                               str(paths["results"]), "--dataset", "cityscapes", "--methods",
                               "pix2pixhd", "--paper", str(tmp_path / "p.tex"), "--print", "md")
    assert code == 0, err
    assert "| pix2pixhd |" in out and "| spade |" not in out and "| ccfpse |" not in out
    assert "pix2pixHD" in (tmp_path / "p.tex").read_text()
    # the files keep every record whatever the filter
    assert "spade" in (paths["results"] / "leaderboard.md").read_text()
    code, out, err = call_main("leaderboard", "--runs-dir", str(paths["runs"]), "--results-dir",
                               str(paths["results"]), "--methods", "nope")
    assert code == 2 and "no record matches" in err


def test_external_rows_survive_rebuilds_and_are_removed_by_name(tmp_path):
    paths = write_report_fixture(tmp_path)
    results = paths["results"]
    rec = json.loads((paths["images"] / "metrics.json").read_text())["evaluations"]
    rec = next(iter(rec.values()))
    rec.update(method="SPADE (released)", variant="SPADE (released)", images_dir="/data/x")
    stored = add_external(results, rec)
    assert stored == results / "external" / "spade-released" / "metrics.json"
    assert list(list_external(results)) == ["SPADE (released)"]
    args = ("leaderboard", "--runs-dir", str(paths["runs"]), "--results-dir", str(results),
            "--print", "csv")
    for _ in range(2):                                   # every rebuild reads it again
        code, out, err = call_main(*args)
        assert code == 0, err
        line = [ln for ln in out.splitlines() if "SPADE (released)" in ln]
        assert len(line) == 1 and "66.000000" in line[0]  # its FID, raw, in the CSV
    # the run's own rebuild (what `run` and `evaluate --run` call) keeps it too
    from harness.stages.leaderboard import refresh_leaderboard
    refresh_leaderboard(paths["runs"], results)
    assert "SPADE (released)" in (results / "leaderboard.md").read_text()
    code, out, err = call_main(*args, "--remove-external", "SPADE (released)")
    assert code == 0, err
    assert "SPADE (released)" not in out
    assert not (results / "external" / "spade-released").exists()
    code, out, err = call_main(*args, "--remove-external", "SPADE (released)")
    assert code == 2 and "no such external row" in err
    with pytest.raises(ValueError, match="stored: none"):
        remove_external(results, "other")


def test_evaluate_refreshes_the_leaderboard_and_keeps_image_folders_as_external_rows(tmp_path):
    """What `evaluate` calls after recording (harness.report.refresh.after_evaluate)."""
    from harness.report.refresh import after_evaluate, runs_root_of

    paths = write_report_fixture(tmp_path)
    results = paths["results"]
    run = paths["runs"] / "cityscapes" / "spade" / "spade-synthetic-s0"
    assert runs_root_of(run) == paths["runs"].resolve()
    rec = json.loads((run / "metrics.json").read_text())["evaluations"]
    after_evaluate(next(iter(rec.values())), run_dir=run, runs_dir=None, results_dir=results)
    md = (results / "leaderboard.md").read_text()
    assert "| spade |" in md and not (results / "external").exists()
    img = json.loads((paths["images"] / "metrics.json").read_text())["evaluations"]
    img = next(iter(img.values()))
    img.update(method="Official SPADE", variant="Official SPADE")
    after_evaluate(img, run_dir=None, runs_dir=str(paths["runs"]), results_dir=results)
    assert list(list_external(results)) == ["Official SPADE"]
    assert "Official SPADE" in (results / "leaderboard.md").read_text()
    assert "| spade |" in (results / "leaderboard.md").read_text()


def test_leaderboard_files_say_what_each_row_ran(tmp_path):
    """An 8-step run is never read as 'SPADE' beside 'SPADE (paper)': the Markdown and LaTeX
    leaderboards put the budget read from the run folder beside the preset name."""
    from harness.stages.leaderboard import refresh_leaderboard

    paths = write_report_fixture(tmp_path)
    refresh_leaderboard(paths["runs"], paths["results"])
    md = (paths["results"] / "leaderboard.md").read_text()
    spade = [ln for ln in md.splitlines() if re.match(r"\| spade[^|]*\| spade-synthetic", ln)]
    assert spade and all("spade-synthetic (8 steps, bs 4, 64 px)" in ln for ln in spade)
    # runs without a config.yaml keep the bare preset name (nothing is guessed)
    assert "| pix2pixhd | pix2pixhd-cityscapes |" in md
    tex = (paths["results"] / "leaderboard.tex").read_text()
    assert "spade-synthetic (8 steps, bs 4, 64 px)" in tex
