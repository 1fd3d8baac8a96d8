"""`python -m harness weights`: the catalog of weight files, their status (present / missing /
unverified), `weights add`, --weights-dir and the configuration's `weights:` section
(harness/weights_catalog.py, harness/cli/weights.py; docs/weights.md).

The files are real (seeded state_dicts written with torch.save); the specs that describe them
live in a module registered the way a plugin's or a feature extractor's module would be, so the
test also shows that the catalog finds any module-level WeightSpec without a hand list."""
from __future__ import annotations

import hashlib
import json
import sys
import types
from pathlib import Path

import pytest
import torch

from harness.core import weights as W
from harness import weights_catalog as wc

from _cli_helpers import call_main


def _state_file(path: Path, seed: int) -> Path:
    g = torch.Generator().manual_seed(seed)
    torch.save({"conv.weight": torch.randn(4, 3, 3, 3, generator=g),
                "conv.bias": torch.randn(4, generator=g)}, path)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """Three specs in a plugin-like module: GOOD (file with the right sha256), BAD (a file with
    another sha256), ABSENT (no file); NOHASH has no published hash."""
    src = tmp_path / "downloads"
    src.mkdir()
    good_src = _state_file(src / "good-net.pth", 1)
    bad_src = _state_file(src / "bad-net.pth", 2)
    nohash_src = _state_file(src / "nohash-net.pth", 4)
    published_bad = _sha(_state_file(tmp_path / "the-published-bad.pth", 3))
    mod = types.ModuleType("test_plugin_weights_module")
    mod.WeightSpec = W.WeightSpec  # as a module that defines specs imports it
    mod.GOOD = W.WeightSpec("test-good", "good-net.pth", url="https://example.org/good-net.pth",
                            sha256=_sha(good_src), source="example")
    mod.SPECS = {"bad": W.WeightSpec("test-bad", "bad-net.pth", sha256=published_bad,
                                     source="the bad page"),
                 "others": (W.WeightSpec("test-absent", "absent-net.pth",
                                         url="https://example.org/absent-net.pth",
                                         sha256_prefix="0123abcd"),
                            W.WeightSpec("test-nohash", "nohash-net.pth", source="no hash"))}
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    wdir, envdir, home = tmp_path / "wdir", tmp_path / "envdir", tmp_path / "torch-home"
    for d in (wdir, envdir):
        d.mkdir()
    monkeypatch.setenv(W.WEIGHTS_DIR_ENV, str(envdir))
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setenv(W.OFFLINE_ENV, "1")
    monkeypatch.delenv(W.ALLOW_UNVERIFIED_ENV, raising=False)
    W.reset_configuration()
    yield types.SimpleNamespace(src=src, good=good_src, bad=bad_src, nohash=nohash_src,
                                wdir=wdir, envdir=envdir, hub=home / "hub" / "checkpoints",
                                published_bad=published_bad, mod=mod)
    W.reset_configuration()


def _listing(*args: str) -> dict:
    code, out, err = call_main("weights", "--json", *args)
    assert code == 0, err
    data = json.loads(out)
    return {r["key"]: r for r in data["files"]} | {"_dir": data["weights_dir"]}


