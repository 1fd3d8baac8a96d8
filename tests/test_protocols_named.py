"""Each paper's protocol by name, the pytorch-fid FID flavour, published rows placed by protocol,
and unverified weights made visible (issue 13, items 5 and 6; docs/protocols.md)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from _cli_helpers import call_main, stdout_json
from _eval_helpers import (N_VAL, SIZE, eval_env, eval_weights_dir, he_init_,  # noqa: F401
                           synthetic_val, write_generated, write_protocol)
from _leaderboard_helpers import fid, ok, record, write_metrics
from evaluators.protocol import PROTOCOLS_DIR, load_protocol
from evaluators.pytorch_fid_flavour import PT_INCEPTION
from evaluators.unverified import identity_suffix, mark_unverified
from harness.core.weights import INCEPTION_V3_COMPAT
from harness.results.formats import to_csv, to_markdown
from harness.results.leaderboard import UNVERIFIED_TEXT, build_tables
from harness.results.published import DEFAULT_PUBLISHED_CSV, PublishedError, load_published
from harness.results.store import collect_records

# The harness's own protocols: their ids must never change (results recorded under them would be
# orphaned). A new protocol field must leave them as they are (e.g. hashed only when not default).
LEGACY_IDS = {
    "ade20k-full-res": "ade20k-full-res-bd457882fbb5",
    "ade20k-paper": "ade20k-paper-99b8e52baf36",
    "cityscapes-full-res": "cityscapes-full-res-e0d143056a18",
    "cityscapes-paper": "cityscapes-paper-031d28b6f971",
    "coco-stuff-full-res": "coco-stuff-full-res-edebdcabbad0",
    "coco-stuff-paper": "coco-stuff-paper-4be6124f91c3",
    "folder": "folder-f30df0bfa9c2",
    "synthetic": "synthetic-63ec8f183d0d",
}
PAPER_PROTOCOLS = ("spade-2019-cityscapes", "spade-2019-cityscapes-generated", "spade-2019-ade20k",
                   "spade-2019-coco-stuff", "groupdnet-2020-cityscapes", "groupdnet-2020-ade20k",
                   "ccfpse-2019-coco-stuff", "oasis-2021-cityscapes", "oasis-2021-ade20k",
                   "oasis-2021-coco-stuff")


def test_legacy_protocol_ids_are_pinned():
    assert {name: load_protocol(name).id for name in LEGACY_IDS} == LEGACY_IDS


def test_list_protocols_shows_the_paper_protocols():
    code, out, err = call_main("list", "protocols", "--json")
    assert code == 0, err
    rows = {r["name"]: r for r in stdout_json(out)}
    for name in PAPER_PROTOCOLS:
        assert name in rows and rows[name]["description"], name
        assert "\n" not in rows[name]["description"]
    assert set(LEGACY_IDS) <= set(rows)
    code, out, _ = call_main("list", "protocols")
    assert code == 0 and "spade-2019-cityscapes" in out and "oasis-2021-ade20k" in out


def test_paper_protocols_encode_what_each_paper_did():
    p = {name: load_protocol(name) for name in PAPER_PROTOCOLS}
    assert all(x.fid.flavour == "pytorch-fid" for x in p.values())
    assert all(x.fields()["fid"]["weights"]["filename"] == PT_INCEPTION.filename
               for x in p.values())
    # SPADE: the two documented DRN readings, void pixels counted as wrong.
    up, gen = p["spade-2019-cityscapes"].segmentation, p["spade-2019-cityscapes-generated"].segmentation
    assert (up.input_resolution, gen.input_resolution) == ("original", "generated")
    assert up.accuracy_ignored_pixels == gen.accuracy_ignored_pixels == "count-as-wrong"
    # GroupDNet: the dataset's own evaluation, don't-care ignored.
    assert p["groupdnet-2020-cityscapes"].segmentation.accuracy_ignored_pixels == "exclude"
    assert p["groupdnet-2020-ade20k"].segmentation.accuracy_ignored_pixels == "exclude"
    # CC-FPSE COCO: DeepLabV2 on the 256x256 images, labels nearest-resized.
    cc = p["ccfpse-2019-coco-stuff"]
    assert cc.resolution == (256, 256) and cc.segmentation.input_resolution == "generated"
    assert cc.segmentation.label_resize == "nearest"
    # OASIS: segmenter at the generation size, LPIPS VGG.
    for ds in ("cityscapes", "ade20k", "coco-stuff"):
        o = p[f"oasis-2021-{ds}"]
        assert o.segmentation.input_resolution == "generated" and o.diversity.net == "vgg"
    # The flavour is part of the identity: cityscapes-paper with only the flavour changed.
    base = yaml.safe_load((PROTOCOLS_DIR / "cityscapes-paper.yaml").read_text())
    assert "flavour" not in base["fid"] and load_protocol("cityscapes-paper").fid.flavour == \
        "torch-fidelity"


def test_flavour_is_hashed_only_when_not_the_default(tmp_path):
    default = load_protocol(write_protocol(tmp_path, "a"))
    explicit = load_protocol(write_protocol(tmp_path, "a", fid={"flavour": "torch-fidelity"}))
    pf = load_protocol(write_protocol(tmp_path, "a", fid={"flavour": "pytorch-fid"}))
    assert default.id == explicit.id != pf.id
    assert "flavour" not in default.fields()["fid"] and pf.fields()["fid"]["flavour"] == "pytorch-fid"
    assert default.fields()["fid"]["weights"] == INCEPTION_V3_COMPAT.identity()
    assert pf.fields()["fid"]["weights"] == PT_INCEPTION.identity()
    from harness.core.config import ConfigError
    with pytest.raises(ConfigError, match="flavour"):
        load_protocol(write_protocol(tmp_path, "a", fid={"flavour": "clean-fid"}))


# --- the pytorch-fid flavour against pytorch-fid called directly ------------------------------
def build_pt_inception_state(seed: int = 0) -> dict:
    """pytorch-fid's own FID Inception (fid_inception_v3), seeded He init: the architecture is
    built by the package with its weight download and load switched off."""
    import pytorch_fid.inception as pfi
    import torchvision.models.inception as tvi
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pfi, "load_state_dict_from_url", lambda *a, **k: {})
        mp.setattr(tvi.Inception3, "load_state_dict", lambda self, *a, **k: None)
        net = pfi.fid_inception_v3()
    he_init_(net, seed)
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


@pytest.mark.slow
def test_spade_2019_fid_equals_pytorch_fid_on_the_same_images(eval_env, synthetic_val, tmp_path,
                                                               monkeypatch):
    """The FID of the spade-2019 protocol (its fid section verbatim, on the synthetic split) is
    pytorch-fid's calculate_fid_given_paths on the same files with the same weight file."""
    from pytorch_fid.fid_score import calculate_fid_given_paths
    from evaluators.evaluate import evaluate_images

    hub = Path(torch.hub.get_dir()) / "checkpoints"   # TORCH_HOME is private to this test
    hub.mkdir(parents=True)
    torch.save(build_pt_inception_state(), hub / PT_INCEPTION.filename)

    spade = yaml.safe_load((PROTOCOLS_DIR / "spade-2019-cityscapes.yaml").read_text())
    protocol = load_protocol(write_protocol(tmp_path, "spade-fid-on-synthetic",
                                            fid={**spade["fid"], "bootstrap_resamples": 0,
                                                 "kid": False},
                                            num_images=8))
    assert protocol.fid.flavour == "pytorch-fid"
    keys = [r.key for r in synthetic_val.records()][:8]
    gen = write_generated(synthetic_val, tmp_path / "gen", "noise", keys=set(keys))
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    for rec in synthetic_val.records()[:8]:   # the protocol's real set: bicubic to 64x64
        img = synthetic_val.image_resized(rec, (SIZE, SIZE), filter="bicubic")
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(real_dir / f"{rec.key}.png")

    direct = calculate_fid_given_paths([str(tmp_path / "gen"), str(real_dir)], batch_size=4,
                                       device="cpu", dims=2048, num_workers=0)
    rec = evaluate_images(gen, synthetic_val, protocol, skip=["segmentation", "diversity",
                                                              "classwise"],
                          batch_size=3, progress=False)
    m = rec["metrics"]["fid"]
    assert m["status"] == "ok" and m["flavour"] == "pytorch-fid" and direct > 1e-3
    assert m["value"] == pytest.approx(direct, rel=1e-4)
    assert rec["weights"][PT_INCEPTION.key]["file"] == PT_INCEPTION.filename
    assert rec["weights"][PT_INCEPTION.key]["origin"] == "hub-cache"
    # The seeded file is not the published one: the identity says so and FID is marked.
    sha = rec["weights"][PT_INCEPTION.key]["sha256"]
    suffix = identity_suffix([{"key": PT_INCEPTION.key, "sha256": sha}])
    assert rec["protocol"]["id"] == protocol.id
    assert rec["protocol"]["identity"] == f"{protocol.id}+{suffix}"
    assert rec["protocol"]["unverified"]["metrics"] == ["fid"]


