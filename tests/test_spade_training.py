"""SPADE trains with its tiny synthetic preset (configs/experiments/spade-synthetic.yaml) through
methods.base.run_phases on the built-in synthetic dataset: the losses move the way a GAN's do
early on (the discriminator separates, the generator's adversarial loss rises)."""
import torch

from harness.experiment import load_experiment
from harness.core.data.base import collate
from harness.core.data.factory import build_dataset_from_config
from methods import METHODS
from methods.base import run_phases

STEPS = 40


def _mean(logs, key):
    return sum(entry[key] for entry in logs) / len(logs)


def test_preset_is_small_and_keeps_the_official_losses_and_optimiser():
    cfg = load_experiment("spade", "synthetic")
    c = cfg.method.config
    assert (c.gan_mode, c.lr_G, c.lr_D, c.beta1, c.beta2, c.lambda_feat) == \
        ("hinge", 1e-4, 4e-4, 0.0, 0.9, 10.0)
    assert c.lambda_vgg == 0.0 and not c.use_vae and c.ngf == 8
    assert cfg.train.batch_size == 4 and cfg.train.max_steps == 250


def test_losses_move_when_training_the_tiny_preset():
    cfg = load_experiment("spade", "synthetic")
    train_set = build_dataset_from_config(cfg, "train", train=True)
    torch.manual_seed(cfg.train.seed)
    method = METHODS.get("spade").build(cfg.method.config, train_set.info)
    method.train()
    loader = torch.utils.data.DataLoader(train_set, batch_size=cfg.train.batch_size, shuffle=True,
                                         collate_fn=collate, drop_last=True,
                                         generator=torch.Generator().manual_seed(0))
    batches = iter(loader)
    logs = [run_phases(method, next(batches), step, method.policy) for step in range(STEPS)]
    assert set(logs[0]) == {"G_GAN", "G_feat", "D_fake", "D_real"}
    first, last = logs[:10], logs[-10:]
    d_first = _mean(first, "D_fake") + _mean(first, "D_real")
    d_last = _mean(last, "D_fake") + _mean(last, "D_real")
    assert d_last < 0.9 * d_first  # hinge D loss starts near 2 and falls
    assert _mean(last, "G_GAN") > _mean(first, "G_GAN") + 0.05
    pair = collate([train_set[0], train_set[1]])
    out = method.generate(pair.label, pair.instance, edge=pair.edge)
    assert out.dtype == torch.uint8 and out.shape == (2, 3, 64, 64)
