"""pix2pixHD trains with its tiny synthetic preset (configs/experiments/pix2pixhd-synthetic.yaml)
through methods.base.run_phases on the built-in synthetic dataset: losses fall, the instance
features are clustered after training, and different cluster choices give different images."""
import numpy as np
import pytest
import torch

from harness.experiment import load_experiment
from harness.core.data.base import collate
from harness.core.data.factory import build_dataset_from_config
from methods import METHODS
from methods.base import run_phases

from _methods_helpers import sp_generators

STEPS = 40


def _train(overrides):
    cfg = load_experiment("pix2pixhd", "synthetic", overrides=overrides)
    train_set = build_dataset_from_config(cfg, "train", train=True)
    torch.manual_seed(cfg.train.seed)
    method = METHODS.get("pix2pixhd").build(cfg.method.config, train_set.info)
    method.train()
    loader = torch.utils.data.DataLoader(train_set, batch_size=cfg.train.batch_size, shuffle=True,
                                         collate_fn=collate, drop_last=True,
                                         generator=torch.Generator().manual_seed(0))
    logs = []
    batches = iter(loader)
    for step in range(STEPS):
        logs.append(run_phases(method, next(batches), step, method.policy))
    return cfg, method, logs


def _mean(logs, key):
    return sum(entry[key] for entry in logs) / len(logs)


@pytest.fixture(scope="module")
def trained_with_features():
    return _train(["method.instance_feat=true"])


def test_preset_is_small_and_keeps_the_official_losses():
    cfg = load_experiment("pix2pixhd", "synthetic")
    c = cfg.method.config
    assert (c.recipe, c.gan_mode, c.lr_G, c.beta1, c.lambda_feat) == ("original", "ls", 2e-4, 0.5, 10.0)
    assert c.lambda_vgg == 0.0 and cfg.train.batch_size == 4 and cfg.train.max_steps == 250


def test_losses_fall_without_instance_features():
    _, method, logs = _train([])
    assert set(logs[0]) == {"G_GAN", "G_feat", "D_fake", "D_real"}
    first, last = logs[:10], logs[-10:]
    assert _mean(last, "G_feat") < 0.85 * _mean(first, "G_feat")
    assert _mean(last, "D_fake") + _mean(last, "D_real") < \
        0.9 * (_mean(first, "D_fake") + _mean(first, "D_real"))


def test_losses_fall_with_instance_features(trained_with_features):
    _, _, logs = trained_with_features
    first, last = logs[:10], logs[-10:]
    assert _mean(last, "G_feat") < 0.85 * _mean(first, "G_feat")


def test_clusters_after_training_and_different_cluster_choices_give_different_images(
        trained_with_features):
    cfg, method, _ = trained_with_features
    method.eval()
    summary = method.after_training(build_dataset_from_config(cfg, "train", train=False),
                                    batch_size=8)
    counts = summary["feature_clusters"]
    assert counts and all(1 <= k <= 10 for k in counts.values())
    assert method.multimodal
    val = build_dataset_from_config(cfg, "val", train=False)
    batch = collate([val[i] for i in range(4)])
    # Cluster centres spread over the encoder's tanh range (as a fully trained encoder's are;
    # after a few steps its features have barely left 0): the choice of centre must show.
    method.clusters = {c: np.array([[-0.9, -0.9, -0.9], [0.9, 0.9, 0.9], [0.9, -0.9, 0.0]])
                       for c in range(val.info.label_nc)}
    images = [method.generate(batch.label, batch.instance, edge=batch.edge,
                              generator=sp_generators([100 * s + i for i in range(4)]))
              for s in range(4)]
    again = method.generate(batch.label, batch.instance, edge=batch.edge,
                            generator=sp_generators(range(4)))
    assert torch.equal(images[0], again)  # same seeds, same cluster choices
    diffs = [(images[0].float() - im.float()).abs().mean().item() for im in images[1:]]
    assert min(diffs) > 8.0, diffs  # mean absolute difference in 0..255 levels
