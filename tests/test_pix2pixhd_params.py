"""pix2pixHD networks at the official configurations: exact parameter counts (from instantiating
the official code, /work/shared/reference/param-counts.md) and the official state_dict keys.
Built on the 'meta' device."""
import pytest
import torch

from methods.pix2pixhd.method import Pix2PixHD, build_networks

from _methods_helpers import sp_count, sp_keys, sp_official_keys

S_CITYSCAPES = 36  # 35 labels + instance edge


def _nets(semantic_nc=S_CITYSCAPES, **kw):
    cfg = Pix2PixHD.Config(lambda_vgg=0.0, **kw)
    with torch.device("meta"):
        return build_networks(cfg, semantic_nc)


GLOBAL_TRUNK = {1: 112_960, 4: 73_856, 7: 295_168, 10: 1_180_160, 13: 4_719_616,
                **{i: 18_876_416 for i in range(16, 25)}, 25: 4_719_104, 28: 1_179_904,
                31: 295_040, 34: 73_792, 38: 9_411}


def _trunk(G):
    return {i: sp_count(m) for i, m in enumerate(G.model) if sp_count(m)}


def test_global_generator_matches_official_count_layer_by_layer():
    G = _nets()["G"]
    assert sp_count(G) == 182_546_755
    assert _trunk(G) == GLOBAL_TRUNK
    assert sp_count(G.model[16]) == 18_876_416  # one ResnetBlock(1024)


def test_global_generator_with_instance_features_has_39_inputs():
    nets = _nets(instance_feat=True)
    assert sp_count(nets["G"]) == 182_556_163
    assert _trunk(nets["G"])[1] == 122_368
    assert sp_count(nets["E"]) == 788_803


def test_local_enhancer_matches_official_counts():
    G = _nets(netG="local", ngf=32)["G"]
    assert sp_count(G) == 182_857_059
    assert {n: sp_count(m) for n, m in G.named_children() if sp_count(m)} == dict(
        model=182_537_344, model1_1=74_976, model1_2=244_739)
    assert _trunk(G) == {k: v for k, v in GLOBAL_TRUNK.items() if k != 38}


@pytest.mark.parametrize("num_D,total", [(2, 5_603_202), (3, 8_404_803)])
def test_discriminator_matches_official_counts(num_D, total):
    D = _nets(num_D=num_D)["D"]
    assert sp_count(D) == total
    per_layer = {n: sp_count(m) for n, m in D.named_children() if sp_count(m)}
    assert per_layer == {f"scale{s}_layer{j}": c for s in range(num_D)
                         for j, c in enumerate((40_000, 131_200, 524_544, 2_097_664, 8_193))}


def test_spade_repository_variant_matches_official_count():
    nets = _nets(recipe="spade")
    assert sp_count(nets["G"]) == 182_525_379  # 21,376 fewer: biases before IN removed
    assert _trunk(nets["G"]) == {1: 112_896, 3: 73_728, 5: 294_912, 7: 1_179_648, 9: 4_718_592,
                                 **{i: 18_874_368 for i in range(11, 20)}, 20: 4_718_592,
                                 22: 1_179_648, 24: 294_912, 26: 73_728, 29: 9_411}
    assert sp_count(nets["D"]) == 5_601_410  # SPADE's D (SN + IN), num_D 2


@pytest.mark.parametrize("network,net,kw,s", [
    ("pix2pixhd/G global (in 36)", "G", {}, 36),
    ("pix2pixhd/G local ngf 32 (in 36)", "G", {"netG": "local", "ngf": 32}, 36),
    ("pix2pixhd/G global instance_feat (in 39)", "G", {"instance_feat": True}, 36),
    ("pix2pixhd/D num_D 3 (in 39)", "D", {"num_D": 3}, 36),
    ("pix2pixhd/E", "E", {"instance_feat": True}, 36),
    ("pix2pixhd-spaderepo/G cityscapes (S=36)", "G", {"recipe": "spade"}, 36),
])
def test_state_dict_keys_and_shapes_equal_the_official_ones(network, net, kw, s):
    ours = sp_keys(_nets(s, **kw)[net])
    official = sp_official_keys(network)
    assert sorted(set(official) - set(ours)) == []
    assert sorted(set(ours) - set(official)) == []
    assert {k: v for k, v in ours.items() if official[k] != v} == {}


def test_recipe_defaults_are_resolved_into_the_config():
    original, spade = Pix2PixHD.Config(), Pix2PixHD.Config(recipe="spade")
    assert (original.num_D, original.gan_mode, original.lr_G, original.lr_D, original.beta1,
            original.beta2, original.lambda_vgg, original.init_type) == \
        (3, "ls", 2e-4, 2e-4, 0.5, 0.999, 10.0, "normal")
    assert (spade.num_D, spade.gan_mode, spade.lr_G, spade.lr_D, spade.beta1, spade.beta2,
            spade.lambda_vgg, spade.init_type) == (2, "hinge", 1e-4, 4e-4, 0.0, 0.9, 10.0, "xavier")
    assert Pix2PixHD.Config(lambda_feat=5.0).lambda_vgg == 5.0  # VGG weighted by lambda_feat
    assert Pix2PixHD.Config(num_D=2).num_D == 2


@pytest.mark.parametrize("kw,match", [({"niter_fix_global": 10}, "needs netG: local"),
                                      ({"recipe": "spade", "netG": "local"}, "recipe 'spade'"),
                                      ({"recipe": "spade", "instance_feat": True}, "recipe 'spade'"),
                                      ({"num_D": 0}, "num_D must be >= 1")])
def test_inconsistent_configurations_are_rejected(kw, match):
    with pytest.raises(ValueError, match=match):
        Pix2PixHD.Config(**kw)
