"""CC-FPSE networks: exact official parameter counts (built on the meta device) and wiring."""
import pytest
import torch
import torch.nn.functional as F

from _ccfpse_helpers import official_config, official_info, tiny_config, tiny_info
from methods.ccfpse.cc_block import ConditionalConvBlock
from methods.ccfpse.fpse_discriminator import FPSEDiscriminator
from methods.ccfpse.generator import CondConvGenerator, latent_size
from methods.ccfpse.label_pyramid import LabelFeaturePyramid
from methods.ccfpse.method import build_networks, initialise

# param-counts.md (counted by instantiating the official code at the official options)
PYRAMID_CITYSCAPES_FIRST = 20_864
PYRAMID = {"labelenc": 36_992, "labellat": 4_224, "labeldec": 36_992}
G_BLOCKS = {
    "ade20k": {"head_0": 26_714_112, "G_middle_0": 26_714_112, "G_middle_1": 26_714_112,
               "up_0": 22_039_040, "up_1": 11_311_360, "up_2": 6_193_280, "up_3": 3_695_680,
               "conv_img": 1_731, "labelenc1": 87_104},
    "coco-stuff": {"head_0": 26_866_176, "G_middle_0": 26_866_176, "G_middle_1": 26_866_176,
                   "up_0": 22_229_120, "up_1": 11_501_440, "up_2": 6_383_360, "up_3": 3_885_760,
                   "conv_img": 1_731, "labelenc1": 106_112},
    "cityscapes": {"head_0": 26_184_192, "G_middle_0": 26_184_192, "G_middle_1": 26_184_192,
                   "up_0": 21_376_640, "up_1": 10_648_960, "up_2": 5_530_880, "up_3": 3_033_280,
                   "conv_img": 1_731, "labelenc1": PYRAMID_CITYSCAPES_FIRST},
}
G_FC = {"ade20k": (16_842_752, 1_392_640), "coco-stuff": (16_842_752, 1_696_768),
        "cityscapes": (8_421_376, 332_800)}
G_TOTAL = {"ade20k": (140_704_323, 125_254_211), "coco-stuff": (141_939_843, 126_793_859),
           "cityscapes": (128_055_555, 119_966_979)}
PYRAMID_TOTAL = {"ade20k": 478_144, "coco-stuff": 497_152, "cityscapes": 490_112}
D_COMMON = {"enc1": 1_728, "enc2": 73_728, "enc3": 294_912, "enc4": 1_179_648, "enc5": 2_359_296,
            "lat2": 32_768, "lat3": 65_536, "lat4": 131_072, "lat5": 131_072, "final2": 294_912,
            "final3": 294_912, "final4": 294_912, "tf": 129, "seg": 16_512}
D_EMBEDDING = {"ade20k": 19_456, "coco-stuff": 23_680, "cityscapes": 4_736}
D_TOTAL = {"ade20k": 5_190_593, "coco-stuff": 5_194_817, "cityscapes": 5_175_873}
E_COUNTS = {"layer1": 1_728, "layer2": 73_728, "layer3": 294_912, "layer4": 1_179_648,
            "layer5": 2_359_296, "layer6": 2_359_296, "fc_mu": 2_097_408, "fc_var": 2_097_408}
UNUSED_BN = 18_048 + 8_064   # DepthConv.norm_layer + block norm_0, per G (any dataset)

DATASETS = ("ade20k", "coco-stuff", "cityscapes")


def count(module):
    return sum(p.numel() for p in module.parameters())


