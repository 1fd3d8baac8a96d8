"""Sample grids during training: ``<run>/train_samples/step_XXXXXXXX.png``.

A header line (method, step) above one row per image of a fixed small batch (the first images
of the training split, evaluation transform): label map in the dataset's colours
(harness.figures.palette) | generated image | real image. Generation uses per-image
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
from harness.figures.palette import bit_palette
from harness.figures.palette import colorize as _colorize

SAMPLES_DIR = "train_samples"


def palette(n: int) -> torch.Tensor:
    """The generated palette (uint8 [n, 3]); datasets with their own colours: dataset_palette."""
    return bit_palette(n)


def colorize(label: torch.Tensor, num_classes: int, dataset: str | None = None) -> torch.Tensor:
    """int64 [N,H,W] class ids -> uint8 [N,3,H,W] in ``dataset``'s palette."""
    return _colorize(label, num_classes, dataset)


def fixed_batch(dataset, n: int = 4) -> Batch:
    return collate([dataset[i] for i in range(min(n, len(dataset)))])


@torch.no_grad()
def grid(method, batch: Batch, *, seed: int = 0, gap: int = 2, step: int | None = None
         ) -> torch.Tensor:
    """uint8 [3, H', W'] image: a header (method, step; when ``step`` is given), then rows of
    (label | generated | real)."""
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
    labels = colorize(batch.label, method.info.num_label_channels, method.info.name)
    real = ((batch.image.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
    n, _, h, w = real.shape
    canvas = torch.full((3, n * (h + gap) - gap, 3 * (w + gap) - gap), 255, dtype=torch.uint8)
    for i in range(n):
        y = i * (h + gap)
        for j, img in enumerate((labels[i], fake[i], real[i])):
            x = j * (w + gap)
            canvas[:, y:y + h, x:x + w] = img
    if step is None:
        return canvas
    return with_header(canvas, f"{method.name}  step {step}")


HEADER_HEIGHT = 14


def with_header(canvas: torch.Tensor, text: str, height: int = HEADER_HEIGHT) -> torch.Tensor:
    """``canvas`` (uint8 [3,H,W]) below a white strip of ``height`` rows with ``text`` in black."""
    from PIL import Image, ImageDraw, ImageFont

    _, h, w = canvas.shape
    strip = Image.new("RGB", (w, height), (255, 255, 255))
    try:
        font = ImageFont.load_default(size=height - 4)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        font = ImageFont.load_default()
    ImageDraw.Draw(strip).text((2, 1), text, fill=(0, 0, 0), font=font)
    top = torch.from_numpy(np.asarray(strip).copy()).permute(2, 0, 1)
    return torch.cat([top, canvas], dim=1)


def write_png(path: Path, chw_uint8: torch.Tensor) -> Path:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(chw_uint8.permute(1, 2, 0).numpy()).save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())


def sample_path(run_dir: Path, step: int) -> Path:
    return run_dir / SAMPLES_DIR / f"step_{step:08d}.png"
