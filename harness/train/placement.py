"""Where and how the networks run: device, determinism, SyncBatchNorm, channels_last, compile."""
from __future__ import annotations

import logging
import os

import torch
from torch import nn

from harness.core.dist import DistInfo

LOG = logging.getLogger("harness.train")


def resolve_device(name: str, d: DistInfo) -> torch.device:
    """'auto' -> this rank's GPU if there is one, else the CPU; 'cuda' -> cuda:<local rank>."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", d.local_rank)
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"train.device={name!r} but no CUDA GPU is available; use 'cpu' or 'auto'")
        if d.distributed and device.index is not None and device.index != d.local_rank:
            LOG.warning("train.device=%s under torchrun: every rank would use that one GPU; "
                        "using cuda:%d (the local rank) instead", name, d.local_rank)
            device = torch.device("cuda", d.local_rank)
    return device


def configure_determinism(deterministic: bool, device: torch.device) -> None:
    if deterministic:
        # cuBLAS needs this before its first use to be deterministic.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # warn_only: some CUDA backward kernels (e.g. interpolation) have no deterministic
        # version; they warn instead of stopping the run.
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed training crop sizes: autotune once
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def has_batchnorm(net: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


def convert_sync_batchnorm(nets: nn.ModuleDict, device: torch.device, d: DistInfo,
                           enabled: bool) -> list[str]:
    """SyncBatchNorm for every BatchNorm of the trained networks (world_size > 1, GPUs only).

    ``convert_sync_batchnorm`` reuses the Parameter objects, so optimisers built by the method
    keep pointing at the right tensors. Returns the names of the converted networks.
    """
    with_bn = [name for name, net in nets.items() if has_batchnorm(net)]
    if not (enabled and d.distributed and with_bn):
        return []
    if device.type != "cuda":
        LOG.warning("SyncBatchNorm skipped: it needs GPUs (NCCL); on CPU/gloo the BatchNorm layers "
                    "of %s keep per-process statistics (batch statistics of %s differ from one "
                    "process with the combined batch)", ", ".join(with_bn), ", ".join(with_bn))
        return []
    for name in with_bn:
        nets[name] = nn.SyncBatchNorm.convert_sync_batchnorm(nets[name])
    LOG.info("SyncBatchNorm: converted the BatchNorm layers of %s across %d processes",
             ", ".join(with_bn), d.world_size)
    return with_bn


def to_channels_last(modules: list[nn.Module]) -> None:
    for m in modules:
        m.to(memory_format=torch.channels_last)


def compile_in_place(net: nn.Module) -> None:
    """torch.compile the module in place (nn.Module.compile): state_dict keys stay unchanged."""
    net.compile()
