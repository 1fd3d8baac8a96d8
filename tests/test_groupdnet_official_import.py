"""Official GroupDNet (SMIS) checkpoints: round trips through files in the official layout,
strict key checking, tolerated DataParallel prefixes / missing BatchNorm counters, errors.
(Key coverage at the official configurations: tests/test_groupdnet_params.py.)"""
import pytest
import torch

from methods.groupdnet.method import GroupDNet
from methods.groupdnet.official_import import FILES, export_official
from methods.spade.official import OfficialCheckpointError

from _groupdnet_helpers import tiny_config, tiny_info


def randomised(seed, **cfg):
    torch.manual_seed(seed)
    method = GroupDNet(tiny_config(**cfg), tiny_info())
    with torch.no_grad():
        for net in method.nets.values():
            for name, b in net.named_buffers():
                if name.endswith("running_var"):
                    b.uniform_(0.5, 1.5)
                elif name.endswith("running_mean"):
                    b.normal_(0, 0.1)
    return method


def scene(n=2, size=64):
    label = torch.zeros(n, size, size, dtype=torch.long)
    label[:, : size // 2] = 1
    label[:, size // 2:, : size // 3] = 2
    label[1:, 4:12, 4:12] = 3
    instance = label * 10
    image = torch.rand(n, 3, size, size) * 2 - 1
    return label, instance, image


def test_round_trip_through_official_files_reproduces_outputs(tmp_path):
    source, target = randomised(0), randomised(1)
    paths = export_official(source, tmp_path)
    assert {k: p.name for k, p in paths.items()} == FILES
    report = target.import_official(paths)
    assert report.loaded == {n: len(source.nets[n].state_dict()) for n in ("G", "D", "E")}
    assert report.dropped == {} and report.notes == []
    for name in ("G", "D", "E"):
        a, b = source.nets[name].state_dict(), target.nets[name].state_dict()
        assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    label, instance, image = scene()
    codes = source.sample_class_codes(label, [torch.Generator().manual_seed(i) for i in range(2)])
    assert torch.equal(source.generate_from_codes(label, codes, instance=instance),
                       target.generate_from_codes(label, codes, instance=instance))
    assert torch.equal(source.encode_class_codes(image, label, instance=instance),
                       target.encode_class_codes(image, label, instance=instance))
    # the unused up_4 travels too (official ADE20K files contain it) and stays frozen
    assert not any(p.requires_grad for p in target.nets["G"].up_4.parameters())


def test_dataparallel_prefix_and_missing_batch_counters_are_tolerated(tmp_path):
    source, target = randomised(0), randomised(1)
    state = {"module." + k: v for k, v in source.nets["G"].state_dict().items()
             if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "latest_net_G.pth")
    report = target.import_official({"G": tmp_path / "latest_net_G.pth"})
    assert report.loaded == {"G": len(state)}
    assert any("num_batches_tracked" in n for n in report.notes)
    assert any("no encoder checkpoint" in n for n in report.notes)
    assert any("no discriminator checkpoint" in n for n in report.notes)
    counters = [v for k, v in target.nets["G"].state_dict().items() if k.endswith("num_batches_tracked")]
    assert counters and all(int(v) == 0 for v in counters)


def test_missing_and_unexpected_keys_name_the_file_and_keys_and_load_nothing(tmp_path):
    source, target = randomised(0), randomised(1)
    paths = export_official(source, tmp_path)
    state = torch.load(paths["E"])
    del state["fc_mu.bias"]
    state["layer9.0.weight_orig"] = torch.zeros(1)
    torch.save(state, paths["E"])
    before = {k: v.clone() for k, v in target.nets["G"].state_dict().items()}
    with pytest.raises(OfficialCheckpointError) as err:
        target.import_official(paths)
    message = str(err.value)
    assert str(paths["E"]) in message and "fc_mu.bias" in message and "layer9.0.weight_orig" in message
    assert "nef_per_class" in message          # the hint names the options that must match
    assert all(torch.equal(before[k], v) for k, v in target.nets["G"].state_dict().items())


def test_checkpoint_of_another_class_count_or_schedule_is_a_shape_error(tmp_path):
    other = GroupDNet(tiny_config(), tiny_info(label_nc=5))
    target = randomised(1)
    paths = export_official(other, tmp_path)
    with pytest.raises(OfficialCheckpointError, match=r"shape mismatches .*G_middle_0\.conv_0\.bias: file \(80,\) vs network \(64,\)"):
        target.import_official({"G": paths["G"]})
    regrouped = GroupDNet(tiny_config(groups=(4, 2, 2, 2, 2, 2, 1)), tiny_info())
    paths = export_official(regrouped, tmp_path / "g")
    with pytest.raises(OfficialCheckpointError, match=r"G_middle_0\.conv_0\.weight_orig"):
        target.import_official({"G": paths["G"]})


def test_bad_requests_are_explicit(tmp_path):
    method = randomised(0)
    with pytest.raises(OfficialCheckpointError, match="is required"):
        method.import_official({"E": tmp_path / "x.pth"})
    with pytest.raises(OfficialCheckpointError, match="unknown network"):
        method.import_official({"G": tmp_path / "x.pth", "E_edge": tmp_path / "y.pth"})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        method.import_official({"G": tmp_path / "absent.pth"})
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(OfficialCheckpointError, match="junk.pth could not be read"):
        method.import_official({"G": tmp_path / "junk.pth"})
