"""Protocols: strict loading, the hash covers every field but the description, shipped files."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from evaluators.protocol import (METRIC_CODE_VERSION, PROTOCOLS_DIR, ClasswiseSettings,
                                 DiversitySettings,
                                 FidSettings, Protocol, SegmentationSettings, list_protocols,
                                 load_protocol, protocol_names)
from harness.core.weights import ALEXNET_IMAGENET, INCEPTION_V3_COMPAT, VGG16_IMAGENET
from harness.core.config import ConfigError, canonical_json

PAPER_SEGMENTERS = {"cityscapes": "drn-d-105-cityscapes", "ade20k": "upernet-101-ade20k",
                    "coco-stuff": "deeplabv2-resnet101-cocostuff164k"}


def _base() -> Protocol:
    return Protocol(name="p", dataset="cityscapes", resolution=(256, 512),
                    segmentation=SegmentationSettings(segmenter="drn-d-105-cityscapes",
                                                      label_space="cityscapes-trainid"))


# Every field of the protocol and a different valid value for it.
CHANGES = {
    "name": "q", "dataset": "ade20k", "resolution": (128, 256), "split": "test",
    "num_images": 10, "seeds": (0, 1),
    "fid.enabled": False, "fid.resize_filter": "bilinear", "fid.kid": False,
    "fid.kid_subsets": 50, "fid.kid_subset_size": 500, "fid.bootstrap_resamples": 10,
    "fid.confidence": 0.9, "fid.bootstrap_seed": 1, "fid.flavour": "pytorch-fid",
    "segmentation.segmenter": "upernet-101-ade20k", "segmentation.input_resolution": "original",
    "segmentation.upsample_filter": "bilinear", "segmentation.label_space": "ade20k-150",
    "segmentation.ignore_index": 0, "segmentation.absent_classes": "zero",
    "segmentation.accuracy_ignored_pixels": "count-as-wrong",
    "segmentation.real_images": False,
    "diversity.enabled": False, "diversity.net": "vgg", "diversity.version": "0.0",
    "diversity.samples_per_map": 4, "diversity.maps": 8,
    "classwise.enabled": False, "classwise.net": "vgg", "classwise.version": "0.0",
    "classwise.samples_per_class": 3, "classwise.maps": 5, "classwise.min_pixels": 16,
}
# Fields with a single allowed value today (changing them is a code change).
SINGLE_VALUED = {"fid.feature_extractor", "fid.layer", "fid.reference",
                 "segmentation.label_resize", "diversity.pairs", "classwise.masking",
                 "metric_version"}


def _replace(p: Protocol, dotted: str, value):
    if "." not in dotted:
        return dataclasses.replace(p, **{dotted: value})
    section, key = dotted.split(".")
    return dataclasses.replace(p, **{section: dataclasses.replace(getattr(p, section),
                                                                  **{key: value})})


def test_every_field_is_covered_by_the_hash_test():
    names = {f.name for f in dataclasses.fields(Protocol)} - {"fid", "segmentation", "diversity",
                                                              "classwise", "description", "source"}
    names -= {"features"}  # hashed only when it asks for metrics: test_eval_feature_spaces.py
    for section, cls in (("fid", FidSettings), ("segmentation", SegmentationSettings),
                         ("diversity", DiversitySettings), ("classwise", ClasswiseSettings)):
        names |= {f"{section}.{f.name}" for f in dataclasses.fields(cls)}
    assert names == set(CHANGES) | SINGLE_VALUED


@pytest.mark.parametrize("dotted", sorted(CHANGES))
def test_hash_changes_with_every_hashed_field(dotted):
    base = _base()
    changed = _replace(base, dotted, CHANGES[dotted])
    assert changed.hash() != base.hash()
    assert changed.id != base.id


def test_description_does_not_change_the_hash():
    base = _base()
    other = dataclasses.replace(base, description="another text")
    assert other.hash() == base.hash() and other == base


def test_hash_is_sha256_of_canonical_json_and_id_shows_12_hex():
    import hashlib
    p = _base()
    fields = p.hashed_fields()
    assert "description" not in fields
    assert p.hash() == hashlib.sha256(canonical_json(fields).encode()).hexdigest()
    assert p.id == f"p-{p.hash()[:12]}" and len(p.hash12) == 12


def test_code_identities_are_hashed():
    from evaluators.segmenters import SEGMENTERS
    p = _base()
    f = p.hashed_fields()
    assert f["fid"]["weights"] == INCEPTION_V3_COMPAT.identity()
    assert f["diversity"]["backbone"] == ALEXNET_IMAGENET.identity()
    assert _replace(p, "diversity.net", "vgg").hashed_fields()["diversity"]["backbone"] == \
        VGG16_IMAGENET.identity()
    entry = SEGMENTERS.get("drn-d-105-cityscapes")
    ident = f["segmentation"]["segmenter_identity"]
    assert ident["name"] == entry.name and ident["label_space"] == entry.label_space
    assert canonical_json({k: v for k, v in ident.items() if k not in ("name", "label_space")}) \
        == canonical_json(entry.identity)
    assert f["metric_version"] == METRIC_CODE_VERSION


def _write(tmp_path: Path, data: dict, name: str = "mine.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _paper_dict() -> dict:
    return yaml.safe_load((PROTOCOLS_DIR / "cityscapes-paper.yaml").read_text())


def test_yaml_round_trip_equals_dataclass(tmp_path):
    p = load_protocol(_write(tmp_path, _paper_dict()))
    assert p.source == str(tmp_path / "mine.yaml")
    assert p.hash() == load_protocol("cityscapes-paper").hash()
    assert p.resolution == (256, 512) and p.seeds == (0,)


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d.update(colour="red"), "unknown key 'colour'"),
    (lambda d: d["fid"].update(kid_size=3), "unknown key 'fid.kid_size'"),
    (lambda d: d["segmentation"].update(absent_classes="mean"), "segmentation.absent_classes"),
    (lambda d: d["diversity"].update(version=0.1), "diversity.version"),
    (lambda d: d.update(resolution=[256]), "resolution"),
    (lambda d: d.update(seeds=[0, 0]), "seeds must be distinct"),
    (lambda d: d.update(metric_version=METRIC_CODE_VERSION + 1), "metric_version"),
    (lambda d: d["fid"].update(confidence=1.5), "fid.confidence"),
    (lambda d: d["segmentation"].update(segmenter="no-such-net"), "no-such-net"),
])
def test_strict_loading_names_key_and_file(tmp_path, mutate, expected):
    data = _paper_dict()
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as exc:
        load_protocol(path)
    assert expected in str(exc.value)
    assert str(path) in str(exc.value)


def test_unknown_name_lists_known_protocols():
    with pytest.raises(ConfigError) as exc:
        load_protocol("no-such-protocol")
    assert "cityscapes-paper" in str(exc.value) and "no-such-protocol" in str(exc.value)


def test_name_must_match_the_file_it_is_looked_up_by(tmp_path):
    data = _paper_dict()
    _write(tmp_path, data, "other.yaml")
    with pytest.raises(ConfigError, match="'other'"):
        load_protocol("other", root=tmp_path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_protocol(tmp_path / "nope.yaml")


def test_shipped_protocols():
    names = protocol_names()
    for dataset, segmenter in PAPER_SEGMENTERS.items():
        assert f"{dataset}-paper" in names and f"{dataset}-full-res" in names
    assert {"synthetic", "folder"} <= set(names)
    protocols = {p.name: p for p in list_protocols()}
    assert len({p.hash() for p in protocols.values()}) == len(protocols)
    for dataset, segmenter in PAPER_SEGMENTERS.items():
        paper, full = protocols[f"{dataset}-paper"], protocols[f"{dataset}-full-res"]
        assert paper.segmentation.segmenter == full.segmentation.segmenter == segmenter
        assert paper.segmentation.input_resolution == "generated"
        assert full.segmentation.input_resolution == "original"
        assert paper.fid == full.fid and paper.resolution == full.resolution
        assert paper.segmentation.accuracy_ignored_pixels == "exclude"
    assert protocols["cityscapes-paper"].resolution == (256, 512)
    assert protocols["ade20k-paper"].segmentation.absent_classes == "zero"
    assert protocols["coco-stuff-paper"].segmentation.absent_classes == "present-in-gt"
    syn = protocols["synthetic"]
    assert syn.resolution == (64, 64) and syn.num_images is None
    assert (syn.diversity.samples_per_map, syn.diversity.maps) == (4, 8)
