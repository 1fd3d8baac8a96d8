"""GroupDNet networks at the official configurations: exact parameter counts (counted by
instantiating the official code, /work/shared/reference/param-counts.md), official keys, and the
decoder schedules (the official ones and the rule for any class count).

Networks are built on the 'meta' device: no memory, no initialisation, same structure.
"""
import pytest
import torch

from methods.groupdnet.schedule import ScheduleError, derive_groups, plan_decoder
from methods.groupdnet.method import GroupDNet

from _groupdnet_helpers import (count, official_config, official_info, official_keys,
                                official_networks, tiny_config, tiny_info)

GENERATOR_MODULES = {  # param-counts.md section 2, per top-level submodule
    "cityscapes": dict(fc=327_040, head_0=16_040_150, G_middle_0=16_040_150, G_middle_1=21_342_440,
                       up_0=13_270_810, up_1=4_679_150, up_2=2_489_900, up_3=2_304_155,
                       conv_img=7_563),
    "ade20k": dict(fc=176_368, head_0=890_296, G_middle_0=24_241_952, G_middle_1=15_901_472,
                   up_0=7_956_064, up_1=8_882_888, up_2=4_441_444, up_3=3_964_772, up_4=1_868_132,
                   conv_img=3_459),
}
ENCODER_MODULES = {
    "cityscapes": dict(layer1=9_450, layer2=63_000, layer3=252_000, layer4=1_008_000,
                       layer5=2_016_000, layer6=2_016_000, fc_mu=201_880, fc_var=201_880),
    "ade20k": dict(layer1=16_308, layer2=43_488, layer3=173_952, layer4=695_808, layer5=1_391_616,
                   layer6=1_391_616, fc_mu=349_112, fc_var=349_112),
}


@pytest.mark.parametrize("dataset,G,E,D", [("cityscapes", 76_501_358, 5_768_210, 5_601_410),
                                           ("ade20k", 68_326_847, 4_411_012, 5_836_930)])
