"""CC-FPSE behind the Method contract: configuration, losses (against independent sums), training
through run_phases on the synthetic preset, generation modes, state."""
import copy

import pytest
import torch
import torch.nn.functional as F

from _ccfpse_helpers import preset_config, scene_batch, tiny_config, tiny_info
from harness.core.config import ConfigError, from_dict
from harness.experiment import load_experiment
from harness.core.data import build_dataset_from_config, collate
from methods import METHODS
from methods.base import Nets, NotSupported, StepPolicy, run_phases
from methods.ccfpse.method import CCFPSE, CCFPSEConfig


def test_registered_with_official_defaults():
    assert METHODS.get("ccfpse") is CCFPSE
    cfg = CCFPSEConfig()
    assert (cfg.ngf, cfg.ndf, cfg.z_dim, cfg.use_vae) == (64, 64, 256, True)
    assert (cfg.lambda_feat, cfg.lambda_vgg, cfg.lambda_kld) == (20.0, 10.0, 0.05)
    assert (cfg.lr_g, cfg.lr_d, cfg.beta1, cfg.beta2) == (1e-4, 4e-4, 0.0, 0.9)
    assert (cfg.init_type, cfg.init_gain, cfg.gan_mode) == ("xavier", 0.02, "hinge")


@pytest.mark.parametrize("dataset,schedule,decay", [("cityscapes", "more", 100),
                                                    ("ade20k", "normal", 100),
                                                    ("coco-stuff", "normal", 0)])
def test_official_presets_resolve_strictly(dataset, schedule, decay):
    cfg = load_experiment("ccfpse", dataset)
    m = cfg.method.config
    assert (m.use_vae, m.lambda_feat, m.num_upsampling_layers, m.vgg_loss) == (True, 20.0, schedule, True)
    assert (cfg.train.batch_size, cfg.train.epochs_constant, cfg.train.epochs_decay) == (1, 100, decay)
    assert cfg.train.sync_batchnorm


def test_unknown_or_mistyped_keys_are_rejected():
    with pytest.raises(ConfigError, match="method.ngff"):
        from_dict(CCFPSEConfig, {"ngff": 3}, prefix="method.")
    with pytest.raises(ConfigError, match="num_upsampling_layers"):
        from_dict(CCFPSEConfig, {"num_upsampling_layers": "most"}, prefix="method.")
    with pytest.raises(ConfigError, match="lr_g must be >= 0"):
        from_dict(CCFPSEConfig, {"lr_g": -1}, prefix="method.")


def test_networks_optimisers_and_phases():
    m = CCFPSE(tiny_config(), tiny_info())
    assert sorted(m.nets) == ["D", "E", "G"] and len(m.aux) == 0
    assert [(p.name, p.optimizer, p.networks) for p in m.phases()] == [
        ("generator", "G", ("G", "E")), ("discriminator", "D", ("D",))]
    g_opt, d_opt = m.optimizers()["G"], m.optimizers()["D"]
    trainable_g = [p for n in ("G", "E") for p in m.nets[n].parameters() if p.requires_grad]
    assert [id(p) for p in g_opt.param_groups[0]["params"]] == [id(p) for p in trainable_g]
    assert g_opt.param_groups[0]["lr"] == 1e-4 and d_opt.param_groups[0]["lr"] == 4e-4
    assert g_opt.param_groups[0]["betas"] == (0.0, 0.9)
    deterministic = CCFPSE(tiny_config(use_vae=False), tiny_info())
    assert "E" not in deterministic.nets and deterministic.phases()[0].networks == ("G",)


def test_initialisation_follows_the_official_recipe():
    m = CCFPSE(tiny_config(), tiny_info())
    G = m.nets["G"]
    assert torch.all(G.head_0.norm_1.weight == 1) and torch.all(G.head_0.norm_1.bias == 0)
    assert torch.all(G.head_0.conv_1.bias == 0) and torch.all(m.nets["D"].tf.bias == 0)
    w = G.head_0.gen_weights1[2].weight          # xavier normal, gain 0.02
    fan_in, fan_out = w.shape[1] * 9, w.shape[0] * 9
    expected_std = 0.02 * (2.0 / (fan_in + fan_out)) ** 0.5
    assert abs(w.std().item() / expected_std - 1) < 0.1
    normal_bn = CCFPSE(tiny_config(batchnorm_init="normal"), tiny_info()).nets["G"].head_0.norm_1.weight
    assert not torch.all(normal_bn == 1) and (normal_bn - 1).abs().max() < 0.1


