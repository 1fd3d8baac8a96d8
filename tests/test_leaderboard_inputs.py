"""Reading metrics.json files (forgiving, with warnings naming the file) and published.csv
(strict, errors naming the line)."""
from __future__ import annotations

import json
import logging

import pytest

from _leaderboard_helpers import (PROTO_A, PUBLISHED_CSV, fid, ok, record, skipped,
                                  write_fixture_runs, write_metrics)
from harness.results import DEFAULT_PUBLISHED_CSV, build_leaderboard, collect_records
from harness.results.leaderboard import build_tables
from harness.results.published import PublishedError, load_published


def test_corrupt_files_are_reported_and_skipped(tmp_path, caplog):
    paths = write_fixture_runs(tmp_path)
    broken = paths["runs"] / "cityscapes" / "spade" / "broken-run" / "metrics.json"
    broken.parent.mkdir(parents=True)
    broken.write_text('{"schema": 1, "evaluations": {"cityscapes-val-aaaa')   # interrupted write
    not_object = paths["runs"] / "ade20k" / "x" / "y" / "metrics.json"
    not_object.parent.mkdir(parents=True)
    not_object.write_text("[1, 2]")
    problems: list[str] = []
    with caplog.at_level(logging.WARNING, logger="harness.results"):
        records = collect_records([paths["runs"]], problems=problems)
    assert len(problems) == 2
    assert problems[0].startswith(f"{not_object}: expected a JSON object")
    assert problems[1].startswith(f"{broken}: is not valid JSON") and "skipped" in problems[1]
    assert [r.message for r in caplog.records] == problems
    # Every good record is still there (3 spade + 2 pix2pixhd + 2 ccfpse + 1 ade20k).
    assert len(records) == 8 and all(r.source not in (broken, not_object) for r in records)
    written = build_leaderboard(paths["runs"], None, tmp_path / "out", "md")
    assert "| spade † | spade-synthetic | random | 3 seeds |" in written["md"].read_text()


def test_partial_records_warn_naming_file_and_key(tmp_path):
    path = tmp_path / "runs" / "cityscapes" / "m" / "r" / "metrics.json"
    rec = record(method="m", dataset="cityscapes", protocol=PROTO_A, run_id="r",
                 metrics={"fid": fid(40.0), "kid": {"status": "exploded"},
                          "miou": {"status": "ok", "value": None}, "accuracy": 81.5,
                          "lpips_diversity": skipped("no LPIPS weights")})
    del rec["n_images"]
    no_protocol = record(method="m", dataset="cityscapes", protocol=PROTO_A, inference="encoded",
                         metrics={"fid": fid(1.0)})
    del no_protocol["protocol"]
    no_dataset = dict(rec, dataset=None, inference="other")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"evaluations": {
        f"{PROTO_A['id']}/random": rec, f"{PROTO_A['id']}/encoded": no_protocol,
        f"{PROTO_A['id']}/other": no_dataset}}))
    problems: list[str] = []
    records = collect_records([path], problems=problems)
    key = f"{path}: evaluation '{PROTO_A['id']}/"
    assert problems == [
        f"{path}: has no 'schema' key (older file); reading it as schema 1",
        f"{key}encoded': missing 'protocol' id (expected protocol.id = '<name>-<hash>'); "
        "skipped — a number without its protocol cannot be compared with anything",
        f"{key}other': missing or invalid 'dataset' (None); skipped (a record must name its "
        "dataset to be placed in a table)",
        f"{key}random': missing 'n_images'; N shown as '?'",
        f"{key}random': metric 'accuracy': a bare number (older file); read as status 'ok'",
        f"{key}random': metric 'kid': unknown status 'exploded' (expected one of ok, skipped, "
        "n/a); left out",
        f"{key}random': metric 'miou': status 'ok' but 'value' is None (a finite number was "
        "expected); left out",
    ]
    [r] = records
    assert r.n_images is None and sorted(r.metrics) == ["accuracy", "fid", "lpips_diversity"]
    row = build_tables(records).sections[0].tables[0].rows[0]
    assert row.cells["kid"].status == "absent" and row.cells["miou"].status == "absent"
    assert row.cells["accuracy"].mean == 81.5
    assert row.cells["lpips_diversity"].status == "skipped"


def test_a_copied_run_is_counted_once(tmp_path):
    root = tmp_path / "runs"
    rec = record(method="m", dataset="cityscapes", protocol=PROTO_A, run_id="same-run",
                 metrics={"fid": fid(40.0)})
    first = write_metrics(root / "cityscapes" / "m" / "same-run" / "metrics.json", rec)
    copy = write_metrics(root / "cityscapes" / "m" / "zz-backup" / "metrics.json", rec)
    problems: list[str] = []
    board = build_tables(collect_records([root]), warn=problems.append)
    [row] = board.sections[0].tables[0].rows
    assert row.n_runs == 1 and row.run_ids == ("same-run",)
    assert problems == [f"{copy}: evaluation '{PROTO_A['id']}/random' repeats run 'same-run' "
                        f"already read from {first}; counted once"]


