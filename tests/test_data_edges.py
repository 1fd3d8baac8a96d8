"""Instance edges against a hand-computed example, and the Batch contract of the data path."""
import torch

from harness.core.data import Batch, collate, instance_edges


def test_edges_hand_computed():
    inst = torch.tensor([[1, 1, 1, 2],
                         [1, 5, 5, 2],
                         [1, 5, 5, 2],
                         [3, 3, 3, 3]])
    # A pixel is on an edge when its right/left/up/down neighbour has another id (4-connected).
    expected = torch.tensor([[0, 1, 1, 1],
                             [1, 1, 1, 1],
                             [1, 1, 1, 1],
                             [1, 1, 1, 1]], dtype=torch.float32)
    assert torch.equal(instance_edges(inst), expected[None])
    flat = torch.full((3, 5), 7)
    assert torch.equal(instance_edges(flat), torch.zeros(1, 3, 5))
    # A vertical boundary marks the two columns next to it only.
    two = torch.tensor([[4, 4, 9, 9, 9]] * 2)
    assert torch.equal(instance_edges(two), torch.tensor([[[0., 1., 1., 0., 0.]] * 2]))
    batch = torch.stack([inst, inst.T])
    assert instance_edges(batch).shape == (2, 1, 4, 4)


def test_collate_builds_a_batch():
    samples = [{"label": torch.zeros(4, 4, dtype=torch.long), "image": torch.zeros(3, 4, 4),
                "key": f"k{i}", "index": i, "instance": torch.ones(4, 4, dtype=torch.long),
                "edge": torch.zeros(1, 4, 4)} for i in range(2)]
    b = collate(samples)
    assert isinstance(b, Batch) and b.key == ["k0", "k1"] and b.index.tolist() == [0, 1]
    assert b.edge.shape == (2, 1, 4, 4) and b.instance.shape == (2, 4, 4)
    no_inst = collate([{k: v for k, v in s.items() if k not in ("instance", "edge")}
                       for s in samples])
    assert no_inst.instance is None and no_inst.edge is None
