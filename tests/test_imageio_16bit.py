"""16-bit PNGs: photos scale to 8 bits as round(v * 255 / 65535) through the one photo reader
(datasets, the FID reference set, `evaluate --images`), 16-bit label maps keep their integer
ids, and an unsupported mode is one error naming the file and the mode.

The 48/64-bit RGB(A) files are written by a tiny PNG encoder below (PIL cannot write them), so
the reader is checked against files it did not produce; the expected 8-bit values are computed
here independently, in float64."""
from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _cli_helpers import call_main
from _data_helpers import block_labels, make_folder, write_png
from _eval_helpers import write_protocol
from harness.core.data import DatasetError, build_dataset

# Values where taking the high byte (v >> 8) and rounding (v / 257) disagree, plus the ends.
EDGE_VALUES = [0, 1, 128, 129, 255, 256, 257, 32767, 32768, 51200, 51271, 65279, 65280, 65535]


def png16(path: Path, array: np.ndarray) -> Path:
    """A 16-bit PNG by hand: [H,W] grey, [H,W,2] grey+alpha, [H,W,3] RGB or [H,W,4] RGBA."""
    array = np.asarray(array, dtype=np.uint16)
    h, w = array.shape[:2]
    channels = 1 if array.ndim == 2 else array.shape[2]
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = array.reshape(h, w * channels).astype(">u2")
    raw = b"".join(b"\x00" + rows[y].tobytes() for y in range(h))  # filter 0 on every row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


