"""pix2pixHD behind the Method contract: losses against independent computations, the
single-forward discriminator update, coarse-to-fine training of the local enhancer with exact
resume, official checkpoints, and the reusable contract suite."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from methods import METHODS
from methods.base import Nets, Runtime, run_phases, semantic_input
from methods.contract import check_method, random_batch
from methods.pix2pixhd.method import Pix2PixHD
from methods.spade.official import OfficialCheckpointError

from _methods_helpers import sp_blocky_batch, sp_generators, sp_info

INFO = sp_info(4, instances=True, size=(32, 32))
TINY = dict(ngf=4, n_downsample_global=2, n_blocks_global=1, ndf=4, num_D=2, nef=4,
            n_downsample_E=2, lambda_vgg=0.0)


def make(info=INFO, runtime=None, **kw):
    torch.manual_seed(0)
    return Pix2PixHD(Pix2PixHD.Config(**{**TINY, **kw}), info, runtime)


def with_clusters(**kw):
    m = make(instance_feat=True, **kw)
    m.clusters = {c: np.array([[-0.9, 0.5, 0.9], [0.9, -0.5, -0.9], [0.0, 0.9, 0.0]])
                  for c in range(INFO.label_nc)}
    return m


def test_registered_under_its_name():
    assert METHODS.get("pix2pixhd") is Pix2PixHD


@pytest.mark.filterwarnings("ignore:pix2pixHD. no feature clusters yet")
@pytest.mark.parametrize("factory,multimodal", [
    (lambda: make(), False),
    (lambda: make(recipe="spade"), False),
    (lambda: make(instance_feat=True), False),            # no clusters yet: zero features
    (with_clusters, True),
    (lambda: make(netG="local", ngf=2, niter_fix_global=1,
                  runtime=Runtime(steps_per_epoch=5)), False),
], ids=["global", "spade-recipe", "features-unclustered", "features-clustered", "local-fixed"])
def test_contract_suite(factory, multimodal):
    check_method(factory, lambda: random_batch(INFO, n=2), multimodal=multimodal,
                 other_factory=lambda: make(ngf=8))


def _outputs(m, batch, fake):
    sem = semantic_input(batch.label, INFO.num_label_channels, batch.edge, use_edge=True)
    return sem, m.nets.D(torch.cat([sem, fake], 1)), m.nets.D(torch.cat([sem, batch.image], 1))


def test_generator_loss_is_lsgan_summed_over_scales_with_weighted_feature_matching():
    m = make(num_D=3, n_layers_D=3, lambda_feat=10.0)
    batch = sp_blocky_batch(INFO, n=2)
    sem = semantic_input(batch.label, INFO.num_label_channels, batch.edge, use_edge=True)
    with torch.no_grad():
        fake = m.nets.G(sem)
        _, pf, pr = _outputs(m, batch, fake)
        terms = m.generator_loss(batch, Nets(m.nets), 0)
    gan = sum(F.mse_loss(s[-1], torch.ones_like(s[-1])) for s in pf)
    fm = sum((1 / 3) * (4 / (3 + 1)) * 10.0 * F.l1_loss(f, r)
             for sf, sr in zip(pf, pr) for f, r in zip(sf[:-1], sr[:-1]))
    assert set(terms) == {"G_GAN", "G_feat"}
    assert torch.allclose(terms["G_GAN"], gan, rtol=1e-5)
    assert torch.allclose(terms["G_feat"], fm, rtol=1e-5)


def test_feature_matching_weight_depends_on_n_layers_d():
    m = make(num_D=2, n_layers_D=2, lambda_feat=10.0)
    batch = sp_blocky_batch(INFO, n=1)
    sem = semantic_input(batch.label, INFO.num_label_channels, batch.edge, use_edge=True)
    with torch.no_grad():
        _, pf, pr = _outputs(m, batch, m.nets.G(sem))
        terms = m.generator_loss(batch, Nets(m.nets), 0)
    fm = sum(0.5 * (4 / 3) * 10.0 * F.l1_loss(f, r)
             for sf, sr in zip(pf, pr) for f, r in zip(sf[:-1], sr[:-1]))
    assert all(len(s) == 4 for s in pf)
    assert torch.allclose(terms["G_feat"], fm, rtol=1e-5)


def test_discriminator_update_uses_the_fake_of_the_generator_phase_and_halves_the_loss():
    m = make()
    batch = sp_blocky_batch(INFO, n=2)
    sem = semantic_input(batch.label, INFO.num_label_channels, batch.edge, use_edge=True)
    with torch.no_grad():
        fake_before = m.nets.G(sem)  # the fake before the G update (official single forward)
        _, pf, pr = _outputs(m, batch, fake_before)  # D is unchanged until its own update
    expected_fake = 0.5 * sum(F.mse_loss(s[-1], torch.zeros_like(s[-1])) for s in pf)
    expected_real = 0.5 * sum(F.mse_loss(s[-1], torch.ones_like(s[-1])) for s in pr)
    logs = run_phases(m, batch, 0, m.policy)
    assert logs["D_fake"] == pytest.approx(float(expected_fake), rel=1e-5)
    assert logs["D_real"] == pytest.approx(float(expected_real), rel=1e-5)
    assert not m._fakes  # nothing kept across steps


def test_spade_recipe_regenerates_the_fake_and_uses_hinge_averaged():
    m = make(recipe="spade")
    m.eval()
    batch = sp_blocky_batch(INFO, n=2)
    sem = semantic_input(batch.label, INFO.num_label_channels, batch.edge, use_edge=True)
    with torch.no_grad():
        _, pf, pr = _outputs(m, batch, m.nets.G(sem))
        terms = m.discriminator_loss(batch, Nets(m.nets), 0)
    assert torch.allclose(terms["D_fake"], sum(F.relu(1 + s[-1]).mean() for s in pf) / 2, rtol=1e-5)
    assert torch.allclose(terms["D_real"], sum(F.relu(1 - s[-1]).mean() for s in pr) / 2, rtol=1e-5)
    opt = m.optimizers()
    assert (opt["G"].param_groups[0]["lr"], opt["D"].param_groups[0]["lr"]) == (1e-4, 4e-4)


def test_optimisers_are_adam_2e4_beta_05_and_include_the_encoder():
    m = make(instance_feat=True)
    g, d = m.optimizers()["G"], m.optimizers()["D"]
    assert g.param_groups[0]["lr"] == d.param_groups[0]["lr"] == 2e-4
    assert g.param_groups[0]["betas"] == (0.5, 0.999)
    assert {id(p) for p in g.param_groups[0]["params"]} == \
        {id(p) for p in [*m.nets.G.parameters(), *m.nets.E.parameters()]}


# ---------------------------------------------------------------------------------------------
# coarse-to-fine: only the local enhancer for the first niter_fix_global epochs
# ---------------------------------------------------------------------------------------------
def _local(**kw):
    return make(netG="local", ngf=2, niter_fix_global=1, runtime=Runtime(steps_per_epoch=2), **kw)


def test_local_enhancer_alone_first_then_adam_rebuilt_over_all_of_g():
    m = _local(instance_feat=True)
    batch = sp_blocky_batch(INFO, n=1)
    trunk = {k: v.clone() for k, v in m.nets.G.model.state_dict().items()}
    local_names = set(m.nets.G.local_parameter_names())
    params = dict(m.nets.G.named_parameters())
    held = {id(p) for p in m.optimizers()["G"].param_groups[0]["params"]}
    assert held == {id(params[n]) for n in local_names} | {id(p) for p in m.nets.E.parameters()}
    for step in (0, 1):
        assert m.global_fixed
        m.optimizers()["G"].param_groups[0]["lr"] = 1.5e-4  # as the runner's schedule would
        m.train_step(batch, step)
    assert all(torch.equal(v, m.nets.G.model.state_dict()[k]) for k, v in trunk.items())
    m.train_step(batch, 2)  # epoch 1: the whole generator trains
    assert not m.global_fixed
    group = m.optimizers()["G"].param_groups[0]
    assert len(group["params"]) == len(list(m.nets.G.parameters())) + len(list(m.nets.E.parameters()))
    assert group["lr"] == 1.5e-4  # the scheduled rate carries over into the rebuilt optimiser
    assert not all(torch.equal(v, m.nets.G.model.state_dict()[k]) for k, v in trunk.items())


@pytest.mark.parametrize("stop", [1, 3])
def test_resume_restores_the_active_phase_exactly(stop):
    batch = sp_blocky_batch(INFO, n=1)
    straight = _local()
    torch.manual_seed(7)
    for step in range(stop + 2):
        straight.train_step(batch, step)
    first = _local()
    torch.manual_seed(7)
    for step in range(stop):
        first.train_step(batch, step)
    state = first.state_dict()
    resumed = _local()
    resumed.load_state_dict(state)
    assert resumed.global_fixed == (stop < 2)
    for step in range(stop, stop + 2):
        resumed.train_step(batch, step)
    for (k, a), b in zip(straight.nets.state_dict().items(), resumed.nets.state_dict().values()):
        assert torch.equal(a, b), k


# ---------------------------------------------------------------------------------------------
# generation
# ---------------------------------------------------------------------------------------------
def test_generation_checks_sizes_and_feature_inputs():
    m = make(instance_feat=True)
    batch = sp_blocky_batch(INFO, n=1)
    with pytest.raises(ValueError, match="multiples of 4"):
        m.generate(torch.zeros(1, 30, 32, dtype=torch.long), torch.zeros(1, 30, 32, dtype=torch.long))
    with pytest.raises(ValueError, match=r"z \(instance features\) must be \[1, 3, 32, 32\]"):
        m.generate(batch.label, batch.instance, z=torch.zeros(1, 3, 16, 16))
    explicit = torch.full((1, 3, 32, 32), 0.5)
    assert torch.equal(m.generate(batch.label, batch.instance, z=explicit),
                       m.generate(batch.label, batch.instance, z=explicit.clone()))
    with pytest.raises(ValueError, match="no instance features"):
        make().generate(batch.label, batch.instance, z=explicit)


def test_encoded_style_image_gives_the_encoder_features():
    m = make(instance_feat=True)
    batch = sp_blocky_batch(INFO, n=2)
    with torch.no_grad():
        feats = m.nets.E(batch.image, batch.instance)
    assert torch.equal(m.generate(batch.label, batch.instance, style_image=batch.image),
                       m.generate(batch.label, batch.instance, z=feats))


# ---------------------------------------------------------------------------------------------
# official checkpoints
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [{}, {"recipe": "spade"}, {"netG": "local", "ngf": 2},
                                {"instance_feat": True}])
def test_official_export_import_round_trip(tmp_path, kw):
    src = make(**kw)
    batch = sp_blocky_batch(INFO, n=2)
    run_phases(src, batch, 0, src.policy)
    if "E" in src.nets:
        src.clusters = {1: np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]), 3: np.array([[-1.0, 0, 1]])}
    files = src.export_official(tmp_path)
    expected = {"G": "latest_net_G.pth", "D": "latest_net_D.pth"}
    if "E" in src.nets:
        expected.update(E="latest_net_E.pth", features="features_clustered_010.npy")
    assert {k: p.name for k, p in files.items()} == expected
    torch.manual_seed(3)
    dst = Pix2PixHD(Pix2PixHD.Config(**{**TINY, **kw}), INFO)
    report = dst.import_official(files)
    assert len(report.loaded) == len(files)
    gens = [0, 1]
    assert torch.equal(src.generate(batch.label, batch.instance, generator=sp_generators(gens)),
                       dst.generate(batch.label, batch.instance, generator=sp_generators(gens)))


def test_import_errors_name_the_file_and_keys(tmp_path):
    m = make()
    state = m.nets.D.state_dict()
    path = tmp_path / "latest_net_D.pth"
    torch.save({("layer" + k[len("scale"):] if k.startswith("scale0") else k): v
                for k, v in state.items()}, path)
    with pytest.raises(OfficialCheckpointError) as err:
        make().import_official({"D": path, "G": path})
    assert str(path) in str(err.value) and "scale0_layer0.0.weight" in str(err.value)
    with pytest.raises(OfficialCheckpointError, match="accepts"):
        make().import_official({"features": tmp_path / "f.npy", "G": path})