def test_files_and_folders_are_read_once_in_stable_order(tmp_path):
    paths = write_fixture_runs(tmp_path)
    spade = paths["runs"] / "cityscapes" / "spade"
    # Image and checkpoint folders of a run are not searched (they never hold a metrics.json).
    for sub in ("samples/p/random", "checkpoints", ".partial"):
        stray = spade / "spade-synthetic-s0" / sub / "metrics.json"
        stray.parent.mkdir(parents=True)
        stray.write_text("not json")
    one = collect_records([paths["runs"]])
    assert len(one) == 8
    again = collect_records([spade, paths["runs"], spade / "spade-synthetic-s0" / "metrics.json"])
    assert [(r.source, r.key) for r in again] == [(r.source, r.key) for r in one]
    missing: list[str] = []
    assert collect_records([tmp_path / "nope"], problems=missing) == []
    assert missing == [f"{tmp_path / 'nope'}: does not exist; no evaluation records read from it"]


def test_real_image_scores_disagreeing_inside_a_protocol_warn(tmp_path):
    root = tmp_path / "runs"
    for name, real in (("a", 70.0), ("b", 71.0)):
        write_metrics(root / "cityscapes" / name / f"{name}-1" / "metrics.json", record(
            method=name, dataset="cityscapes", protocol=PROTO_A, run_id=f"{name}-1",
            metrics={"fid": fid(40.0), "real_miou": ok(real)}))
    problems: list[str] = []
    board = build_tables(collect_records([root]), warn=problems.append)
    assert board.sections[0].tables[0].real.cells["miou"].mean == 70.5
    assert len(problems) == 1 and "real_miou differs between records (70.0 .. 71.0)" in problems[0]


# --------------------------------------------------------------------------------------------
# published.csv
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, message", [
    ("dataset,method,fid\ncityscapes,SPADE,71.8\n", "header must be dataset,method,label,fid"),
    (PUBLISHED_CSV.splitlines()[0] + "\ncityscapes,SPADE,,71.8,,,,,paper,\n",
     "line 2: column 'label' is empty"),
    (PUBLISHED_CSV.splitlines()[0] + "\ncityscapes,SPADE,S,,,,,,paper,\n",
     "line 2: no value in any of fid, kid, miou, accuracy, lpips"),
    (PUBLISHED_CSV.splitlines()[0] + "\ncityscapes,SPADE,S,nan,,,,,paper,\n",
     "line 2, column 'fid': 'nan' is not a number"),
    (PUBLISHED_CSV.splitlines()[0] + "\ncityscapes,SPADE,S,1,,,,,paper, a, b\n",
     "line 2: expected 10 fields"),
    (PUBLISHED_CSV + "Coco_Stuff,SPADE,SPADE (paper),1,,,,,x,\n",
     "line 6: dataset 'Coco_Stuff' and label 'SPADE (paper)' repeat line 5"),
])
def test_malformed_published_csv_is_one_clear_error(tmp_path, text, message):
    path = tmp_path / "published.csv"
    path.write_text(text)
    with pytest.raises(PublishedError) as info:
        load_published(path)
    assert str(info.value).startswith(f"{path}")
    assert message in str(info.value)


# The papers' numbers as given in shared/reference/methods.md section 6 (typed independently of
# results/published.csv): label -> (fid, miou, accuracy, lpips) per dataset; None = not reported.
PAPER_NUMBERS = {
    "cityscapes": {
        "CRN (paper)": ("104.7", "52.4", "77.1", None),
        "SIMS (paper)": ("49.7", "47.2", "75.5", None),
        "pix2pixHD (retrained by SPADE authors)": ("95.0", "58.3", "81.4", None),
        "SPADE (paper)": ("71.8", "62.3", "81.9", None),
        "SPADE (re-measured by GroupDNet authors)": (None, "62.3", "93.5", None),
        "CC-FPSE (paper)": ("54.3", "65.5", "82.3", "0.073"),
        "OASIS (paper)": ("47.7", "69.3", None, "0.275"),
    },
    "ade20k": {
        "CRN (paper)": ("73.3", "22.4", "68.8", None),
        "pix2pixHD (retrained by SPADE authors)": ("81.8", "20.3", "69.2", None),
        "SPADE (paper)": ("33.9", "38.5", "79.9", None),
        "SPADE (re-measured by GroupDNet authors)": (None, "42.0", "81.4", None),
        "CC-FPSE (paper)": ("31.7", "43.7", "82.9", None),
        "OASIS (paper)": ("28.3", "48.8", None, "0.265"),
    },
    "coco-stuff": {
        "CRN (paper)": ("70.4", "23.7", "40.4", None),
        "pix2pixHD (retrained by SPADE authors)": ("111.5", "14.6", "45.8", None),
        "SPADE (paper)": ("22.6", "37.4", "67.9", None),
        "CC-FPSE (paper)": ("19.2", "41.6", "70.7", None),
        "OASIS (paper)": ("17.0", "44.1", None, None),
    },
}


def test_repository_published_csv_holds_the_papers_numbers():
    rows = load_published(DEFAULT_PUBLISHED_CSV)
    got: dict[str, dict] = {}
    for r in rows:
        got.setdefault(r.dataset, {})[r.label] = tuple(
            r.values.get(c) for c in ("fid", "miou", "accuracy", "lpips"))
        assert "kid" not in r.values                       # no paper reports KID
        assert r.source and r.protocol_note                 # provenance is never blank
    assert got == PAPER_NUMBERS