# --- unverified weights -------------------------------------------------------------------------
PROTO = {"name": "cityscapes-paper", "hash": "0" * 64, "id": "cityscapes-paper-031d28b6f971",
         "fields": {}}


def _record(method, weights, miou=60.0, fid_value=50.0):
    r = record(method=method, dataset="cityscapes", protocol=dict(PROTO), run_id=method,
               metrics={"fid": fid(fid_value), "kid": ok(0.01), "miou": ok(miou),
                        "accuracy": ok(90.0)})
    r["weights"] = weights
    return r


def test_unverified_weights_get_their_own_table_and_marked_values(tmp_path):
    verified = {"inception-v3-compat": {"key": "inception-v3-compat", "verified": True,
                                        "sha256": "a" * 64, "file": "w.pth"}}
    stand_in = {"inception-v3-compat": {"key": "inception-v3-compat", "verified": False,
                                        "sha256": "b" * 64, "file": "w.pth"}}
    protocol = load_protocol("cityscapes-paper")
    a = mark_unverified(_record("spade", verified), protocol)
    b = mark_unverified(_record("ccfpse", stand_in), protocol)
    other = mark_unverified(_record("ccfpse", {"x": {**stand_in["inception-v3-compat"],
                                                     "sha256": "c" * 64}}), protocol)
    assert "identity" not in a["protocol"]
    assert b["protocol"]["identity"].startswith(PROTO["id"] + "+unverified-")
    assert b["protocol"]["identity"] != other["protocol"]["identity"]  # another file, another id
    # Inception serves FID and KID only: the segmentation numbers are not marked.
    assert b["protocol"]["unverified"]["metrics"] == ["fid", "kid"]
    write_metrics(tmp_path / "runs" / "a" / "metrics.json", a)
    write_metrics(tmp_path / "runs" / "b" / "metrics.json", b)
    board = build_tables(collect_records([tmp_path / "runs"]))
    tables = {t.protocol_id: t for t in board.sections[0].tables}
    assert set(tables) == {PROTO["id"], b["protocol"]["identity"]}
    cells = tables[b["protocol"]["identity"]].rows[0].cells
    assert cells["fid"].unverified and not cells["miou"].unverified
    assert not any(c.unverified for c in tables[PROTO["id"]].rows[0].cells.values())
    md = to_markdown(board)
    block = md.split(f"### Protocol `{b['protocol']['identity']}`")[1]
    row = next(x for x in block.splitlines() if x.startswith("| ccfpse"))
    letter = next(x for x in block.splitlines() if "computed with unverified weights" in x)[3]
    assert f"[{letter}]" in row   # the FID value carries the footnote
    assert UNVERIFIED_TEXT.split(" (")[0] in md
    assert "unverified weights" in to_csv(board)


