"""Importing mmsegmentation 1.2.2 with mmcv-lite (no compiled ops), and reading its checkpoints.

mmseg imports ``mmcv.ops`` at import time, which loads the compiled extension ``mmcv._ext``.
mmcv-lite has no such extension (and compiled mmcv has no wheel for recent torch), although
ResNet + ASPP / UPerHead models never call a compiled op. So, when ``mmcv._ext`` is absent, a
stand-in module is installed whose every function raises :class:`MMCVOpUnavailable` naming the
op: models that need a compiled op fail loudly at the first call, the others run.
"""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types
import warnings
from pathlib import Path


INSTALL_HINT = "pip install -e .[mmseg]"


class MMSegUnavailable(ImportError):
    """The optional mmsegmentation stack is not installed (or not importable)."""


class MMCVOpUnavailable(RuntimeError):
    """A model called a compiled mmcv op, which mmcv-lite does not have."""


class _MissingCompiledOps(types.ModuleType):
    """Stands in for ``mmcv._ext``: attributes exist (mmcv checks them), calls raise."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)

        def unavailable(*args, **kwargs):
            raise MMCVOpUnavailable(
                f"this model calls the compiled mmcv op '{name}', but the installed mmcv has no "
                "compiled ops (mmcv-lite). Use a model made of plain PyTorch layers (e.g. ResNet "
                "+ ASPP / UPerHead), or install a full mmcv build matching your torch")
        unavailable.__name__ = name
        return unavailable


def mmseg_installed() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("mmseg", "mmcv", "mmengine"))


def _install_ops_stand_in() -> None:
    if "mmcv._ext" in sys.modules:
        return
    try:
        importlib.import_module("mmcv._ext")
        return                                     # a full mmcv: use the real ops
    except ImportError:
        pass
    stand_in = _MissingCompiledOps("mmcv._ext")
    stand_in.__spec__ = importlib.machinery.ModuleSpec("mmcv._ext", None)
    sys.modules["mmcv._ext"] = stand_in


def import_mmseg() -> types.ModuleType:
    """Import mmseg (models and apis registered) or raise one clear :class:`MMSegUnavailable`."""
    if not mmseg_installed():
        raise MMSegUnavailable(
            "the mmseg segmenters need the optional mmsegmentation stack (mmsegmentation 1.2.2, "
            f"mmcv-lite 2.1.0, mmengine, ftfy, regex); install it with `{INSTALL_HINT}`")
    _install_ops_stand_in()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mmseg = importlib.import_module("mmseg")
            importlib.import_module("mmseg.models")
            importlib.import_module("mmseg.apis")
    except Exception as exc:  # version asserts, missing ftfy/regex, ...
        raise MMSegUnavailable(f"mmsegmentation is installed but could not be imported "
                               f"({type(exc).__name__}: {exc}); reinstall it with "
                               f"`{INSTALL_HINT}`") from exc
    return mmseg


def configs_root() -> Path:
    """The config tree shipped inside the mmsegmentation wheel."""
    mmseg = import_mmseg()
    return Path(mmseg.__file__).resolve().parent / ".mim" / "configs"


def find_config(config: str | Path) -> Path:
    """A config file path, or a config name from the wheel ('upernet_r101_4xb4-160k_ade20k-512x512')."""
    path = Path(config).expanduser()
    if path.is_file():
        return path
    root = configs_root()
    name = str(config).removesuffix(".py")
    candidates = [root / f"{name}.py"] if "/" in name else sorted(root.rglob(f"{name}.py"))
    candidates = [c for c in candidates if c.is_file()]
    if len(candidates) != 1:
        raise FileNotFoundError(
            f"mmseg config {config!r} is neither a file nor {'an ambiguous' if candidates else 'a'} "
            f"config name under {root} (e.g. 'upernet/upernet_r101_4xb4-160k_ade20k-512x512')")
    return candidates[0]


def read_runner_checkpoint(path: Path) -> dict:
    """The model state_dict of an mmseg / mmengine checkpoint (or of a bare state_dict).

    torch >= 2.6 loads with ``weights_only=True`` by default, which rejects some runner
    checkpoints (their 'meta' holds arbitrary objects); see :func:`torch_load_trusted`.
    """
    from evaluators.segmenters._common import torch_load_trusted
    obj = torch_load_trusted(path, "mmseg checkpoint")
    if isinstance(obj, dict) and "state_dict" in obj:
        state, meta = obj["state_dict"], obj.get("meta") or {}
    else:
        state, meta = obj, {}
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise ValueError(f"mmseg checkpoint {path} holds no state_dict (a mapping of parameter "
                         f"names to tensors); got {type(state).__name__}")
    if state and all(k.startswith("module.") for k in state):   # saved from a DDP wrapper
        state = {k[len("module."):]: v for k, v in state.items()}
    return {"state_dict": state, "meta": meta}
