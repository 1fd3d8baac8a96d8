"""SPADE behind the Method contract: losses against independent computations, optimisers,
generation, official checkpoints (round trip, strict keys) and the reusable contract suite."""
import pytest
import torch
import torch.nn.functional as F

from methods import METHODS
from methods.base import Nets, run_phases, semantic_input
from methods.contract import check_method, random_batch
from methods.spade.method import SPADE
from methods.spade.official import OfficialCheckpointError

from _methods_helpers import sp_blocky_batch, sp_generators, sp_info

INFO = sp_info(5, dontcare=True, instances=True, size=(32, 32))
TINY = dict(ngf=4, ndf=8, spade_nhidden=8, z_dim=8, encoder_input_size=32, lambda_vgg=0.0)


def make(info=INFO, **kw):
    torch.manual_seed(0)
    return SPADE(SPADE.Config(**{**TINY, **kw}), info)


def test_registered_under_its_name():
    assert METHODS.get("spade") is SPADE


@pytest.mark.parametrize("vae", [False, True])
def test_contract_suite(vae):
    check_method(lambda: make(use_vae=vae), lambda: random_batch(INFO, n=2), multimodal=vae,
                 other_factory=lambda: make(use_vae=vae, ngf=8))


def test_optimisers_follow_ttur_and_train_the_encoder_with_the_generator():
    m = make(use_vae=True)
    g, d = m.optimizers()["G"], m.optimizers()["D"]
    assert (g.param_groups[0]["lr"], d.param_groups[0]["lr"]) == (1e-4, 4e-4)
    assert g.param_groups[0]["betas"] == d.param_groups[0]["betas"] == (0.0, 0.9)
    g_ids = {id(p) for p in g.param_groups[0]["params"]}
    assert g_ids == {id(p) for p in [*m.nets.G.parameters(), *m.nets.E.parameters()]}
    assert [(p.name, p.optimizer, p.networks) for p in m.phases()] == [
        ("generator", "G", ("G", "E")), ("discriminator", "D", ("D",))]


def test_generator_loss_equals_hinge_mean_over_scales_plus_weighted_feature_matching():
    m = make()
    m.eval()  # fixed BatchNorm statistics and spectral-norm vectors: deterministic networks
    batch = sp_blocky_batch(INFO, n=2)
    sem = semantic_input(batch.label, INFO.num_label_channels, batch.edge, use_edge=True)
    with torch.no_grad():
        fake = m.nets.G(sem)
        out_fake = m.nets.D(torch.cat([sem, fake], 1))
        out_real = m.nets.D(torch.cat([sem, batch.image], 1))
        terms = m.generator_loss(batch, Nets(m.nets), 0)
    gan = sum(-s[-1].mean() for s in out_fake) / 2
    fm = sum(F.l1_loss(f, r) * 10.0 / 2 for sf, sr in zip(out_fake, out_real)
             for f, r in zip(sf[:-1], sr[:-1]))
    assert set(terms) == {"G_GAN", "G_feat"}
    assert torch.allclose(terms["G_GAN"], gan, rtol=1e-5, atol=1e-6)
    assert torch.allclose(terms["G_feat"], fm, rtol=1e-5)
    assert len(out_fake) == 2 and all(len(s) == 5 for s in out_fake)


def test_discriminator_loss_is_hinge_not_halved():
    m = make()
    m.eval()
    batch = sp_blocky_batch(INFO, n=2)
    sem = semantic_input(batch.label, INFO.num_label_channels, batch.edge, use_edge=True)
    with torch.no_grad():
        fake = m.nets.G(sem)
        pf = m.nets.D(torch.cat([sem, fake], 1))
        pr = m.nets.D(torch.cat([sem, batch.image], 1))
        terms = m.discriminator_loss(batch, Nets(m.nets), 0)
    d_fake = sum(F.relu(1 + s[-1]).mean() for s in pf) / 2
    d_real = sum(F.relu(1 - s[-1]).mean() for s in pr) / 2
    assert torch.allclose(terms["D_fake"], d_fake, rtol=1e-5)
    assert torch.allclose(terms["D_real"], d_real, rtol=1e-5)


def test_vae_loss_adds_kld_sum_times_0_05():
    m = make(use_vae=True)
    m.eval()
    batch = sp_blocky_batch(INFO, n=2)
    with torch.no_grad():
        mu, logvar = m.nets.E(batch.image)
        terms = m.generator_loss(batch, Nets(m.nets), 0)
    kld = -0.5 * torch.sum(1 + logvar - mu ** 2 - logvar.exp()) * 0.05
    assert torch.allclose(terms["KLD"], kld, rtol=1e-5)


