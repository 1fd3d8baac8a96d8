"""pix2pixHD instance features: instance-wise average pooling, K-means clustering of the training
set (official encode_features.py), cluster sampling at inference, the official .npy format."""
import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans

from methods.pix2pixhd.clustering import (cluster_features, clusters_filename, load_clusters,
                                          regions_with_labels, sample_cluster_features,
                                          save_clusters)
from methods.pix2pixhd.encoder import instance_average
from methods.pix2pixhd.method import Pix2PixHD

from _methods_helpers import sp_blocky_batch, sp_generators, sp_info


def _official_pool(outputs, inst):
    """The official Encoder.forward loops (instance ids over the whole batch)."""
    out = outputs.clone()
    for i in torch.unique(inst):
        for b in range(outputs.shape[0]):
            mask = inst[b] == i
            if mask.any():
                for j in range(outputs.shape[1]):
                    out[b, j][mask] = outputs[b, j][mask].mean()
    return out


def test_instance_average_equals_the_official_loops_values_and_gradients():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 3, 8, 9, generator=g, requires_grad=True)
    inst = torch.randint(0, 4, (2, 8, 9), generator=g) * 1000 + torch.randint(0, 3, (2, 8, 9), generator=g)
    ours = instance_average(feats, inst)
    ref = _official_pool(feats, inst)
    assert torch.allclose(ours, ref, atol=1e-6)
    w = torch.randn(ours.shape, generator=g)
    (ga,) = torch.autograd.grad((ours * w).sum(), feats)
    (gb,) = torch.autograd.grad((ref * w).sum(), feats)
    assert torch.allclose(ga, gb, atol=1e-6)


def test_instance_average_keeps_float64_precision():
    """A float64 run gets float64 region means (no float32 round trip): checked against an
    independent per-image, per-region mean computed with numpy."""
    rng = np.random.default_rng(0)
    # values 1 + O(1e-9): float32 (eps 1.2e-7) cannot even represent the differences
    feats = 1.0 + 1e-9 * rng.standard_normal((2, 3, 6, 7))
    inst = rng.integers(0, 3, (2, 6, 7))
    ours = instance_average(torch.from_numpy(feats), torch.from_numpy(inst))
    assert ours.dtype == torch.float64
    want = np.empty_like(feats)
    for b in range(2):
        for region in np.unique(inst[b]):
            mask = inst[b] == region
            for ch in range(3):
                want[b, ch][mask] = feats[b, ch][mask].mean()
    assert np.abs(ours.numpy() - want).max() < 1e-15
    # reduced precision still sums in float32 and returns its own dtype
    half = instance_average(torch.from_numpy(feats).to(torch.bfloat16), torch.from_numpy(inst))
    assert half.dtype == torch.bfloat16


def test_regions_take_the_majority_label_of_their_pixels():
    regions = torch.tensor([[5, 5, 7], [5, 7, 7]])
    label = torch.tensor([[1, 1, 2], [3, 2, 2]])
    inverse, labels, counts = regions_with_labels(regions, label)
    assert labels.tolist() == [1, 2] and counts.tolist() == [3, 3]
    assert inverse.view(2, 3).tolist() == [[0, 0, 1], [0, 1, 1]]


INFO = sp_info(3, instances=True, size=(32, 32))


def _method():
    torch.manual_seed(0)
    return Pix2PixHD(Pix2PixHD.Config(ngf=4, n_downsample_global=2, n_blocks_global=1, ndf=4,
                                      num_D=1, instance_feat=True, nef=4, n_downsample_E=2,
                                      lambda_vgg=0.0, n_clusters=3), INFO)


def _batches():
    """Instances of 8x8 (area 64 > 32*32/64 = 16: kept) and one class (2) drawn only as 3x3
    specks (area 9: dropped by the official area filter)."""
    out = []
    for seed in range(4):
        b = sp_blocky_batch(INFO, n=2, seed=seed, cell=8)
        b.label[b.label == 2] = 0
        b.label[:, 2:5, 2:5] = 2
        b.instance = b.label * 1000 + b.instance % 1000
        b.instance[:, 2:5, 2:5] = 2000 + 99
        out.append(b)
    return out