def test_wrong_checksum_is_skipped_like_a_missing_file(tmp_path, monkeypatch, synthetic_val):
    from evaluators.evaluate import evaluate_images
    weights = tmp_path / "w"
    weights.mkdir()
    (weights / INCEPTION_V3_COMPAT.filename).write_bytes(b"not the inception weights")
    monkeypatch.setenv("HARNESS_WEIGHTS_DIR", str(weights))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    monkeypatch.setenv("HARNESS_OFFLINE", "1")
    monkeypatch.delenv("HARNESS_ALLOW_UNVERIFIED_WEIGHTS", raising=False)
    gen = write_generated(synthetic_val, tmp_path / "gen", "noise")
    protocol = load_protocol(write_protocol(tmp_path, num_images=N_VAL))
    rec = evaluate_images(gen, synthetic_val, protocol, skip=["segmentation", "diversity",
                                                              "classwise"], progress=False)
    for name in ("fid", "kid"):
        assert rec["metrics"][name]["status"] == "skipped"
        assert "has sha256" in rec["metrics"][name]["reason"]
    assert "identity" not in rec["protocol"]


# --- published numbers by protocol -----------------------------------------------------------
def test_every_published_row_names_a_protocol_that_exists():
    rows = load_published(DEFAULT_PUBLISHED_CSV)
    assert rows and all(r.protocol for r in rows)
    for r in rows:
        assert load_protocol(r.protocol).dataset.replace("-", "") == \
            r.dataset.replace("-", ""), r.label
    by_label = {(r.dataset, r.label): r.protocol for r in rows}
    assert by_label[("cityscapes", "SPADE (paper)")] == "spade-2019-cityscapes"
    assert by_label[("cityscapes", "SPADE (re-measured by GroupDNet authors)")] == \
        "groupdnet-2020-cityscapes"
    assert by_label[("coco-stuff", "CC-FPSE (paper)")] == "ccfpse-2019-coco-stuff"