def meta_networks(dataset, use_vae):
    with torch.device("meta"):
        return build_networks(official_config(dataset, use_vae), official_info(dataset))


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("use_vae", [True, False])
def test_generator_counts_equal_the_official_per_module_and_in_total(dataset, use_vae):
    G = meta_networks(dataset, use_vae)["G"]
    assert count(G) == G_TOTAL[dataset][0 if use_vae else 1]
    assert count(G.fc) == G_FC[dataset][0 if use_vae else 1]
    for name, expected in G_BLOCKS[dataset].items():
        module = getattr(G.label_pyramid, name) if name.startswith("label") else getattr(G, name)
        assert count(module) == expected, name
    levels = 7 if dataset == "cityscapes" else 6
    for kind, expected in PYRAMID.items():
        for k in range(2 if kind == "labelenc" else 1, levels + (kind == "labelenc")):
            assert count(getattr(G.label_pyramid, f"{kind}{k}")) == expected, f"{kind}{k}"
    assert not hasattr(G.label_pyramid, f"labelenc{levels + 1}")
    assert count(G.label_pyramid) == PYRAMID_TOTAL[dataset]
    frozen = {n: p.numel() for n, p in G.named_parameters() if not p.requires_grad}
    assert sum(frozen.values()) == UNUSED_BN
    assert all(".norm_0." in n or ".norm_layer." in n for n in frozen)


@pytest.mark.parametrize("dataset", DATASETS)
def test_discriminator_and_encoder_counts_equal_the_official(dataset):
    nets = meta_networks(dataset, True)
    D, E = nets["D"], nets["E"]
    assert {n: count(m) for n, m in D.named_children()} == {**D_COMMON, "embedding": D_EMBEDDING[dataset]}
    assert count(D) == D_TOTAL[dataset]
    assert {n: count(m) for n, m in E.named_children() if count(m)} == E_COUNTS
    assert count(E) == 10_463_424
    assert "E" not in meta_networks(dataset, False)


