"""Official CC-FPSE checkpoints: key coverage at the released configuration, round trips, errors."""
import pytest
import torch

from _ccfpse_helpers import (OFFICIAL_G_ADE20K_NOVAE_REMOVED, OFFICIAL_G_ADE20K_NOVAE_RESHAPED,
                             OFFICIAL_KEYS_CITYSCAPES, official_config, official_info, parse_keys,
                             scene_batch, tiny_config, tiny_info)
from methods.ccfpse.method import CCFPSE, build_networks
from methods.ccfpse.official import OfficialCheckpointError, export_official, ours_to_official


def official_view(net, module):
    return {ours_to_official(net, k): tuple(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("net", ["G", "D", "E"])
def test_every_official_cityscapes_key_has_a_home_of_the_same_shape(net):
    with torch.device("meta"):
        nets = build_networks(official_config("cityscapes", use_vae=True), official_info("cityscapes"))
    assert official_view(net, nets[net]) == parse_keys(OFFICIAL_KEYS_CITYSCAPES[net])


def test_official_ade20k_deterministic_generator_keys():
    expected = parse_keys(OFFICIAL_KEYS_CITYSCAPES["G"])
    for key in OFFICIAL_G_ADE20K_NOVAE_REMOVED.split():
        del expected[key]
    expected.update(parse_keys(OFFICIAL_G_ADE20K_NOVAE_RESHAPED))
    with torch.device("meta"):
        nets = build_networks(official_config("ade20k", use_vae=False), official_info("ade20k"))
    assert official_view("G", nets["G"]) == expected


def save_official(method, tmp_path, prefix="", nets=("G", "D", "E")):
    paths = {}
    for name in nets:
        state = {prefix + k: v for k, v in export_official(name, method.nets[name]).items()}
        paths[name] = tmp_path / f"latest_net_{name}.pth"
        torch.save(state, paths[name])
    return paths


def randomised(seed):
    torch.manual_seed(seed)
    method = CCFPSE(tiny_config(), tiny_info())
    with torch.no_grad():
        for net in method.nets.values():
            for name, b in net.named_buffers():
                if name.endswith("running_var"):
                    b.uniform_(0.5, 1.5)
                elif name.endswith("running_mean"):
                    b.normal_(0, 0.1)
    return method


def test_round_trip_through_official_files_reproduces_outputs(tmp_path):
    source, target = randomised(0), randomised(1)
    paths = save_official(source, tmp_path)
    report = target.import_official({k: str(v) for k, v in paths.items()})
    assert report.loaded == {n: len(source.nets[n].state_dict()) for n in ("G", "D", "E")}
    assert report.dropped == {} and report.notes == []
    for name in ("G", "D", "E"):
        for (k, a), (k2, b) in zip(source.nets[name].state_dict().items(),
                                   target.nets[name].state_dict().items()):
            assert k == k2 and torch.equal(a, b), k
    batch = scene_batch(2, (64, 64))
    z = torch.randn(2, 8)
    assert torch.equal(source.generate(batch.label, edge=batch.edge, z=z),
                       target.generate(batch.label, edge=batch.edge, z=z))
    def style(m):
        return m.encode_style(batch.image[:1], batch.label[:1], generator=[torch.Generator().manual_seed(3)])
    assert torch.equal(style(source), style(target))


def test_ddp_prefixed_checkpoints_and_missing_batch_counters_are_tolerated(tmp_path):
    source, target = randomised(0), randomised(1)
    paths = save_official(source, tmp_path, prefix="module.", nets=("G",))
    state = torch.load(paths["G"])
    dropped = [k for k in state if k.endswith("num_batches_tracked")]
    for k in dropped:
        del state[k]
    torch.save(state, paths["G"])
    report = target.import_official(paths)
    assert report.loaded == {"G": len(state)}
    assert any("num_batches_tracked" in n for n in report.notes)
    assert any("no encoder checkpoint" in n for n in report.notes)
    assert all(int(v) == 0 for k, v in target.nets["G"].state_dict().items() if k.endswith("num_batches_tracked"))


def test_missing_and_unexpected_keys_name_the_file_and_the_keys(tmp_path):
    source, target = randomised(0), randomised(1)
    paths = save_official(source, tmp_path)
    state = torch.load(paths["D"])
    del state["tf.weight"]
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, paths["D"])
    before = {k: v.clone() for k, v in target.nets["G"].state_dict().items()}
    with pytest.raises(OfficialCheckpointError) as err:
        target.import_official(paths)
    message = str(err.value)
    assert str(paths["D"]) in message and "tf.weight" in message and "extra.weight" in message
    assert "1 missing" in message and "1 unexpected" in message
    # nothing was loaded: G (a valid file) is untouched
    assert all(torch.equal(before[k], v) for k, v in target.nets["G"].state_dict().items())


def test_shape_mismatch_from_another_dataset_is_explicit(tmp_path):
    source = CCFPSE(tiny_config(), tiny_info(label_nc=6))
    target = CCFPSE(tiny_config(), tiny_info(label_nc=4))
    paths = save_official(source, tmp_path, nets=("G",))
    with pytest.raises(OfficialCheckpointError, match=r"labelenc1\.0\.0\.weight_orig: checkpoint"):
        target.import_official(paths)


def test_pyramid_keys_are_top_level_in_the_official_files(tmp_path):
    source = randomised(0)
    paths = save_official(source, tmp_path, nets=("G",))
    keys = list(torch.load(paths["G"]))
    assert "labelenc1.0.0.weight_orig" in keys and not any(k.startswith("label_pyramid") for k in keys)
    assert "head_0.conv_0.norm_layer.running_var" in keys and "head_0.norm_0.weight" in keys


def test_bad_requests_are_explicit(tmp_path):
    method = randomised(0)
    with pytest.raises(OfficialCheckpointError, match="is required"):
        method.import_official({"D": tmp_path / "x.pth"})
    with pytest.raises(OfficialCheckpointError, match="unknown network"):
        method.import_official({"G": tmp_path / "x.pth", "F": tmp_path / "y.pth"})
    with pytest.raises(OfficialCheckpointError, match="does not exist"):
        method.import_official({"G": tmp_path / "absent.pth"})
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(OfficialCheckpointError, match="junk.pth: cannot be read"):
        method.import_official({"G": tmp_path / "junk.pth"})
    deterministic = CCFPSE(tiny_config(use_vae=False), tiny_info())
    with pytest.raises(OfficialCheckpointError, match="use_vae"):
        deterministic.import_official({"G": tmp_path / "g.pth", "E": tmp_path / "e.pth"})


@pytest.mark.parametrize("method,extra", [
    ("ccfpse", ["--set", "method.ngf=4", "--set", "method.ndf=4", "--set", "method.hidden=8",
                "--set", "method.vgg_loss=false"]),
    ("spade", ["--set", "method.ngf=4", "--set", "method.lambda_vgg=0.0"]),
])
def test_a_bad_official_checkpoint_is_a_user_error_on_the_command_line(tmp_path, method, extra):
    """Every importer's bad file is one line naming the file, exit status 2 (not a traceback)."""
    from _cli_helpers import call_main

    junk = tmp_path / "latest_net_G.pth"
    junk.write_bytes(b"not a checkpoint")
    code, out, err = call_main("import-official", "--method", method, "--dataset", "synthetic",
                               "--set", "dataset.num_train=2", "--set", "dataset.num_val=2",
                               "--set", f"dataset.root={tmp_path / 'syn'}", *extra,
                               "--checkpoint", f"G={junk}", "--runs-dir", str(tmp_path / "runs"),
                               "--quiet")
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(junk) in lines[0], err
    assert "state_dict" in lines[0] and "Traceback" not in err


def test_a_bad_pix2pixhd_feature_file_is_a_user_error(tmp_path):
    """pix2pixHD's importer reports a broken cluster file as the same user error (exit 2)."""
    from methods.base import OfficialCheckpointError
    from methods.pix2pixhd.method import Pix2PixHD
    from _methods_helpers import sp_info

    method = Pix2PixHD(Pix2PixHD.Config(ngf=4, n_downsample_global=2, n_blocks_global=1, ndf=4,
                                        num_D=1, instance_feat=True, nef=4, n_downsample_E=2,
                                        lambda_vgg=0.0), sp_info(3, instances=True, size=(32, 32)))
    files = method.export_official(tmp_path / "released")
    bad = tmp_path / "features_clustered_010.npy"
    bad.write_bytes(b"junk")
    with pytest.raises(OfficialCheckpointError, match=r"features_clustered_010\.npy is not a "
                                                      r"pix2pixHD feature-cluster file"):
        method.import_official({"G": files["G"], "features": bad})
