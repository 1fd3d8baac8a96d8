"""Instance boundary map shared by every method (pix2pixHD / SPADE / CC-FPSE convention).

A pixel is an edge when its 4-neighbour (right or below) belongs to another instance; both pixels
of such a pair are marked, so boundaries are two pixels thick. Computed once by the data pipeline
at the training resolution, after the nearest resize of the instance map.
"""
from __future__ import annotations

import torch


def instance_edges(instance: torch.Tensor) -> torch.Tensor:
    """[..., H, W] integer instance ids -> [..., 1, H, W] float32 edge map in {0, 1}."""
    edge = torch.zeros(instance.shape, dtype=torch.bool, device=instance.device)
    horizontal = instance[..., :, 1:] != instance[..., :, :-1]
    vertical = instance[..., 1:, :] != instance[..., :-1, :]
    edge[..., :, 1:] |= horizontal
    edge[..., :, :-1] |= horizontal
    edge[..., 1:, :] |= vertical
    edge[..., :-1, :] |= vertical
    return edge.unsqueeze(-3).float()
