"""mmsegmentation 1.x models as segmenters: any config + checkpoint, and three presets.

mmseg is an optional extra (``pip install -e .[mmseg]``). The entries are always listed; building
one without the extra raises :class:`MMSegUnavailable` with that command.

Prediction runs mmseg's own code end to end: the config's test pipeline (keep-ratio ``Resize`` to
the config scale on the BGR uint8 image), the model's ``SegDataPreProcessor`` (BGR -> RGB,
mean/std, test padding) and ``test_step`` (whole or slide inference; logits bilinearly resized to
``ori_shape``, which is set to the requested output size, then argmax). Checkpoints are read here
(see :func:`read_runner_checkpoint`) and loaded with strict keys.
"""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from evaluators.segmenters import Segmenter, SegmenterEntry, register_segmenter
from evaluators.segmenters._common import check_images, load_strict
from evaluators.segmenters._mmseg_compat import (MMCVOpUnavailable, MMSegUnavailable,
                                                 find_config, import_mmseg, read_runner_checkpoint)
from harness.core.weights import ResolvedWeights, WeightSpec, resolve

__all__ = ["MMSegSegmenter", "MMSegUnavailable", "MMCVOpUnavailable", "build_mmseg",
           "COCOSTUFF_UNUSED_IDS", "COCOSTUFF_171_TO_182", "PRESETS"]

_ZOO = "https://download.openmmlab.com/mmsegmentation/v0.5/"

# COCO-Stuff: mmseg trains on 171 classes; these 11 of the 182 stuffthingmap ids have no pixels and
# no class (tools/dataset_converters/coco_stuff164k.py). Train id t is the t-th used id.
COCOSTUFF_UNUSED_IDS = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)
COCOSTUFF_171_TO_182 = tuple(i for i in range(182) if i not in COCOSTUFF_UNUSED_IDS)

# dataset type in the config -> (label space of the output, map from model classes or None)
_LABEL_SPACES = {
    "CityscapesDataset": ("cityscapes-trainid", 19, None),
    "ADE20KDataset": ("ade20k-150", 150, None),
    "COCOStuffDataset": ("cocostuff-182", 182, COCOSTUFF_171_TO_182),
}


def _zoo_spec(key: str, path: str, source: str) -> WeightSpec:
    filename = path.rsplit("/", 1)[-1]
    # OpenMMLab's publish_model appends the first 8 hex digits of the file's sha256.
    prefix = filename.removesuffix(".pth").rsplit("-", 1)[-1]
    return WeightSpec(key=key, filename=filename, url=_ZOO + path, sha256_prefix=prefix,
                      source=source)


PRESETS: dict[str, dict[str, Any]] = {
    "mmseg-deeplabv3plus-r101-cityscapes": {
        "config": "deeplabv3plus/deeplabv3plus_r101-d8_4xb2-80k_cityscapes-512x1024",
        "weights": _zoo_spec(
            "mmseg-deeplabv3plus-r101-d8-cityscapes-80k",
            "deeplabv3plus/deeplabv3plus_r101-d8_512x1024_80k_cityscapes/"
            "deeplabv3plus_r101-d8_512x1024_80k_cityscapes_20200606_114143-068fcfe9.pth",
            "mmsegmentation model zoo, configs/deeplabv3plus (80.97 mIoU single-scale)"),
        "description": "mmseg DeepLabV3+ R101-D8 on Cityscapes (80k), 19 trainIds; mmseg test "
                       "pipeline (keep-ratio resize to 2048x1024, RGB ImageNet mean/std)",
    },
    "mmseg-upernet-r101-ade20k": {
        "config": "upernet/upernet_r101_4xb4-160k_ade20k-512x512",
        "weights": _zoo_spec(
            "mmseg-upernet-r101-ade20k-160k",
            "upernet/upernet_r101_512x512_160k_ade20k/"
            "upernet_r101_512x512_160k_ade20k_20200615_161951-91b32684.pth",
            "mmsegmentation model zoo, configs/upernet (43.82 mIoU single-scale)"),
        "description": "mmseg UPerNet R101 on ADE20K (160k), 150 classes; mmseg test pipeline "
                       "(keep-ratio resize to 2048x512, RGB ImageNet mean/std)",
    },
    "mmseg-deeplabv3-r101-cocostuff164k": {
        "config": "deeplabv3/deeplabv3_r101-d8_4xb4-320k_coco-stuff164k-512x512",
        "weights": _zoo_spec(
            "mmseg-deeplabv3-r101-d8-cocostuff164k-320k",
            "deeplabv3/deeplabv3_r101-d8_512x512_4x4_320k_coco-stuff164k/"
            "deeplabv3_r101-d8_512x512_4x4_320k_coco-stuff164k_20210709_155402-3cbca14d.pth",
            "mmsegmentation model zoo, configs/deeplabv3 (42.61 mIoU single-scale)"),
        "description": "mmseg DeepLabV3 R101-D8 on COCO-Stuff 164k (320k), 171 classes written "
                       "as the 182 COCO-Stuff ids (the 11 unused ids never predicted)",
    },
}


