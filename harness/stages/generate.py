"""The generate stage: a run's evaluation set as PNGs plus manifest.json, skipped when complete for
the same checkpoint and input data (the images themselves: :mod:`harness.generate`)."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Mapping

from harness.core import dist as hdist
from harness.core.config import ExperimentConfig
from harness.interrupt import stop_signals_raise
from harness.rundir import RunDir, stage_outcome
from harness.stages.common import build_dataset, checkpoint_file, checkpoint_origin, load_method

LOG = logging.getLogger("harness")


def generate_stage(rd: RunDir, cfg: ExperimentConfig, protocol: Any, *, inference: str | None = None,
                   which: str = "latest", batch_size: int | None = None, device: Any = None,
                   progress: bool = True, force: bool = False,
                   allow_data_change: bool = False) -> dict:
    """Generate the protocol's evaluation set; skipped when complete for the same checkpoint
    and the same input data (the split's recorded fingerprint, harness.data_identity).

    ``force`` deletes and regenerates a complete set (saying what it replaced); images that
    another protocol of this run generated identically (same size, inputs, checkpoint,
    inference) are linked instead of generated (harness.sample_reuse)."""
    from harness.cost import PeakMemory, record_generation
    from harness.data_identity import check_split
    from harness.generate import generate_samples, load_manifest, manifest_complete
    from harness.sample_reuse import find_donors

    inference = inference or cfg.eval.inference
    out = rd.samples_dir(protocol.id, inference)
    checkpoint = checkpoint_file(rd, which)
    dataset = build_dataset(cfg.dataset, protocol.split, train=False, seed=cfg.train.seed)
    inputs = check_split(rd, dataset, allow_change=allow_data_change)
    origin = {**checkpoint_origin(rd, checkpoint), "inputs": inputs["fingerprint"]}
    manifest = load_manifest(out)
    stage = f"generate/{protocol.id}/{inference}"
    if hdist.broadcast_object(not force and manifest_complete(manifest, out, origin)):
        LOG.info("generate: %s is complete (skipped)", out)
        return manifest
    d = hdist.info()
    _check_resolution(dataset, protocol, cfg)
    extra = {"run_id": rd.run_id, "variant": cfg.name, "config_hash": cfg.hash(),
             "resolution": list(protocol.resolution_hw), "inputs": inputs}
    donors: list = []
    # The very file whose sha256 names the samples (not a fallback to an older one). Loaded, and
    # run.json read, before --force deletes anything: a bad input must not cost the old set.
    method = load_method(rd, cfg, which=str(checkpoint), device=device)
    if d.is_main:
        rd.status()
        if force and out.exists():
            _replace_samples(out, manifest)
        elif manifest is not None and any((manifest.get("origin") or {}).get(k) != v
                                          for k, v in origin.items()):
            LOG.warning("generate: the samples in %s come from another checkpoint or other "
                        "input data; regenerating them", out)
        donors = find_donors(rd.path / "samples", out,
                             {"split": protocol.split, "dataset": dataset.name, **extra},
                             {"method": cfg.method.name, "inference": inference, **origin})
    start = time.perf_counter()
    if d.is_main:
        rd.set_stage(stage, status="running")
    try:
        with stop_signals_raise(), PeakMemory(method.device) as peak:  # SIGTERM: 'interrupted'
            manifest = generate_samples(method, dataset, protocol, out, inference=inference,
                                        batch_size=batch_size or cfg.eval.batch_size, dist=d,
                                        origin=origin, progress=progress, extra=extra,
                                        donors=donors)
    except BaseException as exc:
        if d.is_main:
            rd.set_stage(stage, status=stage_outcome(exc),
                         error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    if d.is_main:
        if manifest.get("reused_from"):
            LOG.warning("generate: %d images of %s linked from identical samples of %s (same "
                        "size, inputs, checkpoint and inference), not generated again",
                        sum(manifest["reused_from"].values()), out,
                        ", ".join(sorted(manifest["reused_from"])))
        record_generation(rd.path, f"{protocol.id}/{inference}", nets=method.nets,
                          generated=manifest["generated_now"], seconds=peak.seconds, peak=peak)
        rd.set_stage(stage, status="done", seconds=round(time.perf_counter() - start, 3),
                     images=manifest["num_images"], seeds=manifest["seeds"],
                     generated=manifest["generated_now"],
                     reused=sum((manifest.get("reused_from") or {}).values()), error=None)
    return manifest


def _replace_samples(out: Path, manifest: Mapping[str, Any] | None) -> None:
    """``generate --force``: delete the existing set, saying what it was."""
    import shutil

    n = sum(1 for p in out.rglob("*.png"))
    origin = (manifest or {}).get("origin") or {}
    LOG.warning("generate --force: replacing %d images in %s (generated from checkpoint %s, "
                "sha256 %s)", n, out, origin.get("checkpoint", "?"),
                str(origin.get("checkpoint_sha256", "?"))[:12])
    shutil.rmtree(out)


def _check_resolution(dataset: Any, protocol: Any, cfg: ExperimentConfig | None) -> None:
    from harness.preflight import check_resolution

    check_resolution(dataset, protocol, cfg)
