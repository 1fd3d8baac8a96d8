"""LPIPS diversity equals the lpips package called directly; the trunk comes from the resolved
file; GroupDNet's mCSD / mOCD from masked spatial LPIPS maps."""
from __future__ import annotations

import shutil
import warnings
from contextlib import contextmanager
from itertools import combinations

import numpy as np
import pytest
import torch

from _eval_helpers import (eval_env, eval_weights_dir, no_weights_env, perturb,  # noqa: F401
                           synthetic_val)
from evaluators.diversity import (ClassPair, build_lpips,
                                  lpips_diversity, masked_lpips, pairwise_mean, per_map_diversity,
                                  to_lpips_input, trunk_state_to_lpips)
from harness.core.weights import ALEXNET_IMAGENET, WeightsUnavailable


def _samples(dataset, k: int, index: int) -> torch.Tensor:
    """k 'generated' samples of one label map: differently perturbed copies of its image."""
    image = dataset.read_image(dataset.records()[index])
    kinds = ["noise", "blur", "shift", "noise", "shift"]
    out = [perturb(image, kinds[j], seed=j) for j in range(k)]
    return torch.stack([torch.from_numpy(o).permute(2, 0, 1) for o in out])


@pytest.fixture
def direct_lpips(eval_env, tmp_path):  # noqa: F811
    """lpips.LPIPS exactly as its README builds it, its AlexNet trunk from the torch hub cache."""
    import lpips
    hub = tmp_path / "torch-home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    shutil.copy(eval_env / ALEXNET_IMAGENET.filename, hub / ALEXNET_IMAGENET.filename)

    def build(**kw):
        with _quiet():  # torchvision's 'pretrained' deprecation inside lpips
            return lpips.LPIPS(net="alex", version="0.1", verbose=False, **kw).eval()
    return build


@contextmanager
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def test_diversity_equals_lpips_called_directly(eval_env, direct_lpips, synthetic_val):  # noqa: F811
    ours, resolved = build_lpips("alex", "0.1")
    assert resolved.origin == "weights-dir" and resolved.verified is False
    reference = direct_lpips()
    maps = [_samples(synthetic_val, 4, i) for i in range(3)]
    per_map = per_map_diversity(ours, maps, batch_size=4)
    expected = []
    with torch.no_grad():
        for imgs in maps:
            x = imgs.float() / 127.5 - 1
            d = [reference(x[i:i + 1], x[j:j + 1]).item() for i, j in combinations(range(4), 2)]
            expected.append(float(np.mean(d)))
    assert per_map == pytest.approx(expected, rel=1e-5)
    assert lpips_diversity(per_map) == pytest.approx(np.mean(expected), rel=1e-5)
    assert all(v > 0 for v in per_map)
    # normalize=True on [0, 1] inputs is the same scaling
    with torch.no_grad():
        x = maps[0].float() / 255
        assert reference(x[:1], x[1:2], normalize=True).item() == \
            pytest.approx(ours(to_lpips_input(maps[0][:1]), to_lpips_input(maps[0][1:2])).item(),
                          rel=1e-4)


def test_trunk_is_loaded_from_the_resolved_file(eval_env):  # noqa: F811
    model, resolved = build_lpips("alex", "0.1")
    state = torch.load(resolved.path, weights_only=True)
    net = model.state_dict()
    for tv_index, slice_name in [(0, "slice1.0"), (3, "slice2.3"), (6, "slice3.6"),
                                 (8, "slice4.8"), (10, "slice5.10")]:
        for p in ("weight", "bias"):
            assert torch.equal(net[f"net.{slice_name}.{p}"], state[f"features.{tv_index}.{p}"])
    # the lin layers still come from the lpips wheel (not random)
    import lpips
    import os
    wheel = torch.load(os.path.join(os.path.dirname(lpips.__file__), "weights/v0.1/alex.pth"),
                       map_location="cpu")
    assert torch.equal(net["lin0.model.1.weight"], wheel["lin0.model.1.weight"])


