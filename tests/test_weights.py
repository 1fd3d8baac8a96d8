"""Weight resolution order, hash checks and the missing-file message (harness/core/weights.py)."""
import hashlib

import pytest
import torch

from harness.core import weights as W


def _spec(tmp_path, payload=b"abc", prefix=None, full=None, url=None):
    return W.WeightSpec(key="toy", filename="toy-weights.pth", url=url, sha256=full,
                        sha256_prefix=prefix, source="the toy model page")


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    wdir, home = tmp_path / "wdir", tmp_path / "torch-home"
    wdir.mkdir()
    monkeypatch.setenv(W.WEIGHTS_DIR_ENV, str(wdir))
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setenv(W.OFFLINE_ENV, "1")
    monkeypatch.delenv(W.ALLOW_UNVERIFIED_ENV, raising=False)
    hub = home / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    return wdir, hub


def test_order_explicit_then_weights_dir_then_hub(tmp_path, dirs):
    wdir, hub = dirs
    spec = _spec(tmp_path)
    (hub / spec.filename).write_bytes(b"hub")
    assert W.resolve(spec).origin == "hub-cache"
    (wdir / spec.filename).write_bytes(b"dir")
    r = W.resolve(spec)
    assert r.origin == "weights-dir" and r.path == wdir / spec.filename
    explicit = tmp_path / "mine.pth"
    explicit.write_bytes(b"mine")
    r = W.resolve(spec, explicit)
    assert r.origin == "explicit" and r.sha256 == hashlib.sha256(b"mine").hexdigest()
    assert r.verified is None  # no published hash to compare with


def test_missing_file_names_file_source_and_places(tmp_path, dirs):
    spec = _spec(tmp_path, url="https://example.org/toy-weights.pth")
    with pytest.raises(W.WeightsUnavailable) as exc:
        W.resolve(spec)
    msg = str(exc.value)
    assert "toy-weights.pth" in msg and "https://example.org/toy-weights.pth" in msg
    assert "HARNESS_WEIGHTS_DIR" in msg and "hub" in msg and "HARNESS_OFFLINE=1" in msg


def test_explicit_path_missing(tmp_path, dirs):
    with pytest.raises(W.WeightsUnavailable, match="does not exist"):
        W.resolve(_spec(tmp_path), tmp_path / "nope.pth")


def test_hash_prefix_checked_and_override_marks_unverified(tmp_path, dirs, monkeypatch):
    wdir, _ = dirs
    good = hashlib.sha256(b"payload").hexdigest()
    (wdir / "toy-weights.pth").write_bytes(b"payload")
    assert W.resolve(_spec(tmp_path, prefix=good[:8])).verified is True
    assert W.resolve(_spec(tmp_path, full=good)).verified is True
    with pytest.raises(W.WeightsHashMismatch) as exc:
        W.resolve(_spec(tmp_path, prefix="00000000"))
    assert good in str(exc.value) and W.ALLOW_UNVERIFIED_ENV in str(exc.value)
    monkeypatch.setenv(W.ALLOW_UNVERIFIED_ENV, "1")
    r = W.resolve(_spec(tmp_path, prefix="00000000"))
    assert r.verified is False and r.record()["verified"] is False


def test_load_state_dict_file_roundtrip_and_bad_file(tmp_path, dirs):
    wdir, _ = dirs
    sd = {"w": torch.arange(4.0)}
    torch.save(sd, wdir / "toy-weights.pth")
    loaded = W.load_state_dict_file(W.resolve(_spec(tmp_path)))
    assert torch.equal(loaded["w"], sd["w"])
    (wdir / "toy-weights.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="toy-weights.pth"):
        W.load_state_dict_file(W.resolve(_spec(tmp_path)))


def test_identity_has_no_local_path():
    ident = W.INCEPTION_V3_COMPAT.identity()
    assert ident == {"key": "inception-v3-compat",
                     "filename": "weights-inception-2015-12-05-6726825d.pth",
                     "sha256": None, "sha256_prefix": "6726825d"}