def test_official_parameter_counts(dataset, G, E, D):
    nets = official_networks(dataset)
    assert (count(nets["G"]), count(nets["E"]), count(nets["D"])) == (G, E, D)
    assert {n: count(m) for n, m in nets["G"].named_children() if count(m)} == GENERATOR_MODULES[dataset]
    assert {n: count(m) for n, m in nets["E"].named_children() if count(m)} == ENCODER_MODULES[dataset]
    assert [count(m) for m in nets["D"].children()] == [D // 2, D // 2]


def test_ade20k_without_the_unused_up_4_matches_the_official_remainder():
    G = official_networks("ade20k")["G"]
    assert count(G) - count(G.up_4) == 66_458_715      # param-counts.md: "without up_4"


def test_official_schedules_and_trace():
    G = official_networks("cityscapes")["G"]
    assert G.plan_groups == (35, 35, 20, 14, 10, 4, 1) and (G.sh, G.sw) == (4, 8)
    assert (G.fc.in_channels, G.fc.out_channels, G.fc.groups) == (280, 4480, 35)
    G = official_networks("ade20k")["G"]
    assert G.plan_groups == (151, 16, 16, 8, 4, 2, 1) and (G.sh, G.sw) == (4, 4)
    # methods.md A.6: 1208 -> 2416 -> 2416 -> 2048 -> 1024 -> 1024 -> 512 -> 256 -> 128 -> 3
    widths = [G.fc.in_channels, G.fc.out_channels] + [
        getattr(G, b).conv_1.out_channels for b in
        ("head_0", "G_middle_0", "G_middle_1", "up_0", "up_1", "up_2", "up_3")] + [G.conv_img.out_channels]
    assert widths == [1208, 2416, 2416, 2048, 1024, 1024, 512, 256, 128, 3]
    # the CG-Norm hidden widths of the rules (methods.md 4.4)
    assert G.head_0.norm_0.mlp_shared[0].out_channels == 302              # 151 % 151 == 0 -> 2C
    assert G.G_middle_0.norm_0.mlp_shared[0].out_channels == 151 * 16     # else C * g
    assert G.G_middle_0.norm_0.mlp_gamma.groups == 16
    C = official_networks("cityscapes")["G"]
    assert C.up_0.norm_0.mlp_shared[0].in_channels == 70                  # (mask, edge) pairs
    assert C.up_0.norm_0.mlp_shared[0].out_channels == 35 * 14
    assert C.up_0.norm_0.mlp_gamma.groups == 35


@pytest.mark.parametrize("dataset", ["cityscapes", "ade20k"])
@pytest.mark.parametrize("net", ["G", "D", "E"])
def test_every_official_key_has_a_home_of_the_same_shape(dataset, net):
    module = official_networks(dataset)[net]
    assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == official_keys(dataset, net)


def test_unused_up_4_is_frozen_and_outside_the_optimiser():
    m = GroupDNet(tiny_config(), tiny_info())
    up_4 = list(m.nets["G"].up_4.parameters())
    assert up_4 and not any(p.requires_grad for p in up_4)
    in_opt = {id(p) for g in m.optimizers()["G"].param_groups for p in g["params"]}
    assert not any(id(p) in in_opt for p in up_4)
    trainable = [p for n in ("G", "E") for p in m.nets[n].parameters() if p.requires_grad]
    assert {id(p) for p in trainable} == in_opt
    assert m.nets["G"].unused == ("up_4",)


@pytest.mark.parametrize("classes,expected", [
    (151, (151, 16, 16, 8, 4, 2, 1)),      # reproduces ADE20K
    (183, (183, 16, 16, 8, 4, 2, 1)),      # COCO-Stuff 182 + don't care
    (184, (184, 16, 16, 8, 4, 2, 1)),
    (10, (10, 8, 8, 8, 4, 2, 1)),          # synthetic: never more groups than classes
    (5, (5, 4, 4, 4, 4, 2, 1)),
    (2, (2, 2, 2, 2, 2, 2, 1)),
    (1, (1, 1, 1, 1, 1, 1, 1)),
])
def test_the_schedule_rule(classes, expected):
    assert derive_groups(classes) == expected


@pytest.mark.parametrize("classes", [1, 2, 3, 7, 10, 19, 35, 150, 151, 183, 184, 300])
@pytest.mark.parametrize("ngf", [1, 3, 8, 64])
def test_the_rule_is_valid_for_every_class_count_and_width(classes, ngf):
    plan = plan_decoder("ade20k", classes, ngf)
    for b in plan.blocks:
        assert b.fin % b.groups == b.fout % b.groups == b.fmiddle % b.groups == 0
    assert plan.groups[0] == classes and all(g <= classes for g in plan.groups)
    assert list(plan.groups) == sorted(plan.groups, reverse=True)


def test_indivisible_widths_are_one_clear_error():
    with pytest.raises(ScheduleError, match=r"up_0 .*cannot be split into 14 groups.*smallest ngf "
                                            r"that fits these groups is 70"):
        plan_decoder("cityscapes", 35, 64)
    with pytest.raises(ScheduleError, match="official schedule only for 35 classes"):
        plan_decoder("cityscapes", 19, 64)
    with pytest.raises(ScheduleError, match="7 positive integers"):
        plan_decoder("ade20k", 10, 8, (10, 8, 4))
    with pytest.raises(ScheduleError, match="G_middle_0 input width 160 cannot be split into 3"):
        plan_decoder("ade20k", 10, 8, (10, 3, 1, 1, 1, 1, 1))
    # the method reports it at construction, naming the option
    with pytest.raises(ScheduleError, match="groups"):
        GroupDNet(tiny_config(groups=(4, 3, 3, 3, 3, 3, 3)), tiny_info())


@pytest.mark.parametrize("dataset,G", [("cityscapes", 76_501_358), ("ade20k", 68_326_847)])
def test_the_presets_are_the_official_configurations(dataset, G):
    from harness.experiment import load_experiment
    from methods.groupdnet.method import build_networks
    cfg = load_experiment("groupdnet", dataset).method.config
    with torch.device("meta"):
        nets = build_networks(cfg, official_info(dataset))
    assert count(nets["G"]) == G
    assert count(nets["E"]) == count(official_networks(dataset)["E"])


def test_the_coco_stuff_preset_uses_the_rule_and_interleaved_edges():
    from harness.experiment import load_experiment
    from harness.core.data.base import DatasetInfo
    from methods.groupdnet.method import build_networks
    cfg = load_experiment("groupdnet", "coco-stuff").method.config
    info = DatasetInfo("coco-stuff", 182, True, True, tuple(f"c{i}" for i in range(182)), (256, 256))
    with torch.device("meta"):
        nets = build_networks(cfg, info)
    assert nets["G"].plan_groups == (183, 16, 16, 8, 4, 2, 1)
    assert nets["G"].head_0.norm_0.mlp_shared[0].in_channels == 2 * 183
    assert nets["D"].discriminator_0.model0[0].in_channels == 183 + 1 + 3