def gray16(path: Path, array: np.ndarray) -> Path:
    """A 16-bit grayscale PNG written by PIL (mode 'I;16')."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint16)).save(path, format="PNG")
    return path


def to8(values: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(values, dtype=np.float64) * 255.0 / 65535.0).astype(np.uint8)


def values16(rng: np.random.Generator, shape) -> np.ndarray:
    v = rng.integers(0, 65536, size=shape)
    flat = v.reshape(-1)
    flat[: len(EDGE_VALUES)] = EDGE_VALUES
    return v.astype(np.uint16)


def test_scaling_rule_is_exact_at_every_16_bit_value():
    from harness.core.data.imageio import scale_16_to_8
    v = np.arange(65536, dtype=np.uint16)
    assert np.array_equal(scale_16_to_8(v), to8(v))
    assert (v >> 8 != to8(v)).sum() > 0  # PIL's high byte would be a different rule


@pytest.mark.parametrize("kind", ["gray", "rgb", "rgba"])
def test_16_bit_photos_read_as_rounded_8_bit(tmp_path, kind):
    from harness.core.data.imageio import open_rgb
    rng = np.random.default_rng(1)
    if kind == "gray":
        v = values16(rng, (6, 5))
        path = gray16(tmp_path / "g.png", v)
        want = np.repeat(to8(v)[:, :, None], 3, axis=2)
    else:
        v = values16(rng, (6, 5, 3 if kind == "rgb" else 4))
        path = png16(tmp_path / f"{kind}.png", v)
        want = to8(v[:, :, :3])
    assert np.array_equal(np.asarray(open_rgb(path)), want)


def test_unsupported_modes_are_one_error_naming_file_and_mode(tmp_path):
    from harness.core.data.imageio import open_rgb
    la = png16(tmp_path / "la16.png", np.full((4, 4, 2), 40000))
    with pytest.raises(DatasetError, match=r"la16\.png has mode 'RGBA' \(stored as 'LA;16B'\).*"
                                           r"not supported"):
        open_rgb(la)
    floats = tmp_path / "f.tiff"
    Image.fromarray(np.ones((4, 4), dtype=np.float32)).save(floats)
    with pytest.raises(DatasetError, match=r"f\.tiff has mode 'F'.*supported: 8-bit"):
        open_rgb(floats)


def _twin_folders(root16: Path, root8: Path, n: int = 2, size: int = 8) -> None:
    """The same folder dataset twice: photos as 16-bit PNGs, and as their 8-bit conversion."""
    rng = np.random.default_rng(3)
    for root in (root16, root8):
        make_folder(root, "val", n=n, size_hw=(size, size))
    for i in range(n):
        key = f"img{i:03d}"
        v = values16(rng, (size, size) if i == 0 else (size, size, 3))
        (root16 / "val" / "images" / f"{key}.png").unlink()
        if v.ndim == 2:
            gray16(root16 / "val" / "images" / f"{key}.png", v)
            eight = np.repeat(to8(v)[:, :, None], 3, axis=2)
        else:
            png16(root16 / "val" / "images" / f"{key}.png", v)
            eight = to8(v)
        write_png(root8 / "val" / "images" / f"{key}.png", eight)


def test_dataset_reads_16_bit_photos_like_their_8_bit_conversion(tmp_path):
    _twin_folders(tmp_path / "a16", tmp_path / "a8")
    ds16 = build_dataset("folder", {"root": str(tmp_path / "a16")}, "val")
    ds8 = build_dataset("folder", {"root": str(tmp_path / "a8")}, "val")
    for r16, r8 in zip(ds16.records(), ds8.records()):
        assert np.array_equal(ds16.read_image(r16), ds8.read_image(r8))
        assert (ds16.read_image(r16) < 255).mean() > 0.9  # not PIL's all-white 'I;16' -> RGB
        assert np.array_equal(ds16.image_resized(r16, (5, 7)).numpy(),
                              ds8.image_resized(r8, (5, 7)).numpy())
    for i in range(len(ds16)):  # the training / generation samples (resized to 256, [-1, 1])
        assert np.array_equal(ds16[i]["image"].numpy(), ds8[i]["image"].numpy())


def test_16_bit_label_maps_are_read_as_ids_and_checked(tmp_path):
    make_folder(tmp_path, "val", n=1, classes=("a", "b", "c"))
    label = block_labels(16, 16, [0, 1, 2], block=4)
    gray16(tmp_path / "val" / "labels" / "img000.png", label)
    ds = build_dataset("folder", {"root": str(tmp_path)}, "val")
    assert np.array_equal(ds.read_label(ds.records()[0]), label)
    label[0, 0] = 300  # a 16-bit value outside the label space
    gray16(tmp_path / "val" / "labels" / "img000.png", label)
    with pytest.raises(DatasetError, match=r"img000\.png contains ids 300 in 1 pixels.*allowed"):
        ds.read_label(ds.records()[0])


class IntensitySegmenter:
    """A deterministic 'segmenter' for the synthetic label space: class = red channel // 26,
    so mIoU depends on every pixel's exact 8-bit value (an all-white image gives one class)."""

    @staticmethod
    def build(weights=None, device="cpu"):
        import torch
        from evaluators.segmenters import Segmenter

        class _Model(Segmenter):
            name = "intensity-test"
            label_space = "synthetic"
            num_classes = 10

            @torch.no_grad()
            def predict(self, images, out_size):
                ids = (images[:, 0].long() // 26).clamp(max=9)
                return torch.nn.functional.interpolate(
                    ids[:, None].float(), size=tuple(out_size), mode="nearest")[:, 0].long()
        return _Model().eval()


@pytest.fixture
def intensity_segmenter():
    from evaluators.segmenters import SEGMENTERS, SegmenterEntry
    SEGMENTERS.add("intensity-test", SegmenterEntry(
        name="intensity-test", label_space="synthetic", description="test",
        build=IntensitySegmenter.build, identity={"rule": "red // 26"}), "test (16-bit)")
    yield "intensity-test"
    SEGMENTERS.reload()  # forgets the test registration


def test_evaluate_images_scores_16_bit_files_as_their_8_bit_conversion(intensity_segmenter,
                                                                         tmp_path, monkeypatch):
    """`evaluate --images` on a folder of 16-bit PNGs gives the numbers of the same images
    converted to 8 bits here (the generated images go through the one photo reader)."""
    from harness.core.data.synthetic import SyntheticDataset, SyntheticOptions
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    size, n = 16, 3
    root = tmp_path / "syn"
    data = ["--set", f"dataset.root={root}", "--set", f"dataset.size={size}",
            "--set", "dataset.num_train=2", "--set", f"dataset.num_val={n}"]
    val = SyntheticDataset(SyntheticOptions(root=str(root), num_train=2, num_val=n, size=size),
                           "val")
    rng = np.random.default_rng(5)
    for i, rec in enumerate(val.records()):
        eight = rng.integers(0, 256, size=(size, size, 3)).astype(np.uint8)
        # 16-bit values that round to exactly those 8-bit values (|offset| < 257 / 2)
        v = np.clip(eight.astype(np.int64) * 257 + rng.integers(-128, 129, size=eight.shape),
                    0, 65535)
        assert np.array_equal(to8(v), eight)
        if i % 2:
            gray16(tmp_path / "g16" / f"{rec.key}.png", v[:, :, 0])
            eight = np.repeat(eight[:, :, :1], 3, axis=2)
        else:
            png16(tmp_path / "g16" / f"{rec.key}.png", v)
        write_png(tmp_path / "g8" / f"{rec.key}.png", eight)
    proto = write_protocol(tmp_path, "p16", resolution=[size, size], fid={"enabled": False},
                           segmentation={"segmenter": intensity_segmenter,
                                         "label_space": "synthetic", "real_images": False})
    scores = {}
    for name in ("g16", "g8"):
        code, out, err = call_main("evaluate", "--images", str(tmp_path / name), "--dataset",
                                   "synthetic", "--protocol", str(proto), "--quiet", *data)
        assert code == 0, err
        metrics = json.loads(out)["metrics"]
        assert isinstance(metrics["miou"], float), metrics
        scores[name] = (metrics["miou"], metrics["accuracy"])
    assert scores["g16"] == scores["g8"]
