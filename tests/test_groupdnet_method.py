"""GroupDNet behaviour: per-class crops, class-local codes, CG-Norm grouping, the class-wise code
API, and a few real training steps on the synthetic preset."""
import copy

import pytest
import torch
import torch.nn.functional as F

from harness.experiment import load_experiment
from harness.core.data import build_dataset_from_config, collate
from methods import METHODS
from methods.base import NotSupported, Runtime
from methods.groupdnet.cg_norm import interleave_edges
from methods.groupdnet.group_encoder import class_crops
from methods.groupdnet.method import GroupDNet

from _groupdnet_helpers import tiny_config, tiny_info


def onehot(label, c):
    return torch.zeros(label.shape[0], c, *label.shape[1:]).scatter_(1, label[:, None], 1.0)


def scene(n=2, size=64):
    label = torch.zeros(n, size, size, dtype=torch.long)
    label[:, : size // 2] = 1
    label[:, size // 2:, : size // 3] = 2
    label[:, 8:20, 40:56] = 3
    return label, label * 10, torch.rand(n, 3, size, size) * 2 - 1


def gens(*seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def test_class_crops_match_an_independent_crop_and_nearest_resize():
    label = torch.zeros(1, 8, 8, dtype=torch.long)
    label[0, 2:4, 4:8] = 1                       # class 1: rows 2-3, cols 4-7; class 2 absent
    image = torch.arange(3 * 64, dtype=torch.float).view(1, 3, 8, 8) / 100 - 0.9
    crops = class_crops(image, onehot(label, 3), (8, 8)).view(1, 3, 3, 8, 8)
    rows = [2 + i * 2 // 8 for i in range(8)]    # nearest: source index floor(i * in / out)
    cols = [4 + j * 4 // 8 for j in range(8)]
    assert torch.equal(crops[0, 1], image[0][:, rows][:, :, cols])
    assert torch.equal(crops[0, 2], torch.zeros(3, 8, 8))          # absent class
    # class 0 (everything else): its box is the whole image; pixels of class 1 are masked out
    assert torch.equal(crops[0, 0], image[0] * (label[0] == 0))


def test_official_bbox_quirk_treats_zero_sum_regions_as_absent():
    label = torch.zeros(1, 8, 8, dtype=torch.long)
    label[0, :, 6:] = 1
    image = torch.rand(1, 3, 8, 8)
    image[0, :, :, 6:] = 0.0                     # class 1 pixels sum to exactly 0
    by_mask = class_crops(image, onehot(label, 2), (8, 8))
    by_rgb = class_crops(image, onehot(label, 2), (8, 8), bbox="rgb_sum")
    assert torch.equal(by_mask[:, :3], by_rgb[:, :3])
    assert by_rgb[:, 3:].abs().sum() == 0 and by_mask[:, 3:].abs().sum() == 0  # zeros either way
    image[0, :, 0, 6] = 0.5                      # one non-zero pixel: the official box shrinks to it
    by_rgb = class_crops(image, onehot(label, 2), (8, 8), bbox="rgb_sum")
    assert torch.equal(by_rgb[0, 3:], torch.full((3, 8, 8), 0.5))
    by_mask = class_crops(image, onehot(label, 2), (8, 8))     # the box of the mask: cols 6-7
    assert torch.equal(by_mask[0, 3:], image[0][:, [i * 8 // 8 for i in range(8)]][:, :, [6 + j * 2 // 8 for j in range(8)]])


def test_each_class_code_depends_only_on_its_own_pixels():
    m = GroupDNet(tiny_config(), tiny_info())
    label, instance, image = scene()
    codes = m.encode_class_codes(image, label, instance=instance)
    assert codes.shape == (2, 4, 8, 2, 2) == (2, *m.code_shape)
    other = image.clone()
    other[:, :, label[0] == 3] = torch.rand_like(other[:, :, label[0] == 3])
    changed = m.encode_class_codes(other, label, instance=instance)
    assert not torch.equal(changed[:, 3], codes[:, 3])
    assert torch.equal(changed[:, :3], codes[:, :3])           # grouped convs never mix classes


def test_interleaved_edges_pair_every_class_mask_with_the_edge_map():
    sem = torch.rand(2, 5, 4, 4)                               # 4 classes + edge
    out = interleave_edges(sem, 4)
    assert out.shape == (2, 8, 4, 4)
    for c in range(4):
        assert torch.equal(out[:, 2 * c], sem[:, c]) and torch.equal(out[:, 2 * c + 1], sem[:, 4])


def test_the_head_keeps_class_codes_apart():
    """head_0 has one group per class: re-drawing class c's code changes only group c's channels."""
    m = GroupDNet(tiny_config(), tiny_info()).eval()
    label, instance, _ = scene()
    G = m.nets["G"]
    seg = G.label_input(m.semantics(label, instance))
    codes = m.sample_class_codes(label, gens(0, 1))
    redrawn = m.sample_class_codes(label, gens(5, 6), base=codes, classes=[2])
    assert torch.equal(redrawn[:, [0, 1, 3]], codes[:, [0, 1, 3]])
    assert not torch.equal(redrawn[:, 2], codes[:, 2])
    with torch.no_grad():
        heads = [G.head_0(G.fc(c.flatten(1, 2)), seg) for c in (codes, redrawn)]
    per_class = G.head_0.conv_1.out_channels // 4
    diff = (heads[0] - heads[1]).abs().flatten(2).amax(2).view(2, 4, per_class).amax(2)
    assert (diff[:, 2] > 0).all() and (diff[:, [0, 1, 3]] == 0).all()


def test_class_code_api():
    m = GroupDNet(tiny_config(), tiny_info())
    label, instance, image = scene()
    assert m.capabilities()["classwise"] and m.supports_classwise_codes
    codes = m.sample_class_codes(label, gens(3, 4))
    assert torch.equal(codes, m.sample_class_codes(label, gens(3, 4)))
    # generate() with per-image generators draws exactly these codes
    assert torch.equal(m.generate(label, instance, generator=gens(3, 4)),
                       m.generate_from_codes(label, codes, instance=instance))
    assert torch.equal(m.generate(label, instance, z=codes.flatten(1, 2)),
                       m.generate_from_codes(label, codes, instance=instance))
    mixed = codes.clone()
    mixed[0, 1] = codes[1, 1]                                  # appearance mixture
    assert m.generate_from_codes(label, mixed, instance=instance).shape == (2, 3, 64, 64)
    z = m.encode_style(image, label, generator=gens(0, 1))
    assert z.shape == (2, 32, 2, 2)
    with pytest.raises(ValueError, match="class ids \\[7\\] out of range"):
        m.sample_class_codes(label, gens(0, 1), base=codes, classes=[7])
    with pytest.raises(ValueError, match="class codes must be"):
        m.generate_from_codes(label, codes[:, :3])
    with pytest.raises(ValueError, match="both base codes and the classes"):
        m.sample_class_codes(label, classes=[1])


def test_methods_without_class_codes_say_so():
    spade = METHODS.entry("spade").obj
    cfg = load_experiment("spade", "synthetic", overrides=["dataset.num_train=2", "dataset.num_val=1"])
    m = spade.build(copy.deepcopy(cfg.method.config), tiny_info(instances=True), Runtime())
    assert m.capabilities()["classwise"] is False
    with pytest.raises(NotSupported, match="not supported by 'spade'"):
        m.generate_from_codes(torch.zeros(1, 64, 64, dtype=torch.long), torch.zeros(1))


def test_a_few_training_steps_on_the_synthetic_preset():
    torch.manual_seed(0)
    cfg = load_experiment("groupdnet", "synthetic", overrides=["dataset.num_train=4", "dataset.num_val=1"])
    ds = build_dataset_from_config(cfg, "train", train=True)
    m = METHODS.entry("groupdnet").obj.build(copy.deepcopy(cfg.method.config), ds.info, Runtime())
    assert m.nets["G"].plan_groups == (10, 8, 8, 8, 4, 2, 1)       # the schedule rule, C = 10
    batch = collate([ds[0], ds[1]])
    up_4 = {k: v.clone() for k, v in m.nets["G"].up_4.state_dict().items()}
    fc = m.nets["E"].fc_mu.weight.detach().clone()
    for step in range(2):
        logs = m.train_step(batch, step)
        assert set(logs) == {"KLD", "G_GAN", "G_feat", "D_fake", "D_real"}
        assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    assert not torch.equal(fc, m.nets["E"].fc_mu.weight)            # E trains with G
    assert all(torch.equal(up_4[k], v) for k, v in m.nets["G"].up_4.state_dict().items())
    # KLD is summed over every code entry: it equals the formula on the encoder's output
    sem = m.semantics(batch.label, batch.instance, batch.edge)
    with torch.no_grad():
        mu, logvar = m._posterior(m.nets["E"], sem, batch.image)
    assert mu.shape == (2, 80, 2, 2)
    expected = -0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum() * 0.05
    from methods.blocks.losses import kl_divergence
    assert torch.allclose(kl_divergence(mu, logvar) * m.cfg.lambda_kld, expected)