def test_unknown_protocol_in_published_csv_is_an_error(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("dataset,method,label,protocol,fid,kid,miou,accuracy,lpips,source,"
                    "protocol_note\ncityscapes,SPADE,SPADE (paper),spade-2018,71.8,,,,,paper,\n")
    with pytest.raises(PublishedError, match=r"line 2, column 'protocol': 'spade-2018'"):
        load_published(path)


def test_published_rows_beside_reproduced_only_under_the_same_protocol(tmp_path):
    spade = load_protocol("spade-2019-cityscapes")
    proto = {"name": spade.name, "hash": spade.hash(), "id": spade.id, "fields": {}}
    r = record(method="spade", dataset="cityscapes", protocol=proto, run_id="s",
               metrics={"fid": fid(63.0), "miou": ok(61.0), "accuracy": ok(82.0)})
    write_metrics(tmp_path / "runs" / "spade" / "metrics.json", r)
    board = build_tables(collect_records([tmp_path / "runs"]),
                         load_published(DEFAULT_PUBLISHED_CSV), datasets=["cityscapes"])
    md = to_markdown(board)
    assert "*SPADE (paper) · same protocol*" in md and "*CRN (paper) · same protocol*" in md
    # The others: labelled with their protocol, the difference spelled out in a footnote.
    line = next(x for x in md.splitlines()
                if "SPADE (re-measured by GroupDNet authors) · groupdnet-2020-cityscapes" in x)
    letter = line.split("[", 1)[1].split("]", 1)[0]
    note = next(x for x in md.splitlines() if x.startswith(f"- [{letter}] groupdnet-2020"))
    assert "accuracy\\_ignored\\_pixels: exclude there, count-as-wrong here" in note
    assert "input\\_resolution: generated there, original here" in note
    oasis = next(x for x in md.splitlines() if x.startswith("- [") and "oasis-2021" in x)
    assert "diversity.net: vgg there, alex here" in oasis
    # Same rows come before the others in the table.
    rows = [x for x in md.splitlines() if x.startswith("| *") and "·" in x]
    assert all("same protocol" in x for x in rows[:5]) and "same protocol" not in rows[-1]
    assert json.dumps(sorted({r.published_protocol for s in board.sections
                              for r in s.published}))  # every row carries its protocol