def test_edge_map_of_the_batch_is_the_last_input_channel():
    m = make()
    batch = sp_blocky_batch(INFO, n=1)
    sem = m.semantics(batch.label, batch.instance, batch.edge)
    assert sem.shape[1] == m.semantic_nc == INFO.num_label_channels + 1
    assert torch.equal(sem[:, -1:], batch.edge)
    no_inst = make(use_instance_edges=False)
    assert no_inst.semantic_nc == INFO.num_label_channels


def test_vae_generation_samples_z_per_image_and_encodes_style_images():
    m = make(use_vae=True)
    batch = sp_blocky_batch(INFO, n=2)
    a = m.generate(batch.label, batch.instance, generator=sp_generators([1, 2]))
    b = m.generate(batch.label, batch.instance, generator=sp_generators([1, 3]))
    assert torch.equal(a[0], b[0]) and not torch.equal(a[1], b[1])
    z = torch.randn(2, 8, generator=torch.Generator().manual_seed(5))
    assert torch.equal(m.generate(batch.label, batch.instance, z=z),
                       m.generate(batch.label, batch.instance, z=z))
    styled = m.generate(batch.label, batch.instance, style_image=batch.image,
                        generator=sp_generators([1, 2]))
    assert styled.dtype == torch.uint8 and styled.shape == (2, 3, 32, 32)
    assert m.supports_style_encoding and not make().supports_style_encoding


def test_generation_restores_the_training_mode_and_rejects_bad_inputs():
    m = make()
    m.train()
    batch = sp_blocky_batch(INFO, n=1)
    m.generate(batch.label, batch.instance)
    assert all(mod.training for mod in m.nets.G.modules())
    with pytest.raises(ValueError, match="deterministic"):
        m.generate(batch.label, batch.instance, z=torch.zeros(1, 8))
    with pytest.raises(ValueError, match="generates 32x32 images"):
        m.generate(torch.zeros(1, 64, 64, dtype=torch.long), None,
                   edge=torch.zeros(1, 1, 64, 64))


# ---------------------------------------------------------------------------------------------
# official checkpoints
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("vae", [False, True])
def test_official_export_import_round_trip_gives_identical_outputs(tmp_path, vae):
    src = make(use_vae=vae)
    run_phases(src, sp_blocky_batch(INFO, n=2), 0, src.policy)  # move BN stats and SN vectors
    files = src.export_official(tmp_path)
    assert sorted(p.name for p in files.values()) == sorted(
        ["latest_net_G.pth", "latest_net_D.pth"] + (["latest_net_E.pth"] if vae else []))
    torch.manual_seed(1)
    dst = SPADE(SPADE.Config(**{**TINY, "use_vae": vae}), INFO)
    report = dst.import_official({k: str(v) for k, v in files.items()})
    assert report.loaded == {str(files[k]): len(src.nets[k].state_dict()) for k in files}
    batch = sp_blocky_batch(INFO, n=2, seed=3)
    for net in src.nets:
        for k, v in src.nets[net].state_dict().items():
            assert torch.equal(v, dst.nets[net].state_dict()[k]), k
    gens = sp_generators([4, 5])
    assert torch.equal(src.generate(batch.label, batch.instance, generator=gens),
                       dst.generate(batch.label, batch.instance, generator=sp_generators([4, 5])))


def test_import_strips_a_dataparallel_prefix(tmp_path):
    src = make()
    torch.save({"module." + k: v for k, v in src.nets.G.state_dict().items()}, tmp_path / "g.pth")
    make().import_official({"G": tmp_path / "g.pth"})


def test_import_lists_missing_unexpected_and_mismatched_keys_with_the_file(tmp_path):
    state = make().nets.G.state_dict()
    state.pop("head_0.conv_0.weight_orig")
    state["head_0.extra.weight"] = torch.zeros(1)
    path = tmp_path / "latest_net_G.pth"
    torch.save(state, path)
    with pytest.raises(OfficialCheckpointError) as err:
        make().import_official({"G": path})
    text = str(err.value)
    assert str(path) in text and "head_0.conv_0.weight_orig" in text and "head_0.extra.weight" in text
    wider = make(ngf=8)
    torch.save(wider.nets.G.state_dict(), path)
    mismatch = r"shape mismatches \(\d+\): .*file \(128,\) vs network \(64,\).*ngf 4"
    with pytest.raises(OfficialCheckpointError, match=mismatch):
        make().import_official({"G": path})


def test_import_accepts_old_files_without_batchnorm_counters(tmp_path):
    state = {k: v for k, v in make().nets.G.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "g.pth")
    report = make().import_official({"G": tmp_path / "g.pth"})
    assert report.notes and "step counters" in report.notes[0]


def test_import_rejects_unknown_networks_and_missing_files(tmp_path):
    with pytest.raises(OfficialCheckpointError, match="unknown network"):
        make().import_official({"E": tmp_path / "e.pth"})  # no encoder without the VAE
    with pytest.raises(FileNotFoundError, match="latest_net_G.pth"):
        make().import_official({"G": tmp_path / "latest_net_G.pth"})
