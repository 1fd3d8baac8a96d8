"""Strict configuration through the CLI's path: errors name key and file, --set typing, the
resolved config and its hash in the run directory, and what changes the run identity."""
from __future__ import annotations

import pytest
import yaml

from harness.core.config import ConfigError
from harness.experiment import load_experiment, load_resolved
from harness.rundir import RunDir, default_run_id
from harness.stages.common import prepare_run

from _cli_helpers import call_main

PLUGIN = "example-pix2pix"


def cfg(*overrides, files=()):
    return load_experiment(PLUGIN, "synthetic", config_files=list(files), overrides=list(overrides))


def write(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


def test_unknown_key_in_a_file_names_key_and_file(tmp_path):
    f = write(tmp_path / "mine.yaml", {"train": {"batch_sise": 2}})
    with pytest.raises(ConfigError) as e:
        cfg(files=[f])
    assert str(f) in str(e.value) and "'train.batch_sise'" in str(e.value)
    assert "valid keys" in str(e.value) and "batch_size" in str(e.value)


def test_unknown_method_option_names_key_and_file(tmp_path):
    f = write(tmp_path / "m.yaml", {"method": {"ngff": 8}})
    with pytest.raises(ConfigError, match=r"m\.yaml.*'method\.ngff'.*ExampleConfig"):
        cfg(files=[f])


def test_wrong_type_names_key_file_and_expected_type(tmp_path):
    f = write(tmp_path / "t.yaml", {"train": {"max_steps": "many"}})
    with pytest.raises(ConfigError, match=r"t\.yaml: key 'train\.max_steps' expects int \| null, got 'many'"):
        cfg(files=[f])
    with pytest.raises(ConfigError, match=r"--set: key 'method\.ngf' expects int, got 1\.5"):
        cfg("method.ngf=1.5")


def test_unknown_method_and_dataset():
    with pytest.raises(ConfigError, match="--method: unknown method 'nope'; known methods: .*spade"):
        load_experiment("nope", "synthetic")
    with pytest.raises(ConfigError, match="--dataset: unknown dataset 'nowhere'; known datasets: .*synthetic"):
        load_experiment(PLUGIN, "nowhere")


@pytest.mark.parametrize("text, words", [
    ("train.max_steps", "expected KEY=VALUE"),
    ("=3", "malformed key ''"),
    ("train..seed=3", "malformed key 'train..seed'"),
    ("train.seed=[1, 2", "value is not valid YAML"),
])
def test_malformed_set(text, words):
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace(".", r"\.")):
        cfg(text)


def test_set_values_are_yaml_typed():
    c = cfg("train.max_steps=5", "method.lr=1e-4", "train.deterministic=true",
            "eval.skip=[fid, kid]", "name=my-variant", "method.debug_nan_at_step=null")
    assert c.train.max_steps == 5 and isinstance(c.train.max_steps, int)
    assert c.method.config.lr == pytest.approx(1e-4) and isinstance(c.method.config.lr, float)
    assert c.train.deterministic is True
    assert c.eval.skip == ["fid", "kid"]
    assert c.name == "my-variant" and c.method.config.debug_nan_at_step is None
    assert "--set train.max_steps=5" in c.sources


def test_later_layers_win(tmp_path):
    a = write(tmp_path / "a.yaml", {"train": {"seed": 1, "max_steps": 7}})
    b = write(tmp_path / "b.yaml", {"train": {"seed": 2}})
    c = cfg("train.seed=3", files=[a, b])
    assert (c.train.seed, c.train.max_steps) == (3, 7)
    assert cfg(files=[a, b]).train.seed == 2


def test_identity_hash_rules():
    base = cfg("train.max_steps=5")
    assert cfg("train.max_steps=5").hash() == base.hash()
    # identity fields change the hash (and the run directory) ...
    for change in ("train.seed=1", "method.ngf=4", "dataset.num_train=8", "train.max_steps=6",
                   "name=other"):
        assert cfg("train.max_steps=5", change).hash() != base.hash(), change
    # ... runtime-only fields do not
    for change in ("train.num_workers=3", "train.device=cpu", "train.log_every=1",
                   "train.checkpoint_every=7", "dataset.root=/somewhere", "eval.batch_size=1",
                   "train.progress=false", "eval.inference=encoded", "eval.protocol=synthetic",
                   "eval.skip=[fid]"):
        other = cfg("train.max_steps=5", change)
        assert other.hash() == base.hash(), change
        assert default_run_id(other) == default_run_id(base)


def test_resolved_config_and_hash_are_written_into_the_run_dir(tmp_path):
    c = cfg("train.max_steps=5", "train.num_workers=0")
    rd = prepare_run(c, tmp_path)
    assert rd.path == tmp_path / "synthetic" / PLUGIN / f"{PLUGIN}-synthetic-{c.hash()[:10]}"
    text = rd.config_file.read_text()
    assert text.splitlines()[0] == f"# resolved configuration; sha256 of its identity: {c.hash()}"
    again = load_resolved(rd.config_file)
    assert again.hash() == c.hash() and again.to_dict() == c.to_dict()
    status = rd.status()
    assert status["config_hash"] == c.hash() and status["run_id"] == rd.run_id
    # same identity with other runtime options: same directory, config rewritten
    rd2 = prepare_run(cfg("train.max_steps=5", "train.num_workers=2"), tmp_path)
    assert rd2.path == rd.path and load_resolved(rd.config_file).train.num_workers == 2


def test_run_dir_of_another_configuration_is_refused(tmp_path):
    a = cfg("train.max_steps=5")
    prepare_run(a, tmp_path, run_id="mine")
    from harness.rundir import RunError
    with pytest.raises(RunError, match="holds a run of another configuration"):
        prepare_run(cfg("train.max_steps=6"), tmp_path, run_id="mine")
    # --fresh replaces it
    rd = prepare_run(cfg("train.max_steps=6"), tmp_path, run_id="mine", fresh=True)
    assert load_resolved(rd.config_file).train.max_steps == 6


@pytest.mark.parametrize("bad", ["../x", "a/b", ".hidden", ""])
def test_run_id_must_be_a_plain_name(tmp_path, bad):
    from harness.rundir import RunError
    with pytest.raises(RunError, match="invalid run id"):
        RunDir.for_config(cfg(), tmp_path, bad or "/")


def test_cli_reports_config_errors_in_one_line_with_exit_2(tmp_path):
    f = write(tmp_path / "bad.yaml", {"trian": {}})
    code, out, err = call_main("train", "--method", PLUGIN, "--dataset", "synthetic",
                               "--config", str(f), "--runs-dir", str(tmp_path / "runs"))
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [f"error: {f}: unknown top-level key 'trian'; valid keys: "
                                        "dataset, eval, method, name, train, weights"]
    assert not (tmp_path / "runs").exists()


def test_variant_hash_ignores_only_the_training_seed():
    base = cfg("train.max_steps=5")
    assert cfg("train.max_steps=5", "train.seed=7").variant_hash() == base.variant_hash()
    assert cfg("train.max_steps=5", "train.seed=7").hash() != base.hash()
    assert cfg("train.max_steps=5", "method.ngf=4").variant_hash() != base.variant_hash()
