"""evaluate_images end to end: the record schema, the reference cache, offline -> skipped,
diversity N/A, pairing and size errors, seeds, metrics.json, sharding."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from _eval_helpers import (N_VAL, eval_env, eval_weights_dir, fid_sets,  # noqa: F401
                           no_weights_env, perturb, synthetic_val, write_generated,
                           write_protocol)
from evaluators.evaluate import (EvaluationError, diversity_keys, evaluate_images,
                                 select_records)
from evaluators.fid import kid_value
from evaluators.pairing import PairingError, pair_images
from evaluators.protocol import load_protocol
from harness.core.records import METRICS, RecordError, combine_seeds, read_metrics, write_record
from evaluators.reference_cache import reference_dir
from harness.core.data.fingerprint import split_fingerprint

RECORD_KEYS = {"schema", "method", "dataset", "variant", "run_id", "protocol", "inference",
               "n_images", "seeds", "metrics", "weights", "environment"}
METRIC_KEYS = {"fid", "kid", "miou", "accuracy", "real_miou", "real_accuracy", "lpips_diversity",
               "mcsd", "mocd"}


def _diversity_files(dataset, folder: Path, keys, k: int) -> dict[str, list[Path]]:
    out = {}
    for key in keys:
        rec = next(r for r in dataset.records() if r.key == key)
        image = dataset.read_image(rec)
        files = []
        for j in range(k):
            path = folder / key / f"{j}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(perturb(image, ["noise", "shift", "blur"][j % 3], j)).save(path)
            files.append(path)
        out[key] = files
    return out


def test_record_end_to_end_and_reference_cache(eval_env, fid_sets, synthetic_val, tmp_path):  # noqa: F811
    protocol = load_protocol(write_protocol(tmp_path))
    # Name the files like pix2pixHD does: pairing strips the known suffix.
    folder = tmp_path / "generated"
    folder.mkdir()
    for key, path in fid_sets["gen_paths"].items():
        (folder / f"{key}_synthesized_image.png").write_bytes(path.read_bytes())
    keys = diversity_keys(synthetic_val, protocol)
    assert keys == [r.key for r in synthetic_val.records()][:2]
    samples = _diversity_files(synthetic_val, tmp_path / "div", keys, 3)

    record = evaluate_images(folder, synthetic_val, protocol, diversity=samples, multimodal=True,
                             batch_size=5, method="toy", inference="random", seed=0,
                             progress=False)
    assert RECORD_KEYS <= set(record) and record["schema"] == 1
    # the opt-in feature-space metrics appear only when the protocol's features: asks for them
    from evaluators.feature_spaces import FEATURE_METRICS
    assert set(record["metrics"]) == METRIC_KEYS == set(METRICS) - set(FEATURE_METRICS)
    assert record["protocol"]["id"] == protocol.id and record["protocol"]["hash"] == protocol.hash()
    assert record["protocol"]["fields"] == protocol.fields()
    assert record["n_images"] == N_VAL and record["seeds"] == [0]
    assert record["dataset"] == "synthetic" and record["method"] == "toy"
    json.dumps(record)  # JSON-serialisable as it is

    fid = record["metrics"]["fid"]
    assert fid["status"] == "ok" and fid["n"] == N_VAL and fid["std"] is None
    assert fid["value"] == pytest.approx(fid_sets["fid"], rel=1e-4)
    assert fid["per_seed"] == [fid["value"]]
    lo, hi = fid["ci95"]
    assert lo < fid["value"] < hi and fid["bootstrap_resamples"] == 20
    kid = record["metrics"]["kid"]
    expected = kid_value(fid_sets["gen"], fid_sets["real"], subsets=10, subset_size=1000)
    assert kid["value"] == pytest.approx(expected["value"], rel=1e-4)
    assert kid["subset_size"] == N_VAL and "reduced from 1000 to 12" in kid["note"]
    div = record["metrics"]["lpips_diversity"]
    assert div["status"] == "ok" and div["value"] > 0 and div["maps"] == 2
    assert div["pairs_per_map"] == 3
    for name in ("miou", "accuracy", "real_miou", "real_accuracy"):
        assert record["metrics"][name] == {"status": "n/a",
                                           "reason": "the protocol has no segmenter"}
    assert record["weights"]["inception-v3-compat"]["verified"] is False
    assert record["weights"]["alexnet-imagenet"]["origin"] == "weights-dir"

    # The real features are cached under <cache>/reference/<protocol hash>/<fingerprint>/ ...
    ref = reference_dir(protocol, synthetic_val)
    assert ref.name == split_fingerprint(synthetic_val, "content").digest
    assert ref.parent.name == protocol.hash()
    assert len(list(ref.glob("fid-real-*.pt"))) == 1
    # ... and a second evaluation never reads a real image again.
    calls = []
    original = type(synthetic_val).image_resized

    def spy(self, *args, **kwargs):
        calls.append(args)
        return original(self, *args, **kwargs)
    type(synthetic_val).image_resized = spy
    try:
        again = evaluate_images(fid_sets["gen_paths"], synthetic_val, protocol,
                                multimodal=False, batch_size=12, seed=1, progress=False,
                                skip=("fid",), method="toy", inference="random")
    finally:
        type(synthetic_val).image_resized = original
    assert calls == []
    assert again["metrics"]["kid"]["value"] == pytest.approx(kid["value"], rel=1e-4)
    assert again["metrics"]["fid"] == {"status": "skipped", "reason": "skipped on request"}
    assert again["metrics"]["lpips_diversity"]["status"] == "n/a"
    assert "not multimodal" in again["metrics"]["lpips_diversity"]["reason"]

    combined = combine_seeds([record, again])
    assert combined["seeds"] == [0, 1]
    k = combined["metrics"]["kid"]
    assert k["per_seed"] == [kid["value"], again["metrics"]["kid"]["value"]]
    assert k["value"] == pytest.approx(sum(k["per_seed"]) / 2) and k["std"] is not None
    assert combined["metrics"]["fid"]["status"] == "skipped"   # not computed for seed 1


def test_offline_metrics_are_skipped_with_the_reason(no_weights_env, synthetic_val, tmp_path):  # noqa: F811
    protocol = load_protocol(write_protocol(tmp_path))
    gen = write_generated(synthetic_val, tmp_path / "gen", "noise")
    keys = diversity_keys(synthetic_val, protocol)
    record = evaluate_images(gen, synthetic_val, protocol, multimodal=True, progress=False,
                             diversity=_diversity_files(synthetic_val, tmp_path / "d", keys, 3))
    for name in ("fid", "kid"):
        entry = record["metrics"][name]
        assert entry["status"] == "skipped" and "value" not in entry
        assert "weights-inception-2015-12-05-6726825d.pth" in entry["reason"]
        assert "HARNESS_OFFLINE=1" in entry["reason"]
    div = record["metrics"]["lpips_diversity"]
    assert div["status"] == "skipped" and "alexnet-owt-7be5be79.pth" in div["reason"]
    assert record["weights"] == {}
    path = write_record(tmp_path / "run", record)
    assert path == tmp_path / "run" / "metrics.json"


def test_offline_segmenter_is_skipped(no_weights_env, tmp_path):  # noqa: F811
    """cityscapes-paper on a tiny real Cityscapes layout: DRN's file is missing -> skipped."""
    from _data_helpers import make_cityscapes
    from harness.core.data.factory import build_dataset
    keys = make_cityscapes(tmp_path / "cs", "val")
    dataset = build_dataset("cityscapes", {"root": str(tmp_path / "cs")}, "val")
    protocol = load_protocol("cityscapes-paper")
    gen = tmp_path / "gen"
    gen.mkdir()
    for key in keys:   # SPADE names its outputs after the image file
        Image.new("RGB", (512, 256), (90, 90, 90)).save(gen / f"{key}_leftImg8bit.png")
    record = evaluate_images(gen, dataset, protocol, multimodal=False, progress=False)
    for name in ("miou", "accuracy", "real_miou", "real_accuracy"):
        entry = record["metrics"][name]
        assert entry["status"] == "skipped" and "drn-d-105_ms_cityscapes.pth" in entry["reason"]
    assert record["metrics"]["fid"]["status"] == "skipped"
    assert record["metrics"]["lpips_diversity"]["status"] == "n/a"


