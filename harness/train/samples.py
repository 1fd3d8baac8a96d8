"""Sample grids during training: ``<run>/train_samples/step_XXXXXXXX.png``.

One row per image of a fixed small batch (the first images of the training split, evaluation
transform): colourised label map | generated image | real image. Generation uses per-image
seeded generators and leaves every global RNG untouched, so writing grids never changes the
training trajectory (resumed runs stay exact).
"""
from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import torch

from harness.core.data.base import Batch, collate
from harness.core.io import atomic_write_bytes

SAMPLES_DIR = "train_samples"


def palette(n: int) -> torch.Tensor:
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


def colorize(label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """int64 [N,H,W] class ids -> uint8 [N,3,H,W]."""
    colours = palette(max(num_classes, int(label.max()) + 1 if label.numel() else 1))
    return colours[label.cpu()].permute(0, 3, 1, 2).contiguous()


def fixed_batch(dataset, n: int = 4) -> Batch:
    return collate([dataset[i] for i in range(min(n, len(dataset)))])


@torch.no_grad()
def grid(method, batch: Batch, *, seed: int = 0, gap: int = 2) -> torch.Tensor:
    """uint8 [3, H', W'] image: rows of (label | generated | real)."""
    device = method.device
    py_state, np_state = random.getstate(), np.random.get_state()
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        gens = [torch.Generator(device=device).manual_seed(seed + i) for i in range(len(batch))]
        was_training = method.nets.training
        method.eval()
        try:
            fake = method.generate(batch.label.to(device),
                                   None if batch.instance is None else batch.instance.to(device),
                                   edge=None if batch.edge is None else batch.edge.to(device),
                                   generator=gens).cpu()
        finally:
            method.train(was_training)
    random.setstate(py_state)
    np.random.set_state(np_state)
    labels = colorize(batch.label, method.info.num_label_channels)
    real = ((batch.image.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
    n, _, h, w = real.shape
    canvas = torch.full((3, n * (h + gap) - gap, 3 * (w + gap) - gap), 255, dtype=torch.uint8)
    for i in range(n):
        y = i * (h + gap)
        for j, img in enumerate((labels[i], fake[i], real[i])):
            x = j * (w + gap)
            canvas[:, y:y + h, x:x + w] = img
    return canvas


def write_png(path: Path, chw_uint8: torch.Tensor) -> Path:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(chw_uint8.permute(1, 2, 0).numpy()).save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())


def sample_path(run_dir: Path, step: int) -> Path:
    return run_dir / SAMPLES_DIR / f"step_{step:08d}.png"
