"""Shared fixtures of the CC-FPSE tests: dataset descriptions, tiny configurations, batches, and
the official state_dict keys.

OFFICIAL_KEYS_CITYSCAPES lists every key (with its shape) of the networks the official CC-FPSE
code builds at the released Cityscapes configuration (label_nc 35 + instance edge, 'more'
schedule, --use_vae), recorded once by instantiating the official classes (xh-liu/CC-FPSE @
5619e63). It is data, not code: the import tests check that every official key has a home of the
same shape here.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
import yaml

from harness.config import from_dict
from harness.data.base import Batch, DatasetInfo
from harness.data.edges import instance_edges
from methods.ccfpse.method import CCFPSEConfig

REPO = Path(__file__).resolve().parent.parent


def official_info(dataset: str) -> DatasetInfo:
    """The generator-input semantics of the three official datasets."""
    label_nc, dontcare, instances, size = {
        "cityscapes": (35, False, True, (256, 512)),
        "ade20k": (150, True, False, (256, 256)),
        "coco-stuff": (182, True, True, (256, 256)),
    }[dataset]
    names = tuple(f"c{i}" for i in range(label_nc))
    return DatasetInfo(dataset, label_nc, dontcare, instances, names, size)


def official_config(dataset: str, use_vae: bool = True) -> CCFPSEConfig:
    return CCFPSEConfig(use_vae=use_vae, vgg_loss=False,
                        num_upsampling_layers="more" if dataset == "cityscapes" else "normal")


def tiny_info(size=(64, 64), label_nc: int = 4, instances: bool = True) -> DatasetInfo:
    return DatasetInfo("tiny", label_nc, False, instances, tuple(f"c{i}" for i in range(label_nc)), size)


def tiny_config(**overrides) -> CCFPSEConfig:
    """A few-thousand-parameter CC-FPSE for unit tests (VGG off: no weights offline)."""
    base = CCFPSEConfig(ngf=4, ndf=4, z_dim=8, hidden=8, encoder_input_size=16, vgg_loss=False)
    return replace(base, **overrides)


def preset_config(name: str) -> CCFPSEConfig:
    """The method section of configs/experiments/<name>.yaml, validated strictly."""
    data = yaml.safe_load((REPO / "configs" / "experiments" / f"{name}.yaml").read_text())
    method = dict(data["method"])
    method.pop("name", None)
    return from_dict(CCFPSEConfig, method, prefix="method.")


# Class colours of the fake scenes (RGB in [-1, 1]).
COLOURS = torch.tensor([[0.9, -0.8, -0.8], [-0.8, 0.9, -0.8], [-0.8, -0.8, 0.9], [0.9, 0.9, -0.8],
                        [-0.8, 0.9, 0.9], [0.9, -0.8, 0.9], [0.0, 0.0, 0.0], [0.9, 0.9, 0.9]])


def scene_batch(n: int, size=(64, 64), label_nc: int = 4, *, seed: int = 0, edges: bool = True) -> Batch:
    """Label maps of random rectangles on a background; images paint each class in its colour."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    label = torch.zeros(n, h, w, dtype=torch.long)
    instance = torch.zeros(n, h, w, dtype=torch.long)
    for i in range(n):
        for r in range(3):
            cls = int(torch.randint(1, label_nc, (1,), generator=g))
            y0, x0 = (int(v) for v in torch.randint(0, h // 2, (2,), generator=g))
            dy, dx = (int(v) for v in torch.randint(h // 4, h // 2 + 1, (2,), generator=g))
            label[i, y0:y0 + dy, x0:x0 + dx] = cls
            instance[i, y0:y0 + dy, x0:x0 + dx] = r + 1
    image = COLOURS[label].permute(0, 3, 1, 2).contiguous()
    image = (image + 0.05 * torch.randn(image.shape, generator=g)).clamp(-1, 1)
    return Batch(label=label, image=image, key=[f"s{seed}_{i}" for i in range(n)],
                 instance=instance if edges else None, edge=instance_edges(instance) if edges else None)


def parse_keys(text: str) -> dict[str, tuple[int, ...]]:
    out = {}
    for line in text.strip().splitlines():
        key, shape = line.split(" ")
        out[key] = () if shape == "-" else tuple(int(s) for s in shape.split("x"))
    return out


OFFICIAL_KEYS_CITYSCAPES = {
    "G": """
fc.weight 32768x256
fc.bias 32768
labelenc1.0.0.weight_orig 64x36x3x3
labelenc1.0.0.weight_u 64
labelenc1.0.0.weight_v 324
labelenc1.0.1.weight 64
labelenc1.0.1.bias 64
labelenc1.0.1.running_mean 64
labelenc1.0.1.running_var 64
labelenc1.0.1.num_batches_tracked -
labelenc2.0.0.weight_orig 64x64x3x3
labelenc2.0.0.weight_u 64
labelenc2.0.0.weight_v 576
labelenc2.0.1.weight 64
labelenc2.0.1.bias 64
labelenc2.0.1.running_mean 64
labelenc2.0.1.running_var 64
labelenc2.0.1.num_batches_tracked -
labelenc3.0.0.weight_orig 64x64x3x3
labelenc3.0.0.weight_u 64
labelenc3.0.0.weight_v 576
labelenc3.0.1.weight 64
labelenc3.0.1.bias 64
labelenc3.0.1.running_mean 64
labelenc3.0.1.running_var 64
labelenc3.0.1.num_batches_tracked -
labelenc4.0.0.weight_orig 64x64x3x3
labelenc4.0.0.weight_u 64
labelenc4.0.0.weight_v 576
labelenc4.0.1.weight 64
labelenc4.0.1.bias 64
labelenc4.0.1.running_mean 64
labelenc4.0.1.running_var 64
labelenc4.0.1.num_batches_tracked -
labelenc5.0.0.weight_orig 64x64x3x3
labelenc5.0.0.weight_u 64
labelenc5.0.0.weight_v 576
labelenc5.0.1.weight 64
labelenc5.0.1.bias 64
labelenc5.0.1.running_mean 64
labelenc5.0.1.running_var 64
labelenc5.0.1.num_batches_tracked -
labelenc6.0.0.weight_orig 64x64x3x3
labelenc6.0.0.weight_u 64
labelenc6.0.0.weight_v 576
labelenc6.0.1.weight 64
labelenc6.0.1.bias 64
labelenc6.0.1.running_mean 64
labelenc6.0.1.running_var 64
labelenc6.0.1.num_batches_tracked -
labelenc7.0.0.weight_orig 64x64x3x3
labelenc7.0.0.weight_u 64
labelenc7.0.0.weight_v 576
labelenc7.0.1.weight 64
labelenc7.0.1.bias 64
labelenc7.0.1.running_mean 64
labelenc7.0.1.running_var 64
labelenc7.0.1.num_batches_tracked -
labellat1.0.0.weight_orig 64x64x1x1
labellat1.0.0.weight_u 64
labellat1.0.0.weight_v 64
labellat1.0.1.weight 64
labellat1.0.1.bias 64
labellat1.0.1.running_mean 64
labellat1.0.1.running_var 64
labellat1.0.1.num_batches_tracked -
labellat2.0.0.weight_orig 64x64x1x1
labellat2.0.0.weight_u 64
labellat2.0.0.weight_v 64
labellat2.0.1.weight 64
labellat2.0.1.bias 64
labellat2.0.1.running_mean 64
labellat2.0.1.running_var 64
labellat2.0.1.num_batches_tracked -
labellat3.0.0.weight_orig 64x64x1x1
labellat3.0.0.weight_u 64
labellat3.0.0.weight_v 64
labellat3.0.1.weight 64
labellat3.0.1.bias 64
labellat3.0.1.running_mean 64
labellat3.0.1.running_var 64
labellat3.0.1.num_batches_tracked -
labellat4.0.0.weight_orig 64x64x1x1
labellat4.0.0.weight_u 64
labellat4.0.0.weight_v 64
labellat4.0.1.weight 64
labellat4.0.1.bias 64
labellat4.0.1.running_mean 64
labellat4.0.1.running_var 64
labellat4.0.1.num_batches_tracked -
labellat5.0.0.weight_orig 64x64x1x1
labellat5.0.0.weight_u 64
labellat5.0.0.weight_v 64
labellat5.0.1.weight 64
labellat5.0.1.bias 64
labellat5.0.1.running_mean 64
labellat5.0.1.running_var 64
labellat5.0.1.num_batches_tracked -
labellat6.0.0.weight_orig 64x64x1x1
labellat6.0.0.weight_u 64
labellat6.0.0.weight_v 64
labellat6.0.1.weight 64
labellat6.0.1.bias 64
labellat6.0.1.running_mean 64
labellat6.0.1.running_var 64
labellat6.0.1.num_batches_tracked -
labeldec1.0.0.weight_orig 64x64x3x3
labeldec1.0.0.weight_u 64
labeldec1.0.0.weight_v 576
labeldec1.0.1.weight 64
labeldec1.0.1.bias 64
labeldec1.0.1.running_mean 64
labeldec1.0.1.running_var 64
labeldec1.0.1.num_batches_tracked -
labeldec2.0.0.weight_orig 64x64x3x3
labeldec2.0.0.weight_u 64
labeldec2.0.0.weight_v 576
labeldec2.0.1.weight 64
labeldec2.0.1.bias 64
labeldec2.0.1.running_mean 64
labeldec2.0.1.running_var 64
labeldec2.0.1.num_batches_tracked -
labeldec3.0.0.weight_orig 64x64x3x3
labeldec3.0.0.weight_u 64
labeldec3.0.0.weight_v 576
labeldec3.0.1.weight 64
labeldec3.0.1.bias 64
labeldec3.0.1.running_mean 64
labeldec3.0.1.running_var 64
labeldec3.0.1.num_batches_tracked -
labeldec4.0.0.weight_orig 64x64x3x3
labeldec4.0.0.weight_u 64
labeldec4.0.0.weight_v 576
labeldec4.0.1.weight 64
labeldec4.0.1.bias 64
labeldec4.0.1.running_mean 64
labeldec4.0.1.running_var 64
labeldec4.0.1.num_batches_tracked -
labeldec5.0.0.weight_orig 64x64x3x3
labeldec5.0.0.weight_u 64
labeldec5.0.0.weight_v 576
labeldec5.0.1.weight 64
labeldec5.0.1.bias 64
labeldec5.0.1.running_mean 64
labeldec5.0.1.running_var 64
labeldec5.0.1.num_batches_tracked -
labeldec6.0.0.weight_orig 64x64x3x3
labeldec6.0.0.weight_u 64
labeldec6.0.0.weight_v 576
labeldec6.0.1.weight 64
labeldec6.0.1.bias 64
labeldec6.0.1.running_mean 64
labeldec6.0.1.running_var 64
labeldec6.0.1.num_batches_tracked -
head_0.gen_weights1.0.weight 128x100x3x3
head_0.gen_weights1.0.bias 128
head_0.gen_weights1.2.weight 9216x128x3x3
head_0.gen_weights1.2.bias 9216
head_0.gen_weights2.0.weight 128x100x3x3
head_0.gen_weights2.0.bias 128
head_0.gen_weights2.2.weight 9216x128x3x3
head_0.gen_weights2.2.bias 9216
head_0.gen_se_weights1.0.weight 128x100x3x3
head_0.gen_se_weights1.0.bias 128
head_0.gen_se_weights1.2.weight 1024x128x3x3
head_0.gen_se_weights1.2.bias 1024
head_0.gen_se_weights2.0.weight 128x100x3x3
head_0.gen_se_weights2.0.bias 128
head_0.gen_se_weights2.2.weight 1024x128x3x3
head_0.gen_se_weights2.2.bias 1024
head_0.conv_0.norm_layer.weight 1024
head_0.conv_0.norm_layer.bias 1024
head_0.conv_0.norm_layer.running_mean 1024
head_0.conv_0.norm_layer.running_var 1024
head_0.conv_0.norm_layer.num_batches_tracked -
head_0.norm_0.weight 1024
head_0.norm_0.bias 1024
head_0.norm_0.running_mean 1024
head_0.norm_0.running_var 1024
head_0.norm_0.num_batches_tracked -
head_0.conv_1.weight 1024x1024x1x1
head_0.conv_1.bias 1024
head_0.norm_1.weight 1024
head_0.norm_1.bias 1024
head_0.norm_1.running_mean 1024
head_0.norm_1.running_var 1024
head_0.norm_1.num_batches_tracked -
head_0.conv_2.norm_layer.weight 1024
head_0.conv_2.norm_layer.bias 1024
head_0.conv_2.norm_layer.running_mean 1024
head_0.conv_2.norm_layer.running_var 1024
head_0.conv_2.norm_layer.num_batches_tracked -
head_0.norm_2.weight 1024
head_0.norm_2.bias 1024
head_0.norm_2.running_mean 1024
head_0.norm_2.running_var 1024
head_0.norm_2.num_batches_tracked -
head_0.conv_3.weight 1024x1024x1x1
head_0.conv_3.bias 1024
G_middle_0.gen_weights1.0.weight 128x100x3x3
G_middle_0.gen_weights1.0.bias 128
G_middle_0.gen_weights1.2.weight 9216x128x3x3
G_middle_0.gen_weights1.2.bias 9216
G_middle_0.gen_weights2.0.weight 128x100x3x3
G_middle_0.gen_weights2.0.bias 128
G_middle_0.gen_weights2.2.weight 9216x128x3x3
G_middle_0.gen_weights2.2.bias 9216
G_middle_0.gen_se_weights1.0.weight 128x100x3x3
G_middle_0.gen_se_weights1.0.bias 128
G_middle_0.gen_se_weights1.2.weight 1024x128x3x3
G_middle_0.gen_se_weights1.2.bias 1024
G_middle_0.gen_se_weights2.0.weight 128x100x3x3
G_middle_0.gen_se_weights2.0.bias 128
G_middle_0.gen_se_weights2.2.weight 1024x128x3x3
G_middle_0.gen_se_weights2.2.bias 1024
G_middle_0.conv_0.norm_layer.weight 1024
G_middle_0.conv_0.norm_layer.bias 1024
G_middle_0.conv_0.norm_layer.running_mean 1024
G_middle_0.conv_0.norm_layer.running_var 1024
G_middle_0.conv_0.norm_layer.num_batches_tracked -
G_middle_0.norm_0.weight 1024
G_middle_0.norm_0.bias 1024
G_middle_0.norm_0.running_mean 1024
G_middle_0.norm_0.running_var 1024
G_middle_0.norm_0.num_batches_tracked -
G_middle_0.conv_1.weight 1024x1024x1x1
G_middle_0.conv_1.bias 1024
G_middle_0.norm_1.weight 1024
G_middle_0.norm_1.bias 1024
G_middle_0.norm_1.running_mean 1024
G_middle_0.norm_1.running_var 1024
G_middle_0.norm_1.num_batches_tracked -
G_middle_0.conv_2.norm_layer.weight 1024
G_middle_0.conv_2.norm_layer.bias 1024
G_middle_0.conv_2.norm_layer.running_mean 1024
G_middle_0.conv_2.norm_layer.running_var 1024
G_middle_0.conv_2.norm_layer.num_batches_tracked -
G_middle_0.norm_2.weight 1024
G_middle_0.norm_2.bias 1024
G_middle_0.norm_2.running_mean 1024
G_middle_0.norm_2.running_var 1024
G_middle_0.norm_2.num_batches_tracked -
G_middle_0.conv_3.weight 1024x1024x1x1
G_middle_0.conv_3.bias 1024
G_middle_1.gen_weights1.0.weight 128x100x3x3
G_middle_1.gen_weights1.0.bias 128
G_middle_1.gen_weights1.2.weight 9216x128x3x3
G_middle_1.gen_weights1.2.bias 9216
G_middle_1.gen_weights2.0.weight 128x100x3x3
G_middle_1.gen_weights2.0.bias 128
G_middle_1.gen_weights2.2.weight 9216x128x3x3
G_middle_1.gen_weights2.2.bias 9216
G_middle_1.gen_se_weights1.0.weight 128x100x3x3
G_middle_1.gen_se_weights1.0.bias 128
G_middle_1.gen_se_weights1.2.weight 1024x128x3x3
G_middle_1.gen_se_weights1.2.bias 1024
G_middle_1.gen_se_weights2.0.weight 128x100x3x3
G_middle_1.gen_se_weights2.0.bias 128
G_middle_1.gen_se_weights2.2.weight 1024x128x3x3
G_middle_1.gen_se_weights2.2.bias 1024
G_middle_1.conv_0.norm_layer.weight 1024
G_middle_1.conv_0.norm_layer.bias 1024
G_middle_1.conv_0.norm_layer.running_mean 1024
G_middle_1.conv_0.norm_layer.running_var 1024
G_middle_1.conv_0.norm_layer.num_batches_tracked -
G_middle_1.norm_0.weight 1024
G_middle_1.norm_0.bias 1024
G_middle_1.norm_0.running_mean 1024
G_middle_1.norm_0.running_var 1024
G_middle_1.norm_0.num_batches_tracked -
G_middle_1.conv_1.weight 1024x1024x1x1
G_middle_1.conv_1.bias 1024
G_middle_1.norm_1.weight 1024
G_middle_1.norm_1.bias 1024
G_middle_1.norm_1.running_mean 1024
G_middle_1.norm_1.running_var 1024
G_middle_1.norm_1.num_batches_tracked -
G_middle_1.conv_2.norm_layer.weight 1024
G_middle_1.conv_2.norm_layer.bias 1024
G_middle_1.conv_2.norm_layer.running_mean 1024
G_middle_1.conv_2.norm_layer.running_var 1024
G_middle_1.conv_2.norm_layer.num_batches_tracked -
G_middle_1.norm_2.weight 1024
G_middle_1.norm_2.bias 1024
G_middle_1.norm_2.running_mean 1024
G_middle_1.norm_2.running_var 1024
G_middle_1.norm_2.num_batches_tracked -
G_middle_1.conv_3.weight 1024x1024x1x1
G_middle_1.conv_3.bias 1024
up_0.gen_weights1.0.weight 128x100x3x3
up_0.gen_weights1.0.bias 128
up_0.gen_weights1.2.weight 9216x128x3x3
up_0.gen_weights1.2.bias 9216
up_0.gen_weights2.0.weight 128x100x3x3
up_0.gen_weights2.0.bias 128
up_0.gen_weights2.2.weight 4608x128x3x3
up_0.gen_weights2.2.bias 4608
up_0.gen_se_weights1.0.weight 128x100x3x3
up_0.gen_se_weights1.0.bias 128
up_0.gen_se_weights1.2.weight 512x128x3x3
up_0.gen_se_weights1.2.bias 512
up_0.gen_se_weights2.0.weight 128x100x3x3
up_0.gen_se_weights2.0.bias 128
up_0.gen_se_weights2.2.weight 512x128x3x3
up_0.gen_se_weights2.2.bias 512
up_0.conv_0.norm_layer.weight 1024
up_0.conv_0.norm_layer.bias 1024
up_0.conv_0.norm_layer.running_mean 1024
up_0.conv_0.norm_layer.running_var 1024
up_0.conv_0.norm_layer.num_batches_tracked -
up_0.norm_0.weight 512
up_0.norm_0.bias 512
up_0.norm_0.running_mean 512
up_0.norm_0.running_var 512
up_0.norm_0.num_batches_tracked -
up_0.conv_1.weight 512x1024x1x1
up_0.conv_1.bias 512
up_0.norm_1.weight 1024
up_0.norm_1.bias 1024
up_0.norm_1.running_mean 1024
up_0.norm_1.running_var 1024
up_0.norm_1.num_batches_tracked -
up_0.conv_2.norm_layer.weight 512
up_0.conv_2.norm_layer.bias 512
up_0.conv_2.norm_layer.running_mean 512
up_0.conv_2.norm_layer.running_var 512
up_0.conv_2.norm_layer.num_batches_tracked -
up_0.norm_2.weight 512
up_0.norm_2.bias 512
up_0.norm_2.running_mean 512
up_0.norm_2.running_var 512
up_0.norm_2.num_batches_tracked -
up_0.conv_3.weight 512x512x1x1
up_0.conv_3.bias 512
up_0.conv_s.weight_orig 512x1024x1x1
up_0.conv_s.weight_u 512
up_0.conv_s.weight_v 1024
up_0.norm_s.param_free_norm.running_mean 1024
up_0.norm_s.param_free_norm.running_var 1024
up_0.norm_s.param_free_norm.num_batches_tracked -
up_0.norm_s.mlp_shared.0.weight 128x100x3x3
up_0.norm_s.mlp_shared.0.bias 128
up_0.norm_s.mlp_gamma.weight 1024x128x3x3
up_0.norm_s.mlp_gamma.bias 1024
up_0.norm_s.mlp_beta.weight 1024x128x3x3
up_0.norm_s.mlp_beta.bias 1024
up_1.gen_weights1.0.weight 128x100x3x3
up_1.gen_weights1.0.bias 128
up_1.gen_weights1.2.weight 4608x128x3x3
up_1.gen_weights1.2.bias 4608
up_1.gen_weights2.0.weight 128x100x3x3
up_1.gen_weights2.0.bias 128
up_1.gen_weights2.2.weight 2304x128x3x3
up_1.gen_weights2.2.bias 2304
up_1.gen_se_weights1.0.weight 128x100x3x3
up_1.gen_se_weights1.0.bias 128
up_1.gen_se_weights1.2.weight 256x128x3x3
up_1.gen_se_weights1.2.bias 256
up_1.gen_se_weights2.0.weight 128x100x3x3
up_1.gen_se_weights2.0.bias 128
up_1.gen_se_weights2.2.weight 256x128x3x3
up_1.gen_se_weights2.2.bias 256
up_1.conv_0.norm_layer.weight 512
up_1.conv_0.norm_layer.bias 512
up_1.conv_0.norm_layer.running_mean 512
up_1.conv_0.norm_layer.running_var 512
up_1.conv_0.norm_layer.num_batches_tracked -
up_1.norm_0.weight 256
up_1.norm_0.bias 256
up_1.norm_0.running_mean 256
up_1.norm_0.running_var 256
up_1.norm_0.num_batches_tracked -
up_1.conv_1.weight 256x512x1x1
up_1.conv_1.bias 256
up_1.norm_1.weight 512
up_1.norm_1.bias 512
up_1.norm_1.running_mean 512
up_1.norm_1.running_var 512
up_1.norm_1.num_batches_tracked -
up_1.conv_2.norm_layer.weight 256
up_1.conv_2.norm_layer.bias 256
up_1.conv_2.norm_layer.running_mean 256
up_1.conv_2.norm_layer.running_var 256
up_1.conv_2.norm_layer.num_batches_tracked -
up_1.norm_2.weight 256
up_1.norm_2.bias 256
up_1.norm_2.running_mean 256
up_1.norm_2.running_var 256
up_1.norm_2.num_batches_tracked -
up_1.conv_3.weight 256x256x1x1
up_1.conv_3.bias 256
up_1.conv_s.weight_orig 256x512x1x1
up_1.conv_s.weight_u 256
up_1.conv_s.weight_v 512
up_1.norm_s.param_free_norm.running_mean 512
up_1.norm_s.param_free_norm.running_var 512
up_1.norm_s.param_free_norm.num_batches_tracked -
up_1.norm_s.mlp_shared.0.weight 128x100x3x3
up_1.norm_s.mlp_shared.0.bias 128
up_1.norm_s.mlp_gamma.weight 512x128x3x3
up_1.norm_s.mlp_gamma.bias 512
up_1.norm_s.mlp_beta.weight 512x128x3x3
up_1.norm_s.mlp_beta.bias 512
up_2.gen_weights1.0.weight 128x100x3x3
up_2.gen_weights1.0.bias 128
up_2.gen_weights1.2.weight 2304x128x3x3
up_2.gen_weights1.2.bias 2304
up_2.gen_weights2.0.weight 128x100x3x3
up_2.gen_weights2.0.bias 128
up_2.gen_weights2.2.weight 1152x128x3x3
up_2.gen_weights2.2.bias 1152
up_2.gen_se_weights1.0.weight 128x100x3x3
up_2.gen_se_weights1.0.bias 128
up_2.gen_se_weights1.2.weight 128x128x3x3
up_2.gen_se_weights1.2.bias 128
up_2.gen_se_weights2.0.weight 128x100x3x3
up_2.gen_se_weights2.0.bias 128
up_2.gen_se_weights2.2.weight 128x128x3x3
up_2.gen_se_weights2.2.bias 128
up_2.conv_0.norm_layer.weight 256
up_2.conv_0.norm_layer.bias 256
up_2.conv_0.norm_layer.running_mean 256
up_2.conv_0.norm_layer.running_var 256
up_2.conv_0.norm_layer.num_batches_tracked -
up_2.norm_0.weight 128
up_2.norm_0.bias 128
up_2.norm_0.running_mean 128
up_2.norm_0.running_var 128
up_2.norm_0.num_batches_tracked -
up_2.conv_1.weight 128x256x1x1
up_2.conv_1.bias 128
up_2.norm_1.weight 256
up_2.norm_1.bias 256
up_2.norm_1.running_mean 256
up_2.norm_1.running_var 256
up_2.norm_1.num_batches_tracked -
up_2.conv_2.norm_layer.weight 128
up_2.conv_2.norm_layer.bias 128
up_2.conv_2.norm_layer.running_mean 128
up_2.conv_2.norm_layer.running_var 128
up_2.conv_2.norm_layer.num_batches_tracked -
up_2.norm_2.weight 128
up_2.norm_2.bias 128
up_2.norm_2.running_mean 128
up_2.norm_2.running_var 128
up_2.norm_2.num_batches_tracked -
up_2.conv_3.weight 128x128x1x1
up_2.conv_3.bias 128
up_2.conv_s.weight_orig 128x256x1x1
up_2.conv_s.weight_u 128
up_2.conv_s.weight_v 256
up_2.norm_s.param_free_norm.running_mean 256
up_2.norm_s.param_free_norm.running_var 256
up_2.norm_s.param_free_norm.num_batches_tracked -
up_2.norm_s.mlp_shared.0.weight 128x100x3x3
up_2.norm_s.mlp_shared.0.bias 128
up_2.norm_s.mlp_gamma.weight 256x128x3x3
up_2.norm_s.mlp_gamma.bias 256
up_2.norm_s.mlp_beta.weight 256x128x3x3
up_2.norm_s.mlp_beta.bias 256
up_3.gen_weights1.0.weight 128x100x3x3
up_3.gen_weights1.0.bias 128
up_3.gen_weights1.2.weight 1152x128x3x3
up_3.gen_weights1.2.bias 1152
up_3.gen_weights2.0.weight 128x100x3x3
up_3.gen_weights2.0.bias 128
up_3.gen_weights2.2.weight 576x128x3x3
up_3.gen_weights2.2.bias 576
up_3.gen_se_weights1.0.weight 128x100x3x3
up_3.gen_se_weights1.0.bias 128
up_3.gen_se_weights1.2.weight 64x128x3x3
up_3.gen_se_weights1.2.bias 64
up_3.gen_se_weights2.0.weight 128x100x3x3
up_3.gen_se_weights2.0.bias 128
up_3.gen_se_weights2.2.weight 64x128x3x3
up_3.gen_se_weights2.2.bias 64
up_3.conv_0.norm_layer.weight 128
up_3.conv_0.norm_layer.bias 128
up_3.conv_0.norm_layer.running_mean 128
up_3.conv_0.norm_layer.running_var 128
up_3.conv_0.norm_layer.num_batches_tracked -
up_3.norm_0.weight 64
up_3.norm_0.bias 64
up_3.norm_0.running_mean 64
up_3.norm_0.running_var 64
up_3.norm_0.num_batches_tracked -
up_3.conv_1.weight 64x128x1x1
up_3.conv_1.bias 64
up_3.norm_1.weight 128
up_3.norm_1.bias 128
up_3.norm_1.running_mean 128
up_3.norm_1.running_var 128
up_3.norm_1.num_batches_tracked -
up_3.conv_2.norm_layer.weight 64
up_3.conv_2.norm_layer.bias 64
up_3.conv_2.norm_layer.running_mean 64
up_3.conv_2.norm_layer.running_var 64
up_3.conv_2.norm_layer.num_batches_tracked -
up_3.norm_2.weight 64
up_3.norm_2.bias 64
up_3.norm_2.running_mean 64
up_3.norm_2.running_var 64
up_3.norm_2.num_batches_tracked -
up_3.conv_3.weight 64x64x1x1
up_3.conv_3.bias 64
up_3.conv_s.weight_orig 64x128x1x1
up_3.conv_s.weight_u 64
up_3.conv_s.weight_v 128
up_3.norm_s.param_free_norm.running_mean 128
up_3.norm_s.param_free_norm.running_var 128
up_3.norm_s.param_free_norm.num_batches_tracked -
up_3.norm_s.mlp_shared.0.weight 128x100x3x3
up_3.norm_s.mlp_shared.0.bias 128
up_3.norm_s.mlp_gamma.weight 128x128x3x3
up_3.norm_s.mlp_gamma.bias 128
up_3.norm_s.mlp_beta.weight 128x128x3x3
up_3.norm_s.mlp_beta.bias 128
conv_img.weight 3x64x3x3
conv_img.bias 3
""",
    "D": """
enc1.0.0.weight_orig 64x3x3x3
enc1.0.0.weight_u 64
enc1.0.0.weight_v 27
enc2.0.0.weight_orig 128x64x3x3
enc2.0.0.weight_u 128
enc2.0.0.weight_v 576
enc3.0.0.weight_orig 256x128x3x3
enc3.0.0.weight_u 256
enc3.0.0.weight_v 1152
enc4.0.0.weight_orig 512x256x3x3
enc4.0.0.weight_u 512
enc4.0.0.weight_v 2304
enc5.0.0.weight_orig 512x512x3x3
enc5.0.0.weight_u 512
enc5.0.0.weight_v 4608
lat2.0.0.weight_orig 256x128x1x1
lat2.0.0.weight_u 256
lat2.0.0.weight_v 128
lat3.0.0.weight_orig 256x256x1x1
lat3.0.0.weight_u 256
lat3.0.0.weight_v 256
lat4.0.0.weight_orig 256x512x1x1
lat4.0.0.weight_u 256
lat4.0.0.weight_v 512
lat5.0.0.weight_orig 256x512x1x1
lat5.0.0.weight_u 256
lat5.0.0.weight_v 512
final2.0.0.weight_orig 128x256x3x3
final2.0.0.weight_u 128
final2.0.0.weight_v 2304
final3.0.0.weight_orig 128x256x3x3
final3.0.0.weight_u 128
final3.0.0.weight_v 2304
final4.0.0.weight_orig 128x256x3x3
final4.0.0.weight_u 128
final4.0.0.weight_v 2304
tf.weight 1x128x1x1
tf.bias 1
seg.weight 128x128x1x1
seg.bias 128
embedding.weight 128x36x1x1
embedding.bias 128
""",
    "E": """
layer1.0.weight_orig 64x3x3x3
layer1.0.weight_u 64
layer1.0.weight_v 27
layer2.0.weight_orig 128x64x3x3
layer2.0.weight_u 128
layer2.0.weight_v 576
layer3.0.weight_orig 256x128x3x3
layer3.0.weight_u 256
layer3.0.weight_v 1152
layer4.0.weight_orig 512x256x3x3
layer4.0.weight_u 512
layer4.0.weight_v 2304
layer5.0.weight_orig 512x512x3x3
layer5.0.weight_u 512
layer5.0.weight_v 4608
layer6.0.weight_orig 512x512x3x3
layer6.0.weight_u 512
layer6.0.weight_v 4608
fc_mu.weight 256x8192
fc_mu.bias 256
fc_var.weight 256x8192
fc_var.bias 256
""",
}

# The released ADE20K model differs from the Cityscapes one by the 'normal' schedule (no 7th pyramid
# level) and S = 151; the deterministic variant (no VAE) has a 3x3 conv as fc.
OFFICIAL_G_ADE20K_NOVAE_REMOVED = """
labeldec6.0.0.weight_orig
labeldec6.0.0.weight_u
labeldec6.0.0.weight_v
labeldec6.0.1.bias
labeldec6.0.1.num_batches_tracked
labeldec6.0.1.running_mean
labeldec6.0.1.running_var
labeldec6.0.1.weight
labelenc7.0.0.weight_orig
labelenc7.0.0.weight_u
labelenc7.0.0.weight_v
labelenc7.0.1.bias
labelenc7.0.1.num_batches_tracked
labelenc7.0.1.running_mean
labelenc7.0.1.running_var
labelenc7.0.1.weight
labellat6.0.0.weight_orig
labellat6.0.0.weight_u
labellat6.0.0.weight_v
labellat6.0.1.bias
labellat6.0.1.num_batches_tracked
labellat6.0.1.running_mean
labellat6.0.1.running_var
labellat6.0.1.weight
"""
OFFICIAL_G_ADE20K_NOVAE_RESHAPED = """
fc.weight 1024x151x3x3
fc.bias 1024
labelenc1.0.0.weight_orig 64x151x3x3
labelenc1.0.0.weight_v 1359
head_0.gen_weights1.0.weight 128x215x3x3
head_0.gen_weights2.0.weight 128x215x3x3
head_0.gen_se_weights1.0.weight 128x215x3x3
head_0.gen_se_weights2.0.weight 128x215x3x3
G_middle_0.gen_weights1.0.weight 128x215x3x3
G_middle_0.gen_weights2.0.weight 128x215x3x3
G_middle_0.gen_se_weights1.0.weight 128x215x3x3
G_middle_0.gen_se_weights2.0.weight 128x215x3x3
G_middle_1.gen_weights1.0.weight 128x215x3x3
G_middle_1.gen_weights2.0.weight 128x215x3x3
G_middle_1.gen_se_weights1.0.weight 128x215x3x3
G_middle_1.gen_se_weights2.0.weight 128x215x3x3
up_0.gen_weights1.0.weight 128x215x3x3
up_0.gen_weights2.0.weight 128x215x3x3
up_0.gen_se_weights1.0.weight 128x215x3x3
up_0.gen_se_weights2.0.weight 128x215x3x3
up_0.norm_s.mlp_shared.0.weight 128x215x3x3
up_1.gen_weights1.0.weight 128x215x3x3
up_1.gen_weights2.0.weight 128x215x3x3
up_1.gen_se_weights1.0.weight 128x215x3x3
up_1.gen_se_weights2.0.weight 128x215x3x3
up_1.norm_s.mlp_shared.0.weight 128x215x3x3
up_2.gen_weights1.0.weight 128x215x3x3
up_2.gen_weights2.0.weight 128x215x3x3
up_2.gen_se_weights1.0.weight 128x215x3x3
up_2.gen_se_weights2.0.weight 128x215x3x3
up_2.norm_s.mlp_shared.0.weight 128x215x3x3
up_3.gen_weights1.0.weight 128x215x3x3
up_3.gen_weights2.0.weight 128x215x3x3
up_3.gen_se_weights1.0.weight 128x215x3x3
up_3.gen_se_weights2.0.weight 128x215x3x3
up_3.norm_s.mlp_shared.0.weight 128x215x3x3
"""