def test_vgg_trunk_mapping_covers_every_slice():
    import lpips
    from torchvision.models.vgg import cfgs, make_layers
    features = make_layers(cfgs["D"])
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    with _quiet():
        model = lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False)
    mapped = trunk_state_to_lpips("vgg", state)
    expected = {k for k in model.state_dict() if k.startswith("net.")}
    assert set(mapped) == expected and len(mapped) == 26


def test_missing_backbone_is_weights_unavailable(no_weights_env):  # noqa: F811
    with pytest.raises(WeightsUnavailable, match="alexnet-owt-7be5be79.pth"):
        build_lpips("alex", "0.1")


def test_pairwise_needs_two_samples(eval_env, synthetic_val):  # noqa: F811
    model, _ = build_lpips("alex", "0.1")
    with pytest.raises(ValueError, match="at least 2"):
        pairwise_mean(model, _samples(synthetic_val, 1, 0))


def test_class_specific_diversity(eval_env, direct_lpips, synthetic_val, tmp_path):  # noqa: F811
    """K=3 samples per class that differ only inside that class's region: in-class LPIPS (mCSD)
    is large, the rest (mOCD) small; both equal the lpips package's spatial map averaged over
    the region, then over pairs, classes within a map, and maps."""
    from evaluators.classwise import classwise_diversity
    from evaluators.fid import read_uint8
    from harness.generate import save_png

    spatial, _ = build_lpips("alex", "0.1", spatial=True)
    labels, samples, pairs = {}, {}, []
    for i in range(2):
        rec = synthetic_val.records()[i]
        label = torch.from_numpy(synthetic_val.read_label(rec))
        image = torch.from_numpy(synthetic_val.read_image(rec)).permute(2, 0, 1)
        labels[rec.key] = label
        for cls in torch.unique(label).tolist()[:2]:
            mask = label == cls
            files = []
            for k in range(3):
                other = torch.from_numpy(perturb(image.permute(1, 2, 0).numpy(), "noise", 10 * cls + k))
                changed = torch.where(mask[None], other.permute(2, 0, 1), image)
                files.append(tmp_path / f"{rec.key}_{cls}_{k}.png")
                save_png(files[-1], changed)
            samples.setdefault(rec.key, {})[cls] = files
            imgs = [read_uint8(f) for f in files]
            pairs += [(rec.key, cls, imgs[a], imgs[b], mask) for a, b in ((0, 1), (0, 2), (1, 2))]
    out = classwise_diversity(spatial, labels, samples, read_uint8, batch_size=2)
    assert out["mcsd"] > 2 * out["mocd"] > 0
    assert (out["maps"], out["classes"]) == (2, 4)

    reference = direct_lpips(spatial=True)
    per: dict[str, dict[int, list[tuple[float, float]]]] = {}
    with torch.no_grad():
        for key, cls, a, b, mask in pairs:
            dmap = reference(to_lpips_input(a[None]), to_lpips_input(b[None]))[0, 0]
            m = mask.float()
            per.setdefault(key, {}).setdefault(cls, []).append(
                (float((dmap * m).sum() / m.sum()), float((dmap * (1 - m)).sum() / (1 - m).sum())))
    for key, classes in per.items():
        for cls, vals in classes.items():
            got = out["per_map"][key][str(cls)]
            assert got["csd"] == pytest.approx(np.mean([v[0] for v in vals]), rel=1e-5)
            assert got["ocd"] == pytest.approx(np.mean([v[1] for v in vals]), rel=1e-5)
            assert got["pairs"] == 3
    mcsd = np.mean([np.mean([np.mean([v[0] for v in vals]) for vals in c.values()]) for c in per.values()])
    mocd = np.mean([np.mean([np.mean([v[1] for v in vals]) for vals in c.values()]) for c in per.values()])
    assert out["mcsd"] == pytest.approx(mcsd, rel=1e-5)
    assert out["mocd"] == pytest.approx(mocd, rel=1e-5)
    pairs = [ClassPair(cls, a, b, mask) for _, cls, a, b, mask in pairs]

    with pytest.raises(ValueError, match="spatial=True"):
        masked_lpips(build_lpips("alex")[0], pairs[0].image_a[None], pairs[0].image_b[None],
                     pairs[0].mask[None])
