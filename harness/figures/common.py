"""What every figure needs: the Agg backend, where figures go, display names, a run's samples.

A method's samples are those its run already generated for one protocol and inference mode
(``<run>/samples/<protocol id>/<inference>/manifest.json``); figures never generate. When a
dataset has several runs of one method, the most recently modified run with samples is used,
and the figure's sidecar JSON names it.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from harness.rundir import RunDir, RunError, find_runs

FIGURES_DIR = Path("results") / "figures"

# Names papers use; a method not listed here is shown by its code name.
DISPLAY_NAMES = {"ccfpse": "CC-FPSE", "spade": "SPADE", "pix2pixhd": "pix2pixHD",
                 "groupdnet": "GroupDNet"}


def display_name(method: str) -> str:
    return DISPLAY_NAMES.get(method, method)


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed; same pixels everywhere)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "x"


def save(fig: Any, out_dir: Path, stem: str, sidecar: dict, *, dpi: int = 100) -> Path:
    """``<out_dir>/<stem>.png`` and ``.pdf`` plus ``<stem>.json`` (what the figure shows and
    where it came from); returns the PNG path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / f"{stem}.png"
    w, h = fig.get_size_inches() * dpi
    sidecar = {"size": [int(round(w)), int(round(h))], **sidecar}
    # Fixed metadata so the same inputs give the same files.
    fig.savefig(png, dpi=dpi, metadata={"Software": None})
    fig.savefig(out_dir / f"{stem}.pdf", metadata={"Creator": None, "Producer": None,
                                                   "CreationDate": None})
    (out_dir / f"{stem}.json").write_text(json.dumps(
        {**sidecar, "png": png.name, "pdf": f"{stem}.pdf"}, indent=2, sort_keys=True) + "\n")
    pyplot().close(fig)
    return png


def read_image(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def to_hwc(chw: torch.Tensor) -> np.ndarray:
    return chw.permute(1, 2, 0).cpu().numpy()


@dataclass
class Samples:
    """One run's generated set: where it is and what it holds."""
    method: str
    run: RunDir
    protocol_id: str
    inference: str
    out_dir: Path
    manifest: dict

    @property
    def seed(self) -> str:
        return sorted(self.manifest["files"], key=str)[0]

    def files(self) -> dict[str, Path]:
        return {k: self.out_dir / rel for k, rel in self.manifest["files"][self.seed].items()}

    def source(self) -> dict:
        return {"method": self.method, "display_name": display_name(self.method),
                "run": str(self.run.path), "run_id": self.run.run_id,
                "protocol_id": self.protocol_id, "inference": self.inference,
                "seed": self.seed, "manifest": str(self.out_dir / "manifest.json")}


def method_runs(runs_dir: str | Path, dataset: str, method: str) -> list[RunDir]:
    """Runs of ``method`` on ``dataset``, most recently modified first."""
    runs = [r for r in find_runs(runs_dir)
            if r.path.parent.name == method and r.path.parent.parent.name == dataset]
    return sorted(runs, key=lambda r: (r.config_file.stat().st_mtime, r.run_id), reverse=True)


def find_samples(runs_dir: str | Path, dataset: str, method: str, *,
                 protocol_id: str | None = None, inference: str | None = None,
                 run: str | Path | None = None) -> Samples:
    """The generated samples of ``method`` on ``dataset`` (see the module doc); RunError naming
    what is missing otherwise."""
    from harness.generate import load_manifest

    runs = [RunDir.open(run)] if run is not None else method_runs(runs_dir, dataset, method)
    if not runs:
        raise RunError(f"no run of {method!r} on {dataset!r} under {runs_dir}/{dataset}/{method}/: "
                       f"train and generate one first (`python -m harness run --method {method} "
                       f"--dataset {dataset}`)")
    looked = []
    for rd in runs:
        for manifest_file in sorted((rd.path / "samples").glob("*/*/manifest.json")):
            pid, inf = manifest_file.parent.parent.name, manifest_file.parent.name
            looked.append(f"{pid}/{inf}")
            if protocol_id is not None and pid != protocol_id and \
                    not pid.startswith(f"{protocol_id}-"):
                continue
            if inference is not None and inf != inference:
                continue
            manifest = load_manifest(manifest_file.parent)
            if manifest and manifest.get("files"):
                return Samples(method, rd, pid, inf, manifest_file.parent, manifest)
    want = "/".join(x for x in (protocol_id, inference) if x) or "any protocol"
    raise RunError(f"{method!r} on {dataset!r}: no generated samples for {want} in "
                   f"{', '.join(str(r.path) for r in runs)} "
                   f"(found: {', '.join(looked) or 'none'}); "
                   f"generate them first (`python -m harness generate --run {runs[0].path}`)")


def eval_dataset(samples: Samples):
    """The evaluation split the samples were generated from (label maps and real images),
    read with the run's own dataset options."""
    from harness.stages.common import build_dataset

    cfg = samples.run.load_config()
    split = samples.manifest.get("split") or _protocol_split(samples)
    return build_dataset(cfg.dataset, split, train=False, seed=cfg.train.seed)


def _protocol_split(samples: Samples) -> str:
    cfg = samples.run.load_config()
    name = samples.manifest.get("protocol") or cfg.eval.protocol
    from harness.stages.common import resolve_protocol

    return resolve_protocol(name, cfg.dataset.name).split


def pick_keys(available: Sequence[str], keys: Sequence[str] | None, n: int, what: str
              ) -> list[str]:
    """``keys`` (all must be in ``available``) or the first ``n`` of ``available``, sorted."""
    if keys:
        missing = [k for k in keys if k not in set(available)]
        if missing:
            raise RunError(f"--keys: {', '.join(missing)} not among the samples {what} "
                           f"(e.g. {', '.join(sorted(available)[:3])})")
        return list(keys)
    if not available:
        raise RunError(f"no key has samples {what}")
    return sorted(available)[:max(1, n)]