# --- pairing -----------------------------------------------------------------------------------
@pytest.fixture
def cityscapes(tmp_path):
    from _data_helpers import make_cityscapes
    from harness.core.data.factory import build_dataset
    keys = make_cityscapes(tmp_path / "cs", "val", cities={"aachen": 3, "bremen": 2})
    return build_dataset("cityscapes", {"root": str(tmp_path / "cs")}, "val"), keys


def _touch(folder: Path, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        Image.new("RGB", (4, 4)).save(folder / n)


def test_pairing_by_key_file_stems_and_known_suffixes(cityscapes, tmp_path):
    dataset, keys = cityscapes
    names = [f"{keys[0]}.png", f"{keys[1]}_leftImg8bit.png", f"{keys[2]}_gtFine_labelIds.png",
             f"{keys[3]}_leftImg8bit_synthesized_image.jpg", f"{keys[4]}_fake_B.png"]
    _touch(tmp_path / "g", names)
    paired = pair_images(tmp_path / "g", dataset)
    assert list(paired) == keys
    assert [p.name for p in paired.values()] == names
    # Only some keys wanted: files of other records are ignored.
    assert list(pair_images(tmp_path / "g", dataset, keys[:2])) == keys[:2]


def test_pairing_error_lists_both_directions_once(cityscapes, tmp_path):
    dataset, keys = cityscapes
    names = [f"{k}.png" for k in keys[1:]] + ["stray_one.png", "stray_two.png",
                                               f"{keys[1]}_synthesized_image.png"]
    _touch(tmp_path / "g", names)
    with pytest.raises(PairingError) as exc:
        pair_images(tmp_path / "g", dataset)
    msg = str(exc.value)
    assert "2 of 7 image files match no label map: stray_one.png, stray_two.png" in msg
    assert f"1 label maps have no image file: {keys[0]}" in msg
    assert "1 label maps have two image files" in msg and keys[1] in msg


def test_pairing_lists_are_truncated_with_counts(cityscapes, tmp_path):
    dataset, _ = cityscapes
    _touch(tmp_path / "g", [f"x{i:02d}.png" for i in range(25)])
    with pytest.raises(PairingError) as exc:
        pair_images(tmp_path / "g", dataset)
    assert "25 of 25 image files match no label map" in str(exc.value)
    assert "... and 15 more" in str(exc.value)
    with pytest.raises(PairingError, match="does not exist"):
        pair_images(tmp_path / "missing", dataset)


def test_wrong_size_is_one_error_with_the_expected_size(no_weights_env, synthetic_val, tmp_path):  # noqa: F811
    protocol = load_protocol(write_protocol(tmp_path))
    folder = tmp_path / "g"
    gen = write_generated(synthetic_val, folder, "noise")
    Image.new("RGB", (32, 32)).save(gen[synthetic_val.records()[3].key])
    with pytest.raises(PairingError) as exc:
        evaluate_images(folder, synthetic_val, protocol, progress=False)
    assert "1 of 12 generated images do not have the protocol's resolution 64x64" in \
        str(exc.value) and "is 32x32" in str(exc.value)


def test_inputs_that_do_not_fit_the_protocol(no_weights_env, synthetic_val, tmp_path):  # noqa: F811
    gen = write_generated(synthetic_val, tmp_path / "g", "noise")
    with pytest.raises(EvaluationError, match="for dataset 'cityscapes'"):
        evaluate_images(gen, synthetic_val, load_protocol("cityscapes-paper"), progress=False)
    with pytest.raises(EvaluationError, match="scores 50 images but synthetic/val has only 12"):
        evaluate_images(gen, synthetic_val, load_protocol(write_protocol(tmp_path, num_images=50)))
    proto = load_protocol(write_protocol(tmp_path, num_images=4))
    assert len(select_records(synthetic_val, proto)) == 4
    with pytest.raises(PairingError, match="8 images name keys that are not evaluated"):
        evaluate_images(gen, synthetic_val, proto, progress=False)
    subset = {k: gen[k] for k in list(gen)[:4]}
    with pytest.raises(EvaluationError, match="unknown metric 'fdi'"):
        evaluate_images(subset, synthetic_val, proto, skip=("fdi",), progress=False)
    with pytest.raises(EvaluationError, match="needs 3 samples for each of 2 label maps"):
        evaluate_images(subset, synthetic_val, proto, multimodal=True, progress=False,
                        diversity={k: [gen[k]] for k in subset})
    record = evaluate_images(subset, synthetic_val, proto, skip=("fid", "kid"), progress=False)
    assert record["n_images"] == 4
    assert record["metrics"]["lpips_diversity"]["status"] == "n/a"
    assert "unknown" in record["metrics"]["lpips_diversity"]["reason"]


# --- metrics.json and seeds ----------------------------------------------------------------------
def _record(protocol_id: str, inference: str, value: float, seed: int = 0) -> dict:
    return {"schema": 1, "method": "m", "dataset": "d", "variant": None, "run_id": None,
            "protocol": {"name": "p", "hash": "h" + protocol_id, "id": protocol_id, "fields": {}},
            "inference": inference, "n_images": 3, "seeds": [seed],
            "metrics": {"fid": {"status": "ok", "value": value, "ci95": [value - 1, value + 1],
                                "n": 3, "per_seed": [value], "std": None},
                        "miou": {"status": "ok", "value": value, "per_class": {"a": value,
                                                                             "b": None}},
                        "kid": {"status": "skipped", "reason": "no weights"}},
            "weights": {}, "environment": {}}


def test_write_record_merges_atomically(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    write_record(run, _record("p-1", "random", 1.0))
    write_record(run / "metrics.json", _record("p-1", "encoded", 2.0))
    write_record(run, _record("p-1", "random", 3.0))
    data = read_metrics(run)
    assert data["schema"] == 1
    assert set(data["evaluations"]) == {"p-1/random", "p-1/encoded"}
    assert data["evaluations"]["p-1/random"]["metrics"]["fid"]["value"] == 3.0
    # no temp files left (the records lock file stays: deleting a lock file races its waiters)
    assert sorted(p.name for p in run.iterdir()) == [".metrics.json.lock", "metrics.json"]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.json").write_text('{"evaluations": []}')
    with pytest.raises(RecordError, match="not a schema-1 metrics file"):
        write_record(bad, _record("p-1", "random", 1.0))
    assert (bad / "metrics.json").read_text() == '{"evaluations": []}'


def test_combine_seeds_mean_std_per_seed():
    a, b, c = (_record("p-1", "random", v, seed=s) for s, v in enumerate((10.0, 12.0, 14.0)))
    out = combine_seeds([a, b, c])
    fid = out["metrics"]["fid"]
    assert fid["value"] == pytest.approx(12.0) and fid["std"] == pytest.approx(2.0)
    assert fid["per_seed"] == [10.0, 12.0, 14.0] and fid["ci95"] is None
    assert fid["ci95_per_seed"] == [[9.0, 11.0], [11.0, 13.0], [13.0, 15.0]]
    assert out["metrics"]["miou"]["per_class"] == {"a": pytest.approx(12.0), "b": None}
    assert out["metrics"]["kid"] == {"status": "skipped", "reason": "no weights"}
    assert out["seeds"] == [0, 1, 2]
    with pytest.raises(RecordError, match="different protocols"):
        combine_seeds([a, _record("p-2", "random", 1.0, seed=5)])
    with pytest.raises(RecordError, match="repeat seeds"):
        combine_seeds([a, a])


def test_metric_directions_for_the_leaderboard():
    assert METRICS["fid"]["direction"] == METRICS["kid"]["direction"] == "lower"
    for name in ("miou", "accuracy", "real_miou", "real_accuracy", "lpips_diversity"):
        assert METRICS[name]["direction"] == "higher"
    assert all("label" in m for m in METRICS.values())


# --- sharding ------------------------------------------------------------------------------------
def test_shard_and_merge_reproduce_the_unsharded_result():
    from evaluators.sharding import merge_rows, merge_values, shard_indices
    from harness.core.dist import DistInfo
    rows = torch.arange(7 * 3, dtype=torch.float32).reshape(7, 3)
    for world in (1, 2, 3, 8):
        parts = []
        for rank in range(world):
            idx = shard_indices(7, DistInfo(rank=rank, world_size=world))
            parts.append((idx, rows[idx] if idx else rows[:0]))
        assert sorted(i for idx, _ in parts for i in idx) == list(range(7))
        assert torch.equal(merge_rows(parts, 7), rows)
        assert merge_values([(idx, [f"v{i}" for i in idx]) for idx, _ in parts], 7) == \
            [f"v{i}" for i in range(7)]
    with pytest.raises(ValueError, match="cover 6 of 7"):
        merge_rows([(list(range(6)), rows[:6])], 7)


def _worker(rank: int, world: int, init_file: str, args: dict) -> None:
    import torch.distributed as dist

    from harness.core.data.synthetic import SyntheticDataset, SyntheticOptions
    from harness.core.dist import DistInfo
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    try:
        torch.set_num_threads(1)
        ds = SyntheticDataset(SyntheticOptions(**args["options"]), "val")
        record = evaluate_images(args["gen"], ds, load_protocol(args["protocol"]),
                                 diversity=args["div"], multimodal=True, progress=False,
                                 dist=DistInfo(rank=rank, world_size=world))
        Path(args["out"][rank]).write_text(json.dumps(record["metrics"]))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two spawned interpreters import torch: ~30 s on 2 shared cores
def test_two_process_gloo_evaluation_equals_one_process(eval_env, synthetic_val, tmp_path):  # noqa: F811
    """LPIPS diversity (the metric without Inception's CPU cost) sharded over 2 gloo ranks."""
    import torch.multiprocessing as mp
    protocol = write_protocol(tmp_path, fid={"enabled": False},
                              diversity={"samples_per_map": 3, "maps": 5})
    proto = load_protocol(protocol)
    gen = write_generated(synthetic_val, tmp_path / "g", "noise")
    keys = diversity_keys(synthetic_val, proto)
    div = _diversity_files(synthetic_val, tmp_path / "d", keys, 3)
    single = evaluate_images(gen, synthetic_val, proto, diversity=div, multimodal=True,
                             progress=False)["metrics"]
    o = synthetic_val.options
    args = {"options": {"root": o.root, "num_train": o.num_train, "num_val": o.num_val,
                        "size": o.size},
            "gen": {k: str(v) for k, v in gen.items()}, "protocol": str(protocol),
            "div": {k: [str(p) for p in v] for k, v in div.items()},
            "out": [str(tmp_path / f"rank{r}.json") for r in range(2)]}
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), args), nprocs=2, join=True)
    for r in range(2):
        sharded = json.loads((tmp_path / f"rank{r}.json").read_text())
        assert sharded["lpips_diversity"]["value"] == \
            pytest.approx(single["lpips_diversity"]["value"], rel=1e-6)
        assert sharded["fid"]["status"] == "n/a"