def _independent_losses(m, batch, seed):
    """The official loss recipe written out from the networks' raw outputs."""
    G, D, E = m.nets["G"], m.nets["D"], m.nets["E"]
    seg = m.semantics(batch.label, batch.edge)
    torch.manual_seed(seed)
    mu, logvar = E(batch.image)
    z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
    fake = G(seg, z)
    feats, preds = D(torch.cat([fake, batch.image]), torch.cat([seg, seg]))
    n = len(batch)
    g_gan = sum(-p[:n].mean() for p in preds) / 3
    g_feat = sum(F.l1_loss(f[:n], f[n:]) * 20.0 / 4 for f in feats)
    kld = -0.5 * torch.sum(1 + logvar - mu ** 2 - logvar.exp()) * 0.05
    d_fake = sum(torch.clamp(1 + p[:n], min=0).mean() for p in preds) / 3
    d_real = sum(torch.clamp(1 - p[n:], min=0).mean() for p in preds) / 3
    return {"G_GAN": g_gan, "G_feat": g_feat, "KLD": kld, "D_fake": d_fake, "D_real": d_real}


def test_loss_terms_equal_the_official_recipe_computed_independently():
    torch.manual_seed(0)
    m = CCFPSE(tiny_config(lambda_feat=20.0), tiny_info()).eval()  # eval: deterministic BN / SN
    batch = scene_batch(2, (64, 64))
    nets = Nets(dict(m.nets.items()))
    torch.manual_seed(5)
    g_terms = m.generator_loss(batch, nets, 0)
    torch.manual_seed(5)
    d_terms = m.discriminator_loss(batch, nets, 0)
    expected = _independent_losses(m, batch, 5)
    assert sorted(g_terms) == ["G_GAN", "G_feat", "KLD"] and sorted(d_terms) == ["D_fake", "D_real"]
    for k, v in {**g_terms, **d_terms}.items():
        torch.testing.assert_close(v, expected[k], rtol=1e-5, atol=1e-6, msg=k)


def test_vgg_term_uses_the_shared_perceptual_loss(isolated_weights):
    import torchvision
    torch.manual_seed(0)
    torch.save(torchvision.models.vgg19(weights=None).state_dict(), isolated_weights / "vgg19-dcbb9e9d.pth")
    m = CCFPSE(tiny_config(vgg_loss=True, lambda_vgg=10.0), tiny_info()).eval()
    assert "vgg" not in m.aux                     # generation alone never needs VGG19 weights
    batch = scene_batch(1, (64, 64))
    torch.manual_seed(1)
    terms = m.generator_loss(batch, Nets(dict(m.nets.items())), 0)
    torch.manual_seed(1)
    seg = m.semantics(batch.label, batch.edge)
    mu, logvar = m.nets["E"](batch.image)
    fake = m.nets["G"](seg, mu + torch.randn_like(mu) * torch.exp(0.5 * logvar))
    torch.testing.assert_close(terms["G_VGG"], m.aux["vgg"](fake, batch.image) * 10.0)


def test_missing_vgg_weights_stop_training_only(isolated_weights):
    from harness.core.weights import WeightsUnavailable
    m = CCFPSE(tiny_config(vgg_loss=True), tiny_info())
    batch = scene_batch(1, (64, 64))
    assert m.generate(batch.label, edge=batch.edge).shape == (1, 3, 64, 64)
    with pytest.raises(WeightsUnavailable, match="vgg19"):
        m.generator_loss(batch, Nets(dict(m.nets.items())), 0)


def _synthetic(n_batch=4):
    cfg = load_experiment("ccfpse", "synthetic", overrides=["dataset.num_train=8", "dataset.num_val=2"])
    ds = build_dataset_from_config(cfg, "train", train=True)
    return cfg, ds, [collate([ds[i] for i in range(j, j + n_batch)]) for j in (0, 4)]


def test_trains_through_run_phases_on_the_synthetic_preset():
    cfg, ds, batches = _synthetic()
    assert cfg.method.config == preset_config("ccfpse-synthetic")
    torch.manual_seed(0)
    m = CCFPSE(copy.deepcopy(cfg.method.config), ds.info).train()
    before = {f"{n}.{k}": v.detach().clone() for n, net in m.nets.items() for k, v in net.state_dict().items()}
    logs = [run_phases(m, batches[i % 2], i, StepPolicy()) for i in range(4)]
    assert all(sorted(log) == ["D_fake", "D_real", "G_GAN", "G_feat", "KLD"] for log in logs)
    assert all(torch.isfinite(torch.tensor(list(log.values()))).all() for log in logs)
    assert logs[0]["G_feat"] != logs[2]["G_feat"] and logs[0]["D_real"] != logs[2]["D_real"]
    after = {f"{n}.{k}": v for n, net in m.nets.items() for k, v in net.state_dict().items()}
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    for name in ("G.head_0.gen_weights1.2.weight", "G.label_pyramid.labelenc1.0.0.weight_orig",
                 "G.up_3.norm_1.running_mean", "D.embedding.weight", "E.fc_mu.weight"):
        assert name in changed, name
    unused = {k for k in before if ".norm_0." in k or ".norm_layer." in k}
    assert unused and not unused & changed           # the official-only BatchNorms never move