def test_listing_shows_present_missing_and_unverified(tree):
    (tree.wdir / "good-net.pth").write_bytes(tree.good.read_bytes())
    (tree.envdir / "bad-net.pth").write_bytes(tree.bad.read_bytes())
    tree.hub.mkdir(parents=True)
    (tree.hub / "nohash-net.pth").write_bytes(tree.nohash.read_bytes())
    rows = _listing("--weights-dir", str(tree.wdir))
    good, bad, absent, nohash = (rows[k] for k in ("test-good", "test-bad", "test-absent",
                                                   "test-nohash"))
    assert good["status"] == "verified" and good["origin"] == "weights-dir"
    assert good["path"] == str(tree.wdir / "good-net.pth") and good["found_sha256"] == _sha(tree.good)
    assert good["sha256"] == _sha(tree.good) and good["get"] == "https://example.org/good-net.pth"
    assert bad["status"] == "unverified" and bad["path"] == str(tree.envdir / "bad-net.pth")
    assert bad["found_sha256"] == _sha(tree.bad) and bad["sha256"] == tree.published_bad
    assert absent["status"] == "missing" and absent["path"] is None
    assert absent["sha256"] == "0123abcd…"
    assert nohash["status"] == "present" and nohash["origin"] == "hub-cache"
    # the search order, as resolve() follows it: --weights-dir, $HARNESS_WEIGHTS_DIR, hub, URL
    assert absent["search"] == [f"weights-dir: {tree.wdir / 'absent-net.pth'}",
                                f"weights-dir: {tree.envdir / 'absent-net.pth'}",
                                f"hub-cache: {tree.hub / 'absent-net.pth'}",
                                "download: https://example.org/absent-net.pth"]
    # the built-in files are listed too (discovered: metrics, segmenters, the methods' losses)
    assert {"inception-v3-compat", "vgg19-imagenet", "alexnet-imagenet",
            "drn-d-105-cityscapes"} <= set(rows)
    assert any(u.startswith("method spade: VGG19") for u in rows["vgg19-imagenet"]["used_by"])
    assert "segmenter drn-d-105-cityscapes" in rows["drn-d-105-cityscapes"]["used_by"]
    assert rows["_dir"] == str(tree.wdir)


def test_listing_agrees_with_resolve(tree):
    """What the listing calls verified / unverified is what resolve() accepts / refuses."""
    (tree.envdir / "good-net.pth").write_bytes(tree.good.read_bytes())
    (tree.envdir / "bad-net.pth").write_bytes(tree.bad.read_bytes())
    assert W.resolve(tree.mod.GOOD).verified is True
    with pytest.raises(W.WeightsHashMismatch):
        W.resolve(tree.mod.SPECS["bad"])
    with pytest.raises(W.WeightsUnavailable):
        W.resolve(tree.mod.SPECS["others"][0])
    rows = _listing()
    assert [rows[k]["status"] for k in ("test-good", "test-bad", "test-absent")] == \
        ["verified", "unverified", "missing"]


def test_table_output_names_status_and_command(tree):
    (tree.envdir / "bad-net.pth").write_bytes(tree.bad.read_bytes())
    code, out, err = call_main("weights")
    assert code == 0, err
    assert "test-bad  [unverified]" in out and "test-absent  [missing]" in out
    assert "get:      https://example.org/absent-net.pth" in out
    assert "weights add FILE" in out.splitlines()[-1]


def test_weights_add_verifies_and_copies(tree):
    code, out, err = call_main("--weights-dir", str(tree.wdir), "weights", "add", str(tree.good),
                               "--json")
    assert code == 0, err
    res = json.loads(out)
    target = tree.wdir / "good-net.pth"
    assert res["path"] == str(target) and res["status"] == "verified"
    assert target.read_bytes() == tree.good.read_bytes()
    assert sorted(p.name for p in tree.wdir.iterdir()) == ["good-net.pth"]  # no temp file left
    # a file with the wrong sha256: exit 2, both hashes named, nothing copied
    code, out, err = call_main("weights", "--weights-dir", str(tree.wdir), "add", str(tree.bad))
    assert code == 2 and out == ""
    assert _sha(tree.bad) in err and tree.published_bad in err and "nothing was copied" in err
    assert not (tree.wdir / "bad-net.pth").exists()
    # --as: a file under another name is verified against that key's hash
    renamed = tree.src / "download (1).pth"
    renamed.write_bytes(tree.good.read_bytes())
    target.unlink()
    code, out, err = call_main("weights", "add", str(renamed), "--as", "test-good")
    assert code == 0, err
    # without --weights-dir the file goes to $HARNESS_WEIGHTS_DIR
    assert (tree.envdir / "good-net.pth").read_bytes() == tree.good.read_bytes()
    code, _, err = call_main("weights", "add", str(renamed))
    assert code == 2 and "no known weight file is named 'download (1).pth'" in err
    code, _, err = call_main("weights", "add", str(tree.good), "--as", "nope")
    assert code == 2 and "unknown weights key" in err


