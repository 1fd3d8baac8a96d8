"""Duplicate keys in a YAML file are an error naming the key, the file and both lines (PyYAML
alone keeps the last silently): config layers, protocols and a folder dataset's classes.yaml."""
from __future__ import annotations

import pytest

from _cli_helpers import call_main
from harness.core.config import ConfigError
from harness.experiment import load_experiment
from harness.core.data import DatasetError, build_dataset

PLUGIN = "example-pix2pix"

RECIPE = """\
train:
  seed: 1
  max_steps: 3
method:
  ngf: 8
train:
  seed: 2
"""


def test_duplicate_top_level_key_names_key_file_and_both_lines(tmp_path):
    f = tmp_path / "dup.yaml"
    f.write_text(RECIPE)
    with pytest.raises(ConfigError) as e:
        load_experiment(PLUGIN, "synthetic", config_files=[f])
    assert str(e.value).startswith(f"config file {f}: key 'train' appears twice")
    assert "lines 1 and 6" in str(e.value)


def test_duplicate_nested_key_and_the_cli_exit_status(tmp_path):
    f = tmp_path / "nested.yaml"
    f.write_text("train:\n  seed: 1\n  max_steps: 3\n  seed: 4\n")
    code, out, err = call_main("train", "--method", PLUGIN, "--dataset", "synthetic",
                               "--config", str(f), "--runs-dir", str(tmp_path / "runs"))
    assert code == 2 and out == ""
    assert err.startswith(f"error: config file {f}: key 'seed' appears twice") and \
        "lines 2 and 4" in err
    assert not (tmp_path / "runs").exists()


def test_merge_keys_may_be_overridden_and_equal_keys_in_different_mappings_are_fine(tmp_path):
    text = "train:\n  seed: 5\n  max_steps: 3\neval:\n  batch_size: 2\n"
    g = tmp_path / "merge.yaml"
    g.write_text(text)
    c = load_experiment(PLUGIN, "synthetic", config_files=[g])
    assert (c.train.seed, c.train.max_steps, c.eval.batch_size) == (5, 3, 2)
    from harness.core.strict_yaml import safe_load
    assert safe_load("a: &a {x: 1, y: 2}\nb:\n  <<: *a\n  x: 3\n") == \
        {"a": {"x": 1, "y": 2}, "b": {"x": 3, "y": 2}}
    assert safe_load("a: {x: 1}\nb: {x: 1}\n") == {"a": {"x": 1}, "b": {"x": 1}}


def test_duplicate_key_in_a_protocol_file(tmp_path):
    from evaluators.protocol import load_protocol
    p = tmp_path / "proto.yaml"
    p.write_text("name: proto\ndataset: synthetic\nresolution: [16, 16]\nsplit: val\n"
                 "resolution: [32, 32]\n")
    with pytest.raises(ConfigError, match=r"proto\.yaml: key 'resolution' appears twice.*"
                                          r"lines 3 and 5"):
        load_protocol(p)


def test_duplicate_key_in_classes_yaml(tmp_path):
    (tmp_path / "classes.yaml").write_text("classes: [a, b]\ndontcare: 255\nclasses: [c]\n")
    with pytest.raises(DatasetError, match=r"classes\.yaml: key 'classes' appears twice, at "
                                           r"lines 1 and 3"):
        build_dataset("folder", {"root": str(tmp_path)}, "train").records()