def test_label_pyramid_gives_one_map_per_generator_resolution():
    pyramid = LabelFeaturePyramid(5, nf=8, levels=6)
    maps = pyramid(torch.rand(2, 5, 64, 96))
    assert [tuple(m.shape) for m in maps] == [(2, 8, 64 // 2 ** k, 96 // 2 ** k) for k in range(5, -1, -1)]
    more = LabelFeaturePyramid(5, nf=8, levels=7)(torch.rand(1, 5, 64, 128))
    assert [tuple(m.shape[2:]) for m in more] == [(1, 2), (2, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 128)]


@pytest.mark.parametrize("schedule,size", [("normal", (32, 32)), ("more", (64, 128))])
def test_generator_conditions_every_block_on_onehot_and_pyramid_map_of_its_resolution(schedule, size):
    s, nf = 5, 4
    G = CondConvGenerator(s, size, ngf=nf, z_dim=8, use_vae=True, num_upsampling_layers=schedule,
                          hidden=8)
    initialise(torch.nn.ModuleDict({"G": G}), tiny_config())
    seen, pyramid = {}, []
    G.label_pyramid.register_forward_hook(lambda mod, args, out: pyramid.extend(out))
    for name in ("head_0", "G_middle_0", "G_middle_1", "up_0", "up_1", "up_2", "up_3"):
        getattr(G, name).register_forward_hook(
            lambda mod, args, out, name=name: seen.__setitem__(name, (args[0].shape, args[1])))
    seg = F.one_hot(torch.randint(0, s, (2, *size)), s).permute(0, 3, 1, 2).float()
    out = G(seg, torch.randn(2, 8))
    assert out.shape == (2, 3, *size) and out.abs().max() <= 1
    h0, w0 = latent_size(size, schedule)
    factors = {"head_0": 1, "G_middle_0": 2, "G_middle_1": 4 if schedule == "more" else 2,
               "up_0": 8 if schedule == "more" else 4}
    for name, (x_shape, cond) in seen.items():
        assert cond.shape[1] == s + nf and cond.shape[2:] == x_shape[2:]
        torch.testing.assert_close(cond[:, :s], F.interpolate(seg, size=x_shape[2:], mode="nearest"))
        [level] = [m for m in pyramid if m.shape[2:] == x_shape[2:]]
        torch.testing.assert_close(cond[:, s:], level)
        if name in factors:
            assert tuple(x_shape[2:]) == (h0 * factors[name], w0 * factors[name]), name
    assert tuple(seen["up_3"][0][2:]) == size


def test_generator_implementations_agree():
    torch.manual_seed(0)
    lean = CondConvGenerator(4, (32, 32), ngf=4, use_vae=False, hidden=8)
    unfold = CondConvGenerator(4, (32, 32), ngf=4, use_vae=False, hidden=8, conditional_conv="unfold")
    unfold.load_state_dict(lean.state_dict())
    seg = F.one_hot(torch.randint(0, 4, (2, 32, 32)), 4).permute(0, 3, 1, 2).float()
    torch.testing.assert_close(lean(seg), unfold(seg), rtol=1e-4, atol=1e-5)


def test_bad_sizes_and_channel_plans_are_explicit_errors():
    with pytest.raises(ValueError, match="multiple of 64"):
        latent_size((256, 500), "more")
    with pytest.raises(ValueError, match="num_upsampling_layers"):
        latent_size((256, 256), "most")
    with pytest.raises(ValueError, match="fout <= fin"):
        ConditionalConvBlock(8, 16, 5)


def test_block_main_path_and_shortcut():
    """fin == fout: identity shortcut; fin != fout: SPADE-modulated SN 1x1 shortcut."""
    same, down = ConditionalConvBlock(8, 8, 5, hidden=4), ConditionalConvBlock(8, 4, 5, hidden=4)
    assert not hasattr(same, "conv_s") and hasattr(down, "conv_s") and hasattr(down, "norm_s")
    x, cond = torch.randn(2, 8, 6, 6), torch.rand(2, 5, 6, 6)
    with torch.no_grad():
        for p in (same.conv_3.weight, same.conv_3.bias):
            p.zero_()  # main path -> LReLU(0 * attention) = 0
    torch.testing.assert_close(same(x, cond), x)
    assert down(x, cond).shape == (2, 4, 6, 6)


def test_fpse_discriminator_shapes_and_image_only_features():
    D = FPSEDiscriminator(5, ndf=4).eval()  # eval: no spectral-norm update between calls
    image = torch.randn(2, 3, 64, 128)
    seg_a = F.one_hot(torch.randint(0, 5, (2, 64, 128)), 5).permute(0, 3, 1, 2).float()
    feats, preds = D(image, seg_a)
    assert [tuple(f.shape) for f in feats] == [(2, 8, 16, 32), (2, 16, 8, 16), (2, 32, 4, 8), (2, 32, 2, 4)]
    assert [tuple(p.shape) for p in preds] == [(2, 1, 16, 32), (2, 1, 8, 16), (2, 1, 4, 8)]
    feats_b, _ = D(image, torch.zeros_like(seg_a))
    for a, b in zip(feats, feats_b):
        assert torch.equal(a, b)  # the label map enters only through the projection term


def test_fpse_score_is_patch_logit_plus_label_embedding_projection():
    """pred_a - pred_b = <avgpool_{4,8,16}(emb(seg_a) - emb(seg_b)), seg(final_k)> per pixel."""
    torch.manual_seed(0)
    D = FPSEDiscriminator(5, ndf=4).eval()
    semantic = []
    D.seg.register_forward_hook(lambda m, a, out: semantic.append(out))
    image = torch.randn(1, 3, 64, 64)
    seg_a = F.one_hot(torch.randint(0, 5, (1, 64, 64)), 5).permute(0, 3, 1, 2).float()
    seg_b = F.one_hot(torch.randint(0, 5, (1, 64, 64)), 5).permute(0, 3, 1, 2).float()
    _, preds_a = D(image, seg_a)
    _, preds_b = D(image, seg_b)
    weight = D.embedding.weight[:, :, 0, 0]
    diff = torch.einsum("oc,nchw->nohw", weight, seg_a - seg_b)
    for k, (pa, pb) in enumerate(zip(preds_a, preds_b)):
        pooled = F.avg_pool2d(diff, 4 * 2 ** k)
        expected = (pooled * semantic[k]).sum(1, keepdim=True)
        torch.testing.assert_close(pa - pb, expected, rtol=1e-4, atol=1e-5)


def test_tiny_method_networks_and_edge_channel():
    nets = build_networks(tiny_config(), tiny_info(instances=True))
    assert nets["D"].embedding.in_channels == 5            # 4 classes + edge
    assert nets["G"].label_pyramid.labelenc1[0][0].in_channels == 5
    nets = build_networks(tiny_config(instance_edges=False), tiny_info(instances=True))
    assert nets["D"].embedding.in_channels == 4