class MMSegSegmenter(Segmenter):
    """An mmseg ``EncoderDecoder`` behind the segmenter contract."""
    name = "mmseg"

    def __init__(self, model: torch.nn.Module, cfg, *, name: str, config_name: str,
                 label_space: str, num_classes: int, class_map: Sequence[int] | None,
                 scale) -> None:
        super().__init__()
        self.model = model
        self.name = name
        self.label_space = label_space
        self.num_classes = num_classes
        self.register_buffer("class_map", None if class_map is None
                             else torch.tensor(class_map, dtype=torch.int64), persistent=False)
        self.pipeline = _test_pipeline(cfg, scale)
        self.config = {"config": config_name,
                       "config_sha256": hashlib.sha256(cfg.pretty_text.encode()).hexdigest(),
                       "test_pipeline": [dict(t) for t in self.pipeline.transforms_cfg],
                       "data_preprocessor": dict(cfg.model.data_preprocessor),
                       "test_cfg": dict(cfg.model.get("test_cfg") or {}),
                       "class_map": "171->182 COCO-Stuff ids" if class_map is not None else None}
        self.eval()

    @torch.no_grad()
    def predict(self, images: torch.Tensor, out_size: Sequence[int]) -> torch.Tensor:
        size = check_images(images, out_size)
        # mmseg's loaders give BGR HWC uint8 (mmcv convention); the preprocessor converts back.
        bgr = images.flip(1).permute(0, 2, 3, 1).cpu().numpy()
        inputs, samples = [], []
        for img in bgr:
            packed = self.pipeline(dict(img=np.ascontiguousarray(img)))
            # Logits are resized to ori_shape at the end of test_step: ask for out_size there.
            packed["data_samples"].set_metainfo({"ori_shape": size})
            inputs.append(packed["inputs"])
            samples.append(packed["data_samples"])
        results = self.model.test_step({"inputs": inputs, "data_samples": samples})
        pred = torch.stack([r.pred_sem_seg.data[0] for r in results]).to(torch.int64)
        if self.class_map is not None:
            pred = self.class_map.to(pred.device)[pred]
        return pred


class _Pipeline:
    def __init__(self, transforms_cfg: list[dict]) -> None:
        from mmengine.dataset import Compose
        self.transforms_cfg = transforms_cfg
        self._compose = Compose([dict(t) for t in transforms_cfg])

    def __call__(self, data: dict) -> dict:
        return self._compose(data)


def _check_scale(scale) -> None:
    if scale is not None and scale != "none" and not (
            isinstance(scale, (list, tuple)) and len(scale) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in scale)):
        raise ValueError(f"mmseg scale must be None (the config's), 'none' (no resize) or a pair "
                         f"of positive ints (w, h), got {scale!r}")


def _test_pipeline(cfg, scale) -> _Pipeline:
    """The config's test pipeline for in-memory images, without annotation loading.

    ``scale``: None keeps the config's Resize; (w, h) replaces its scale; 'none' drops the resize
    (the image is fed at its own size).
    """
    steps = []
    for step in cfg.test_pipeline:
        step = dict(step)
        kind = step["type"]
        if kind in ("LoadAnnotations", "LoadDepthAnnotation"):
            continue
        if kind == "LoadImageFromFile":
            step = {"type": "LoadImageFromNDArray"}
        elif kind == "Resize" and scale is not None:
            if scale == "none":
                continue
            step["scale"] = tuple(int(v) for v in scale)
            step.pop("scale_factor", None)
        steps.append(step)
    return _Pipeline(steps)


def _label_space_of(cfg, label_space: str | None, num_classes: int):
    dataset_type = cfg.get("dataset_type")
    if label_space is None:
        if dataset_type not in _LABEL_SPACES:
            raise ValueError(f"cannot tell the label space of an mmseg model trained on "
                             f"{dataset_type!r}; pass label_space='<name>' (its classes are then "
                             f"the model's {num_classes} output ids)")
        space, n, class_map = _LABEL_SPACES[dataset_type]
        return space, n, class_map
    known = {s: (n, m) for s, n, m in _LABEL_SPACES.values()}
    if label_space not in known:
        return label_space, num_classes, None
    n, class_map = known[label_space]
    if class_map is not None and num_classes == len(class_map):
        return label_space, n, class_map
    if num_classes != n:
        raise ValueError(f"the model predicts {num_classes} classes but label space "
                         f"{label_space!r} has {n}")
    return label_space, n, None