def test_losses_move_and_samples_approach_the_images_on_a_fixed_batch(single_thread):
    """A tiny model fitted to one batch: its encoded-style reconstructions approach the images."""
    torch.manual_seed(0)
    m = CCFPSE(tiny_config(lr_g=2e-3, lr_d=2e-3), tiny_info())
    batch = scene_batch(4, (64, 64))
    real = ((batch.image + 1) * 127.5).round()

    def error():
        gens = [torch.Generator().manual_seed(i) for i in range(4)]
        fake = m.generate(batch.label, edge=batch.edge, style_image=batch.image, generator=gens)
        return (fake.float() - real).abs().mean().item()

    start = error()
    logs = [run_phases(m.train(), batch, i, StepPolicy()) for i in range(40)]
    assert logs[-1]["G_feat"] < 0.6 * logs[0]["G_feat"]     # measured: 13.4 -> 6.3
    assert error() < 0.7 * start                              # measured: 145 -> 81 (of 255)


def test_generation_modes():
    torch.manual_seed(0)
    m = CCFPSE(tiny_config(), tiny_info())
    batch = scene_batch(3, (64, 64))

    def gens(*seeds):
        return [torch.Generator().manual_seed(s) for s in seeds]
    m.train()
    out = m.generate(batch.label, batch.instance, generator=gens(0, 1, 2))
    assert out.dtype == torch.uint8 and out.shape == (3, 3, 64, 64)
    assert m.nets["G"].training                         # mode restored
    # edge from the instance map == the given edge map
    assert torch.equal(out, m.generate(batch.label, edge=batch.edge, generator=gens(0, 1, 2)))
    # z ~ N(0, I) from per-image generators: batch independent, explicit z gives the same
    z = torch.stack([torch.randn(8, generator=g) for g in gens(0, 1, 2)])
    assert torch.equal(out, m.generate(batch.label, edge=batch.edge, z=z))
    assert not torch.equal(out[0], m.generate(batch.label[:1], edge=batch.edge[:1], generator=gens(7))[0])
    # the style of the ground-truth image: a reparameterised sample of the encoder's posterior
    styled = m.generate(batch.label, edge=batch.edge, style_image=batch.image, generator=gens(0, 1, 2))
    z_img = m.encode_style(batch.image, batch.label, generator=gens(0, 1, 2))
    assert torch.equal(styled, m.generate(batch.label, edge=batch.edge, z=z_img))
    with torch.no_grad():
        mu, logvar = m.eval().nets["E"](batch.image)
    eps = torch.stack([torch.randn(8, generator=g) for g in gens(0, 1, 2)])
    torch.testing.assert_close(z_img, mu + eps * torch.exp(0.5 * logvar))
    with pytest.raises(ValueError, match="z must have shape"):
        m.generate(batch.label, edge=batch.edge, z=torch.zeros(3, 5))
    with pytest.raises(ValueError, match="instance"):
        m.generate(batch.label)                         # this dataset has instances: edge needed
    assert m.capabilities() == {"multimodal": True, "encode_style": True, "import_official": True,
                                "classwise": False}


def test_deterministic_variant():
    m = CCFPSE(tiny_config(use_vae=False), tiny_info(instances=False))
    label = scene_batch(2, (64, 64), edges=False).label
    a = m.generate(label, generator=[torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)])
    assert torch.equal(a, m.generate(label))
    assert m.capabilities() == {"multimodal": False, "encode_style": False, "import_official": True,
                                "classwise": False}
    with pytest.raises(NotSupported):
        m.generate(label, style_image=torch.zeros(2, 3, 64, 64))
    with pytest.raises(NotSupported):
        m.encode_style(torch.zeros(2, 3, 64, 64), label)
    with pytest.raises(ValueError, match="takes no z"):
        m.generate(label, z=torch.zeros(2, 8))


def test_state_round_trip_and_image_size_errors():
    torch.manual_seed(0)
    a = CCFPSE(tiny_config(), tiny_info())
    batch = scene_batch(2, (64, 64))
    run_phases(a, batch, 0, StepPolicy())
    b = CCFPSE(tiny_config(), tiny_info())
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    z = torch.randn(2, 8)
    assert torch.equal(a.generate(batch.label, edge=batch.edge, z=z), b.generate(batch.label, edge=batch.edge, z=z))
    assert b.optimizers()["G"].state_dict()["state"].keys() == a.optimizers()["G"].state_dict()["state"].keys()
    with pytest.raises(ValueError, match="multiple of 32"):
        CCFPSE(tiny_config(), tiny_info(size=(48, 40)))