def test_cluster_features_equals_an_independent_kmeans_of_kept_instances():
    m = _method()
    batches = _batches()
    centres = cluster_features(m, batches, n_clusters=3)
    per_class = {}
    with torch.no_grad():
        for b in batches:
            raw = m.nets.E.model(b.image)
            for i in range(len(b)):
                for rid in torch.unique(b.instance[i]):
                    mask = b.instance[i] == rid
                    area = int(mask.sum())
                    if area / (32 * 32 // 32) <= 0.5:
                        continue
                    cls = int(torch.mode(b.label[i][mask]).values)
                    per_class.setdefault(cls, []).append(raw[i][:, mask].mean(1).double().numpy())
    assert set(centres) == set(per_class) == {0, 1}  # class 2 only has specks below the area
    for cls, feats in per_class.items():
        feats = np.stack(feats)
        ref = KMeans(n_clusters=min(3, len(feats)), random_state=0, n_init=10).fit(feats)
        assert centres[cls].shape == (min(3, len(feats)), 3)
        np.testing.assert_allclose(centres[cls], ref.cluster_centers_, atol=1e-6)


def test_after_training_clusters_automatically_and_makes_the_method_multimodal():
    m = _method()
    assert not m.multimodal
    summary = m.after_training(_batches(), batch_size=2)
    assert summary == {"feature_clusters": {"0": 3, "1": 3}}
    assert m.multimodal
    state = m.state_dict()
    fresh = _method()
    fresh.load_state_dict(state)
    assert {k: v.tolist() for k, v in fresh.clusters.items()} == \
        {k: v.tolist() for k, v in m.clusters.items()}


def test_sampling_paints_one_centre_of_its_class_per_instance():
    clusters = {0: np.array([[1.0, 2, 3], [4, 5, 6]]), 1: np.array([[-1.0, -2, -3]])}
    label = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 0, 0]]])
    inst = torch.tensor([[[10, 10, 20, 20], [10, 10, 20, 20], [30, 30, 40, 40]]])
    feats = sample_cluster_features(clusters, label, inst, 3, sp_generators([0]))
    assert feats.shape == (1, 3, 3, 4)
    per_pixel = feats[0].permute(1, 2, 0)
    for rid in (10, 20, 30, 40):
        vals = per_pixel[inst[0] == rid]
        assert (vals == vals[0]).all()  # constant per instance
    assert per_pixel[0, 2].tolist() == [-1, -2, -3]
    assert per_pixel[2, 0].tolist() == [0, 0, 0]  # class 2 has no clusters: zeros
    assert per_pixel[0, 0].tolist() in ([1, 2, 3], [4, 5, 6])
    again = sample_cluster_features(clusters, label, inst, 3, sp_generators([0]))
    assert torch.equal(feats, again)
    draws = {tuple(sample_cluster_features(clusters, label, inst, 3,
                                           sp_generators([s]))[0, :, 0, 0].tolist())
             for s in range(20)}
    assert draws == {(1.0, 2.0, 3.0), (4.0, 5.0, 6.0)}


def test_features_file_is_the_official_pickled_dict(tmp_path):
    clusters = {3: np.arange(6.0).reshape(2, 3), 26: np.ones((10, 3))}
    path = save_clusters(tmp_path / clusters_filename(10), clusters)
    assert path.name == "features_clustered_010.npy"
    raw = np.load(path, allow_pickle=True).item()  # how the official test code reads it
    assert set(raw) == {3, 26} and np.array_equal(raw[3], clusters[3])
    loaded = load_clusters(path)
    assert {k: v.tolist() for k, v in loaded.items()} == {k: v.tolist() for k, v in clusters.items()}


def test_bad_features_file_is_one_clear_error(tmp_path):
    np.save(tmp_path / "bad.npy", {1: np.zeros((2, 4))}, allow_pickle=True)
    with pytest.raises(ValueError, match=r"bad.npy: entry 1 must map an integer label to a K x 3"):
        load_clusters(tmp_path / "bad.npy")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match="junk.npy is not a pix2pixHD feature-cluster file"):
        load_clusters(tmp_path / "junk.npy")
    with pytest.raises(FileNotFoundError, match="none.npy"):
        load_clusters(tmp_path / "none.npy")
