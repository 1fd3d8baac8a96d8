"""Label-map colours: the dataset's own palette where it has one, else a generated one.

- ``cityscapes``: the official colours of the labelIds (cityscapesScripts ``labels.py``; the
  generator input uses raw labelIds 0..33, id 34 is the license-plate slot);
- ``synthetic``: the base colour of each class in the procedural scenes, so a label map looks
  like the scene it describes;
- anything else: :func:`bit_palette` (distinct colours from the bits of the class id).
"""
from __future__ import annotations

import torch

# labelId -> RGB (cityscapesScripts labels.py); 34 = license plate, drawn like a car.
CITYSCAPES = (
    (0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0), (111, 74, 0), (81, 0, 81),
    (128, 64, 128), (244, 35, 232), (250, 170, 160), (230, 150, 140), (70, 70, 70),
    (102, 102, 156), (190, 153, 153), (180, 165, 180), (150, 100, 100), (150, 120, 90),
    (153, 153, 153), (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35),
    (152, 251, 152), (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70),
    (0, 60, 100), (0, 0, 90), (0, 0, 110), (0, 80, 100), (0, 0, 230), (119, 11, 32), (0, 0, 142),
)


def bit_palette(n: int) -> torch.Tensor:
    """n distinct colours (uint8 [n, 3]): the bits of the class id spread over R, G and B from
    the most significant bit down, so neighbouring ids get clearly different colours."""
    out = torch.zeros(n, 3, dtype=torch.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        out[i] = torch.tensor([r, g, b], dtype=torch.uint8)
    return out


def _synthetic() -> tuple[tuple[int, int, int], ...]:
    from harness.core.data.synthetic import _COLOURS

    return tuple(tuple(int(round(v * 255)) for v in row) for row in _COLOURS)


def dataset_palette(dataset: str | None, n: int) -> torch.Tensor:
    """uint8 [n, 3]: the dataset's colours for ids 0..n-1; ids beyond its table (don't-care,
    an extra channel) get the generated colours."""
    table: tuple = ()
    if dataset == "cityscapes":
        table = CITYSCAPES
    elif dataset == "synthetic":
        table = _synthetic()
    out = bit_palette(n)
    for i, rgb in enumerate(table[:n]):
        out[i] = torch.tensor(rgb, dtype=torch.uint8)
    return out


def colorize(label: torch.Tensor, num_classes: int, dataset: str | None = None) -> torch.Tensor:
    """int64 [N,H,W] (or [H,W]) class ids -> uint8 [N,3,H,W] (or [3,H,W])."""
    single = label.dim() == 2
    lab = label[None] if single else label
    n = max(num_classes, int(lab.max()) + 1 if lab.numel() else 1)
    colours = dataset_palette(dataset, n)
    out = colours[lab.cpu().long()].permute(0, 3, 1, 2).contiguous()
    return out[0] if single else out