def test_synthetic_protocol_with_the_harness_trained_segmenter(eval_env, synthetic_val, tmp_path):  # noqa: F811
    """The shipped synthetic protocol's segmenter (a few training steps here); the real-image
    row equals the trainer's own score on the real val images (an independent implementation)."""
    from evaluators.segmenters.trained import train_segmenter
    shipped = load_protocol("synthetic")
    assert shipped.segmentation.segmenter == "synthetic-unet"
    trained = train_segmenter("synthetic", synthetic_val.options, steps=3, batch_size=2,
                              out_path=tmp_path / "unet.pt", progress=False)
    protocol = load_protocol(write_protocol(
        tmp_path, fid={"enabled": False}, diversity={"enabled": False},
        segmentation={"segmenter": "synthetic-unet", "label_space": "synthetic"}))
    gen = write_generated(synthetic_val, tmp_path / "g", "blur")
    record = evaluate_images(gen, synthetic_val, protocol, progress=False,
                             weights={"synthetic-unet": trained.checkpoint})
    m = record["metrics"]
    assert m["real_miou"]["value"] == pytest.approx(trained.miou, abs=1e-6)
    assert m["real_accuracy"]["value"] == pytest.approx(trained.accuracy, abs=1e-6)
    assert m["miou"]["status"] == m["accuracy"]["status"] == "ok"
    assert 0 <= m["miou"]["value"] <= 100
    assert record["weights"]["harness-trained-synthetic"]["origin"] == "explicit"


def test_harness_trained_segmenters_receive_the_evaluated_dataset(synthetic_val, tmp_path):  # noqa: F811
    from evaluators.evaluate import _build_options, _Run
    from evaluators.segmenters import SEGMENTERS
    protocol = load_protocol(write_protocol(tmp_path))
    run = _Run(synthetic_val, protocol, [], {}, device="cpu", batch_size=1, skips=set(),
               dist=None, weights=None, progress=False)
    generic = _build_options(SEGMENTERS.get("harness-trained"), run)
    assert generic == {"dataset": "synthetic", "dataset_options": synthetic_val.options,
                       "progress": False}
    assert _build_options(SEGMENTERS.get("synthetic-unet"), run) == \
        {"dataset_options": synthetic_val.options, "progress": False}
    assert _build_options(SEGMENTERS.get("drn-d-105-cityscapes"), run) == \
        dict(SEGMENTERS.get("drn-d-105-cityscapes").options)
    shipped = load_protocol("folder")
    assert shipped.segmentation.segmenter == "harness-trained"
    assert shipped.segmentation.label_space == "folder"
