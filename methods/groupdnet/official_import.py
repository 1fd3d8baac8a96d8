"""Checkpoints of the official GroupDNet code (Seanseattle/SMIS: ``latest_net_G.pth``, ``_D``,
``_E``) <-> this implementation.

The modules here carry the official attribute names (``fc``, ``head_0.norm_0.mlp_shared.0``,
``up_3.conv_s.weight_orig``, encoder ``layer1.0.weight_orig``, ``fc_mu``, discriminator
``discriminator_0.model1.0.weight_orig`` ...), so the key mapping is the identity; the ADE20K
generator's never-called ``up_4`` exists here too, so no official key is dropped. Loading is
strict: every file is read and checked before any network changes; a missing or unexpected key
or a shape that differs is one :class:`OfficialCheckpointError` naming the file, the keys and the
options that must match. Tolerated: a ``module.`` prefix on every key (DataParallel) and absent
BatchNorm ``num_batches_tracked`` counters (set to 0; they change no output).

The released test path does not build the encoder, so a G-only import can generate from random
codes but not encode images (``encode_class_codes``) until an ``E`` file (saved as 'E' during
training) is imported too.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import torch

from methods.base import ImportReport
from methods.spade.official import OfficialCheckpointError, check_keys, read_state_dict

if TYPE_CHECKING:
    from methods.groupdnet.method import GroupDNet

NETWORKS = ("G", "D", "E")
FILES = {"G": "latest_net_G.pth", "D": "latest_net_D.pth", "E": "latest_net_E.pth"}


def official_state(method: "GroupDNet", name: str) -> dict[str, torch.Tensor]:
    """A network's state under the official key names (what the official code saves)."""
    return {k: v.detach().cpu().clone() for k, v in method.nets[name].state_dict().items()}


def export_official(method: "GroupDNet", directory: str | Path) -> dict[str, Path]:
    """Write latest_net_{G,D,E}.pth in the official layout (loadable by the SMIS code)."""
    from harness.core.io import atomic_torch_save
    directory = Path(directory)
    return {name: atomic_torch_save(directory / FILES[name], official_state(method, name))
            for name in NETWORKS}


def import_official(method: "GroupDNet", paths: Mapping[str, str | Path]) -> ImportReport:
    unknown = sorted(set(paths) - set(NETWORKS))
    if unknown:
        raise OfficialCheckpointError(f"unknown network(s) {unknown} for GroupDNet; expected some "
                                      f"of {list(NETWORKS)} (e.g. {{'G': 'latest_net_G.pth'}})")
    if "G" not in paths:
        raise OfficialCheckpointError("the official generator checkpoint ('G': latest_net_G.pth) "
                                      "is required")
    cfg = method.cfg
    hint = (f"the options must match the checkpoint: {method.classes} label channels"
            f"{' + instance edges' if method.use_edges else ''}, layout {cfg.layout!r}, ngf "
            f"{cfg.ngf}, groups {list(method.nets['G'].plan_groups)}, nef_per_class "
            f"{cfg.nef_per_class}, image size {method.image_size[0]}x{method.image_size[1]}, "
            f"num_upsampling_layers {cfg.num_upsampling_layers!r}")
    prepared: dict[str, tuple[dict[str, torch.Tensor], int, list[str]]] = {}
    for name in NETWORKS:
        if name not in paths:
            continue
        state = read_state_dict(paths[name], f"GroupDNet {name}")
        count = len(state)
        tolerated = check_keys(method.nets[name], state, paths[name], f"GroupDNet {name}", hint)
        for key in tolerated:
            state[key] = torch.zeros((), dtype=torch.long)
        prepared[name] = (state, count, tolerated)
    report = ImportReport(loaded={})
    for name, (state, count, tolerated) in prepared.items():
        method.nets[name].load_state_dict(state, strict=True)
        report.loaded[name] = count
        if tolerated:
            report.notes.append(f"{name}: {len(tolerated)} BatchNorm num_batches_tracked counters "
                                f"absent from {paths[name]} were set to 0")
    if "E" not in paths:
        report.notes.append("no encoder checkpoint: generation from random class codes only "
                            "(no encode_class_codes / style_image)")
    if "D" not in paths:
        report.notes.append("no discriminator checkpoint: fine for evaluation, not for resuming "
                            "training")
    return report
