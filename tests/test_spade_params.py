"""SPADE networks at the official configurations: exact parameter counts (from instantiating the
official code, /work/shared/reference/param-counts.md) and the official state_dict keys/shapes.

Networks are built on the 'meta' device: no memory, no initialisation, same structure.
"""
import pytest
import torch

from methods.blocks.multiscale_discriminator import MultiscaleDiscriminator
from methods.spade.generator import SPADEResnetBlock, latent_size
from methods.spade.method import SPADE, build_networks

from _methods_helpers import sp_count, sp_keys, sp_official_info, sp_official_keys

UPS = {"cityscapes": "more", "ade20k": "normal", "coco-stuff": "normal"}


def _nets(dataset, **kw):
    info = sp_official_info(dataset)
    cfg = SPADE.Config(num_upsampling_layers=UPS[dataset], lambda_vgg=0.0, **kw)
    s = info.num_label_channels + int(info.has_instances)
    with torch.device("meta"):
        return build_networks(cfg, s, info.image_size)


GENERATOR_MODULES = {  # param-counts.md section 2, per top-level submodule
    "ade20k": dict(fc=1_392_640, head_0=23_947_264, G_middle_0=23_947_264, G_middle_1=23_947_264,
                   up_0=14_028_800, up_1=5_374_976, up_2=2_473_472, up_3=1_379_072, conv_img=1_731),
    "coco-stuff": dict(fc=1_696_768, head_0=24_023_296, G_middle_0=24_023_296,
                       G_middle_1=24_023_296, up_0=14_142_848, up_1=5_489_024, up_2=2_587_520,
                       up_3=1_493_120, conv_img=1_731),
    "cityscapes": dict(fc=332_800, head_0=23_682_304, G_middle_0=23_682_304, G_middle_1=23_682_304,
                       up_0=13_631_360, up_1=4_977_536, up_2=2_076_032, up_3=981_632, conv_img=1_731),
}


@pytest.mark.parametrize("dataset,total", [("ade20k", 96_492_483), ("coco-stuff", 97_480_899),
                                           ("cityscapes", 93_048_003)])
def test_generator_without_vae_matches_official_count(dataset, total):
    G = _nets(dataset)["G"]
    assert sp_count(G) == total
    per_module = {name: sp_count(m) for name, m in G.named_children() if sp_count(m)}
    assert per_module == GENERATOR_MODULES[dataset]


@pytest.mark.parametrize("dataset,total,fc", [("ade20k", 111_942_595, 16_842_752),
                                              ("coco-stuff", 112_626_883, 16_842_752),
                                              ("cityscapes", 101_136_579, 8_421_376)])
def test_vae_generator_and_encoder_match_official_counts(dataset, total, fc):
    nets = _nets(dataset, use_vae=True)
    assert sp_count(nets["G"]) == total
    assert sp_count(nets["G"].fc) == fc
    E = nets["E"]
    assert sp_count(E) == 10_463_424
    assert {n: sp_count(m) for n, m in E.named_children() if sp_count(m)} == dict(
        layer1=1_728, layer2=73_728, layer3=294_912, layer4=1_179_648, layer5=2_359_296,
        layer6=2_359_296, fc_mu=2_097_408, fc_var=2_097_408)


@pytest.mark.parametrize("dataset,total", [("cityscapes", 5_601_410), ("ade20k", 5_836_930),
                                           ("coco-stuff", 5_904_514)])
def test_discriminator_matches_official_count(dataset, total):
    D = _nets(dataset)["D"]
    assert sp_count(D) == total
    assert sp_count(D.discriminator_0) == sp_count(D.discriminator_1) == total // 2


def test_block_and_layer_counts():
    with torch.device("meta"):
        head = SPADEResnetBlock(1024, 1024, 151)
        up0 = SPADEResnetBlock(1024, 512, 151)
        up3 = SPADEResnetBlock(128, 64, 151)
    assert sp_count(head.norm_0) == 2_535_424
    assert (sp_count(head), sp_count(up0), sp_count(up3)) == (23_947_264, 14_028_800, 1_379_072)
    assert not hasattr(head, "conv_s") and hasattr(up0, "conv_s")


def test_spectral_norm_only_on_block_convs_and_middle_discriminator_convs():
    nets = _nets("ade20k")
    sn = {n.rsplit(".", 1)[0] for n, _ in nets["G"].named_parameters() if n.endswith("weight_orig")}
    assert all(name.split(".")[-1] in ("conv_0", "conv_1", "conv_s") for name in sn)
    assert len(sn) == 7 * 2 + 4  # two convs per block, shortcut convs in up_0..up_3
    d_sn = sorted(n for n, _ in nets["D"].named_parameters() if n.endswith("weight_orig"))
    assert d_sn == [f"discriminator_{k}.model{j}.0.0.weight_orig" for k in (0, 1) for j in (1, 2, 3)]
    # convs followed by InstanceNorm lose their bias; first and last keep it
    assert all(f"discriminator_0.model{j}.0.0.bias" not in dict(nets["D"].named_parameters())
               for j in (1, 2, 3))


@pytest.mark.parametrize("network,dataset,kw", [
    ("spade/G ade20k (S=151, normal, no VAE)", "ade20k", {}),
    ("spade/G cityscapes (S=36, more, VAE)", "cityscapes", {"use_vae": True}),
    ("spade/D cityscapes (in 39)", "cityscapes", {}),
    ("spade/E", "cityscapes", {"use_vae": True}),
])
def test_state_dict_keys_and_shapes_equal_the_official_ones(network, dataset, kw):
    nets = _nets(dataset, **kw)
    ours = sp_keys(nets[network.split("/")[1][0]])
    official = sp_official_keys(network)
    assert sorted(set(official) - set(ours)) == []
    assert sorted(set(ours) - set(official)) == []
    assert {k: v for k, v in ours.items() if official[k] != v} == {}


@pytest.mark.parametrize("size,ups,expected", [((256, 256), "normal", (8, 8)),
                                               ((256, 512), "more", (4, 8)),
                                               ((512, 512), "most", (4, 4)),
                                               ((64, 64), "normal", (2, 2))])
def test_latent_grid_follows_the_official_rule(size, ups, expected):
    assert latent_size(size, ups) == expected


def test_latent_grid_mismatch_message_names_sizes():
    with pytest.raises(ValueError, match=r"image size 100x200 .*multiple of 32"):
        latent_size((100, 200), "normal")


def test_multiscale_discriminator_has_no_parameters_between_scales():
    with torch.device("meta"):
        D = MultiscaleDiscriminator(39, num_D=3)
    assert sp_count(D) == 3 * 2_800_705