def test_precedence_config_then_weights_dir_then_env_then_hub(tree):
    spec = tree.mod.GOOD
    tree.hub.mkdir(parents=True)
    for d in (tree.hub, tree.envdir, tree.wdir):
        (d / spec.filename).write_bytes(tree.good.read_bytes())
    r = W.resolve(spec)
    assert (r.origin, r.path) == ("weights-dir", tree.envdir / spec.filename)
    W.configure(weights_dir=tree.wdir)
    assert W.resolve(spec).path == tree.wdir / spec.filename
    elsewhere = tree.src / "my-copy.pth"
    elsewhere.write_bytes(tree.good.read_bytes())
    from harness.experiment import load_experiment
    cfg = load_experiment("spade", "synthetic", overrides=[f"weights.test-good={elsewhere}"])
    assert cfg.weights == {"test-good": str(elsewhere)}
    assert "weights" not in cfg.identity() and cfg.to_dict()["weights"] == cfg.weights
    wc.apply_config(cfg)
    r = W.resolve(spec)
    assert (r.origin, r.path, r.verified) == ("config", elsewhere, True)
    # an explicit path (a method's own option) still comes first
    assert W.resolve(spec, tree.hub / spec.filename).origin == "explicit"
    # the hub cache is last
    W.reset_configuration()
    for d in (tree.envdir, tree.wdir):
        (d / spec.filename).unlink()
    assert W.resolve(spec).origin == "hub-cache"


def test_weights_section_is_strict(tree, tmp_path):
    layer = tmp_path / "mine.yaml"
    layer.write_text("weights:\n  vgg19-imagnet: /data/vgg19.pth\n")
    code, out, err = call_main("train", "--method", "spade", "--dataset", "synthetic",
                               "--config", str(layer), "--runs-dir", str(tmp_path / "runs"))
    assert code == 2 and out == ""
    assert "weights.vgg19-imagnet: unknown weights key 'vgg19-imagnet'" in err
    assert str(layer) in err and "vgg19-imagenet" in err
    layer.write_text("weights:\n  vgg19-imagenet: 3\n")
    code, _, err = call_main("train", "--method", "spade", "--dataset", "synthetic",
                             "--config", str(layer))
    assert code == 2 and "weights.vgg19-imagenet' expects a file path" in err


def test_protocol_narrowing(tree):
    rows = _listing("--protocol", "cityscapes-paper")
    keys = set(rows) - {"_dir"}
    assert keys == {"inception-v3-compat", "drn-d-105-cityscapes", "alexnet-imagenet"}
    assert any("mIoU" in u or "miou" in u for u in rows["drn-d-105-cityscapes"]["used_by"])


def test_list_segmenters_shows_weights(tree):
    from harness.cli.results import list_rows
    from evaluators.segmenters import SEGMENTERS
    from evaluators.segmenters.drn import DRN_D_105_CITYSCAPES

    rows = {r["name"]: r for r in list_rows("segmenters")[0]}
    assert rows["drn-d-105-cityscapes"]["weights"] == f"missing: {DRN_D_105_CITYSCAPES.filename}"
    assert rows["synthetic-unet"]["weights"] == "none needed"
    (tree.envdir / DRN_D_105_CITYSCAPES.filename).write_bytes(tree.good.read_bytes())
    rows = {r["name"]: r for r in list_rows("segmenters")[0]}
    expected = "present" if DRN_D_105_CITYSCAPES.sha256 is None and \
        DRN_D_105_CITYSCAPES.sha256_prefix is None else f"unverified: {DRN_D_105_CITYSCAPES.filename}"
    assert rows["drn-d-105-cityscapes"]["weights"] == expected
    assert SEGMENTERS.get("drn-d-105-cityscapes").weights == (DRN_D_105_CITYSCAPES,)
