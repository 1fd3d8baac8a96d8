"""Paired comparison of two evaluated runs: ``python -m harness compare RUN_A RUN_B``.

Both runs must have been evaluated under the same protocol (hash) on the same images (keys, and
for FID / KID the same real features). Every replicate draws ONE set of image indices
(evaluators.bootstrap.resample_indices) and computes the metric of A and of B on it; the
interval of the difference A - B is the percentile interval of those paired differences (FID /
KID: shifted by the bootstrap bias, as their own intervals are). Because both runs see the same
images in every replicate, the image-to-image variation they share cancels, so a paired interval
is usually much narrower than the two runs' own intervals suggest (docs/statistics.md).

Verdict per metric at the chosen level: the interval of A - B lies entirely on A's better side
-> "A better", on B's side -> "B better", else "not distinguishable".
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evaluators import bootstrap as boot
from harness.core.errors import UserError
from harness.core.per_image import load_per_image
from harness.core.records import METRICS, METRICS_FILE, read_metrics

# metric -> what it needs from the per-image file
PAIRED = {"fid": "features", "kid": "features", "miou": "confusion",
          "accuracy": "confusion", "lpips_diversity": "maps"}


class CompareError(UserError):
    """Two runs that cannot be compared (other protocol, other images, missing data)."""


@dataclass
class Side:
    label: str
    metrics_file: Path
    record: dict
    arrays: dict[str, np.ndarray]


def metrics_file_of(run: str | Path) -> Path:
    path = Path(run)
    path = path / METRICS_FILE if path.is_dir() else path
    if not path.is_file():
        raise CompareError(f"{run}: no {METRICS_FILE} (evaluate the run first: "
                           f"`python -m harness evaluate --run {run}`)")
    return path


def newest_run(runs_root: Path, dataset: str, method: str) -> Path:
    """The run of ``method`` on ``dataset`` whose metrics.json was written last."""
    folder = Path(runs_root) / dataset / method
    found = sorted(folder.glob(f"*/{METRICS_FILE}"), key=lambda p: (p.stat().st_mtime, str(p)))
    if not found:
        raise CompareError(f"no evaluated run of method {method!r} on dataset {dataset!r} under "
                           f"{folder}")
    return found[-1].parent


def pick_key(a: dict, b: dict, protocol: str | None, inference: str | None,
             names: tuple[str, str]) -> str:
    """The evaluation both runs hold (optionally narrowed to a protocol name/id, inference)."""
    def wanted(key: str, rec: dict) -> bool:
        pid = rec.get("protocol", {})
        ok_p = protocol is None or protocol in (pid.get("name"), pid.get("id"))
        return ok_p and (inference is None or (rec.get("inference") or "none") == inference)
    ka = {k for k, r in a.items() if wanted(k, r)}
    kb = {k for k, r in b.items() if wanted(k, r)}
    common = sorted(ka & kb)
    if len(common) == 1:
        return common[0]
    if not common:
        ha = {r["protocol"]["hash"] for k, r in a.items() if k in ka}
        hb = {r["protocol"]["hash"] for k, r in b.items() if k in kb}
        why = ("they were evaluated under different protocols (hashes "
               f"{sorted(h[:12] for h in ha)} vs {sorted(h[:12] for h in hb)})"
               if ha and hb and not ha & hb else "they share no evaluation")
        raise CompareError(f"cannot compare {names[0]} and {names[1]}: {why}; "
                           f"A has {sorted(ka) or 'none'}, B has {sorted(kb) or 'none'}")
    raise CompareError(f"{names[0]} and {names[1]} share several evaluations {common}; choose "
                       "one with --protocol NAME and/or --inference MODE")


def load_sides(run_a: str | Path, run_b: str | Path, *, protocol: str | None = None,
               inference: str | None = None) -> tuple[Side, Side]:
    fa, fb = metrics_file_of(run_a), metrics_file_of(run_b)
    ea, eb = read_metrics(fa)["evaluations"], read_metrics(fb)["evaluations"]
    key = pick_key(ea, eb, protocol, inference, (str(run_a), str(run_b)))
    sides = []
    for run, f, ev in ((run_a, fa, ea), (run_b, fb, eb)):
        rec = ev[key]
        label = rec.get("variant") or rec.get("method") or str(run)
        sides.append(Side(f"{label} ({rec.get('run_id') or Path(run).name})", f, rec,
                          load_per_image(f, rec)))
    return sides[0], sides[1]


def check_comparable(a: Side, b: Side) -> None:
    if a.record["protocol"]["hash"] != b.record["protocol"]["hash"]:
        raise CompareError(f"{a.metrics_file} and {b.metrics_file} were evaluated under different "
                           f"protocols ({a.record['protocol']['id']} vs "
                           f"{b.record['protocol']['id']}); paired differences need one protocol")
    ka, kb = a.arrays.get("keys"), b.arrays.get("keys")
    if ka is None or kb is None or list(ka) != list(kb):
        raise CompareError(f"{a.metrics_file} and {b.metrics_file} scored different image sets "
                           f"({0 if ka is None else len(ka)} vs {0 if kb is None else len(kb)} "
                           "keys, or another order); paired differences need the same images")
    ca = (a.record.get("data") or {}).get("content")
    cb = (b.record.get("data") or {}).get("content")
    if ca and cb and ca != cb:
        raise CompareError(f"{a.metrics_file} and {b.metrics_file} scored different data "
                           f"(fingerprints {ca[:12]} vs {cb[:12]}); not comparable")
    ra, rb = a.arrays.get("real_features"), b.arrays.get("real_features")
    if ra is not None and rb is not None and not np.array_equal(ra, rb):
        raise CompareError(f"{a.metrics_file} and {b.metrics_file}: the real images' Inception "
                           "features differ (other weights or data); FID / KID not comparable")


def _replicates(name: str, side: Side, idx: np.ndarray, protocol_fields: dict) -> np.ndarray:
    arr = side.arrays
    if PAIRED[name] == "confusion":
        conf = boot.SparseConfusions.from_arrays(arr, "gen_confusion")
        seg = protocol_fields["segmentation"]
        return boot.confusion_replicates(conf, idx, seg["absent_classes"],
                                         seg["accuracy_ignored_pixels"])[name]
    if PAIRED[name] == "maps":
        return boot.mean_replicates(arr["lpips_per_map"], idx)
    gen = torch.from_numpy(np.asarray(arr["gen_features"], dtype=np.float32))
    real = torch.from_numpy(np.asarray(arr["real_features"], dtype=np.float32))
    if name == "fid":
        return boot.fid_replicates(gen, real, idx)
    return boot.kid_replicates(gen, real, idx)


def _has(name: str, side: Side) -> bool:
    need = {"confusion": "gen_confusion_shape", "maps": "lpips_per_map",
            "features": "gen_features"}[PAIRED[name]]
    return need in side.arrays


def verdict(direction: str, ci: list[float] | None, level: float, degenerate: bool) -> str:
    pct = f"{100 * level:g} %"
    if ci is None or degenerate:
        return "not distinguishable (no spread can be estimated)"
    lo, hi = ci
    if lo > 0 or hi < 0:
        a_higher = lo > 0
        return ("A better" if a_higher == (direction == "higher") else "B better") + \
            f" (interval of A - B excludes 0 at {pct})"
    return f"not distinguishable at {pct}"


def compare(a: Side, b: Side, *, resamples: int | None = None, confidence: float | None = None,
            seed: int | None = None) -> dict[str, Any]:
    """Every metric's difference A - B with a paired bootstrap interval and a verdict."""
    check_comparable(a, b)
    fields = a.record["protocol"]["fields"]
    fid = fields.get("fid", {})
    s = boot.BootstrapSettings(
        resamples if resamples is not None else int(fid.get("bootstrap_resamples", 200)),
        confidence if confidence is not None else float(fid.get("confidence", 0.95)),
        seed if seed is not None else int(fid.get("bootstrap_seed", 0)))
    if s.resamples < 1:
        raise CompareError(f"protocol {a.record['protocol']['id']} has bootstrap_resamples 0; "
                           "pass --resamples B (e.g. 200)")
    if not 0.0 < s.confidence < 1.0:
        raise CompareError(f"--confidence must lie in (0, 1), got {s.confidence}")
    out: dict[str, Any] = {}
    for name, meta in METRICS.items():
        ma, mb = a.record["metrics"].get(name, {}), b.record["metrics"].get(name, {})
        entry: dict[str, Any] = {"direction": meta["direction"]}
        if ma.get("status") != "ok" or mb.get("status") != "ok":
            entry.update(status="not compared", reason=(
                f"A: {ma.get('status', 'absent')}, B: {mb.get('status', 'absent')}"))
        elif name.startswith("real_"):
            entry.update(status="not compared", reason="the same real images for both runs")
        elif name not in PAIRED or not (_has(name, a) and _has(name, b)):
            entry.update(a=ma["value"], b=mb["value"], difference=ma["value"] - mb["value"],
                         status="no interval", reason="no per-image data for a paired interval")
        else:
            n = (len(a.arrays["lpips_per_map"]) if PAIRED[name] == "maps"
                 else len(a.arrays["keys"]))
            if name == "lpips_diversity" and list(a.arrays.get("lpips_keys", [])) != \
                    list(b.arrays.get("lpips_keys", [])):
                raise CompareError("LPIPS diversity was measured on different label maps")
            idx = boot.resample_indices(n, s.resamples, s.seed)
            diff = _replicates(name, a, idx, fields) - _replicates(name, b, idx, fields)
            point = ma["value"] - mb["value"]
            shift = PAIRED[name] == "features"
            ci = boot.percentile_interval(diff, point, s.confidence, shift_bias=shift)
            entry.update(a=ma["value"], b=mb["value"], difference=point,
                         ci=list(ci) if ci else None, n=n, status="ok",
                         verdict=verdict(meta["direction"], list(ci) if ci else None,
                                         s.confidence, n < 2))
        out[name] = entry
    return {"a": {"label": a.label, "metrics_file": str(a.metrics_file)},
            "b": {"label": b.label, "metrics_file": str(b.metrics_file)},
            "protocol": a.record["protocol"]["id"], "inference": a.record.get("inference"),
            "resamples": s.resamples, "confidence": s.confidence, "seed": s.seed,
            "paired_over": "the same resampled evaluation images for A and B",
            "metrics": out}


def table_lines(result: dict) -> list[str]:
    rows = [("metric", "A", "B", "A - B", f"{100 * result['confidence']:g} % interval",
             "verdict")]
    for name, e in result["metrics"].items():
        if "a" not in e:
            rows.append((name, "", "", "", "", f"{e['status']}: {e['reason']}"))
            continue
        ci = e.get("ci")
        rows.append((name, f"{e['a']:.4g}", f"{e['b']:.4g}", f"{e['difference']:+.4g}",
                     f"[{ci[0]:+.4g}, {ci[1]:+.4g}]" if ci else "",
                     e.get("verdict") or f"{e['status']}: {e['reason']}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"A: {result['a']['label']}", f"B: {result['b']['label']}",
             f"protocol {result['protocol']} · inference {result['inference']} · paired "
             f"bootstrap, {result['resamples']} resamples, seed {result['seed']}", ""]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return lines