def _resolve_checkpoint(checkpoint, spec: WeightSpec | None) -> ResolvedWeights | None:
    if spec is not None:
        return resolve(spec, checkpoint)
    if checkpoint is None:
        return None
    path = Path(checkpoint).expanduser()
    generic = WeightSpec(key="mmseg-checkpoint", filename=path.name, source=str(path.name))
    return resolve(generic, path)


def build_mmseg(weights=None, device="cpu", *, config: str | None = None,
                checkpoint: str | None = None, label_space: str | None = None, scale=None,
                _spec: WeightSpec | None = None, _name: str = "mmseg") -> MMSegSegmenter:
    """Build any mmseg model from a config (file or name in the wheel) and load its checkpoint.

    ``weights`` / ``checkpoint``: the checkpoint file (either name). ``label_space``: inferred
    from the config's dataset type (Cityscapes, ADE20K, COCO-Stuff) unless given. ``scale``: see
    :func:`_test_pipeline`.
    """
    if config is None:
        raise ValueError("the 'mmseg' segmenter needs config=<mmseg config file or name>")
    if weights is not None and checkpoint is not None and Path(weights) != Path(checkpoint):
        raise ValueError(f"give the mmseg checkpoint once (weights={weights!r}, "
                         f"checkpoint={checkpoint!r})")
    checkpoint = checkpoint if checkpoint is not None else weights
    _check_scale(scale)
    import_mmseg()
    from mmengine import Config
    from mmseg.apis import init_model

    config_path = find_config(config)
    resolved = _resolve_checkpoint(checkpoint, _spec)
    if resolved is None:
        raise ValueError(f"mmseg segmenter {config!r}: no checkpoint given (checkpoint=<path>)")
    cfg = Config.fromfile(str(config_path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")             # deprecation chatter of the model builders
        model = init_model(cfg, None, device="cpu")
    num_classes = int(model.decode_head.num_classes)
    space, n, class_map = _label_space_of(cfg, label_space, num_classes)
    if class_map is not None and num_classes != len(class_map):
        raise ValueError(f"{config_path.name}: {num_classes} classes, expected {len(class_map)} "
                         f"for label space {space}")
    loaded = read_runner_checkpoint(resolved.path)
    load_strict(model, loaded["state_dict"], resolved.path)
    meta = loaded["meta"]
    if isinstance(meta, dict) and "dataset_meta" in meta:
        model.dataset_meta = meta["dataset_meta"]
    elif isinstance(meta, dict) and "CLASSES" in meta:
        model.dataset_meta = {"classes": meta["CLASSES"], "palette": meta.get("PALETTE")}
    name = _name if _name != "mmseg" else f"mmseg:{config_path.stem}"
    seg = MMSegSegmenter(model, cfg, name=name, config_name=config_path.stem, label_space=space,
                         num_classes=n, class_map=class_map, scale=scale)
    seg.resolved_weights = [resolved]
    return seg.to(device).eval()


register_segmenter(SegmenterEntry(
    name="mmseg", label_space="from-config",
    description="any mmsegmentation 1.x config + checkpoint (options config=, checkpoint=, "
                "label_space=, scale=); label space from the config's dataset type; needs the "
                "mmseg extra",
    build=build_mmseg,
    identity={"library": "mmsegmentation 1.x", "preprocessing": "the config's test pipeline"},
    options={"config": None, "checkpoint": None, "label_space": None, "scale": None}))


def _preset_builder(name: str, preset: dict):
    def build(weights=None, device="cpu", *, scale=None):
        return build_mmseg(weights, device, config=preset["config"], scale=scale,
                           _spec=preset["weights"], _name=name)
    build.__name__ = build.__qualname__ = "build_" + name.replace("-", "_")
    build.__doc__ = f"{preset['description']}. Options: scale=None|(w, h)|'none'."
    return build


_SPACE_OF_PRESET = {"mmseg-deeplabv3plus-r101-cityscapes": "cityscapes-trainid",
                    "mmseg-upernet-r101-ade20k": "ade20k-150",
                    "mmseg-deeplabv3-r101-cocostuff164k": "cocostuff-182"}

for _name, _preset in PRESETS.items():
    register_segmenter(SegmenterEntry(
        name=_name, label_space=_SPACE_OF_PRESET[_name], description=_preset["description"],
        build=_preset_builder(_name, _preset), weights=(_preset["weights"],),
        identity={"config": _preset["config"], "weights": [_preset["weights"].identity()],
                  "preprocessing": "mmseg test pipeline of the config"},
        options={"scale": None}))
