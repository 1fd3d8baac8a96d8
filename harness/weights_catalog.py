"""Every pretrained weight file the harness may load, where it looks for each, and which are there.

What ``python -m harness weights`` shows. The catalog is discovered, not a hand list:

- every :class:`~harness.core.weights.WeightSpec` defined at module level (also inside module-level
  tuples, lists and dicts, e.g. the mmsegmentation presets) in the ``harness.core``,
  ``evaluators`` and ``methods`` packages and in any already imported module (plugins, feature
  extractors added later);
- the files of every registered segmenter (``SegmenterEntry.weights``, plugins included);
- the files each registered method declares for training with its default configuration
  (``Method.required_weights``, e.g. the VGG19 perceptual loss).

The status of a file is found without downloading: the first file in the search order
(:func:`harness.core.weights.search_order`) is hashed and compared with the published sha256:
``verified`` (it matches), ``unverified`` (it does not: another file under that name),
``present`` (no published hash to check), ``missing``.
"""
from __future__ import annotations

import importlib
import os
import pkgutil
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from harness.core.config import ConfigError
from harness.core.weights import (WeightNeed, WeightSpec, WeightsHashMismatch, configure,
                                  file_sha256, hub_checkpoints_dir, search_order, weights_dirs)

SCANNED_PACKAGES = ("harness.core", "evaluators", "methods")


@dataclass
class CatalogEntry:
    spec: WeightSpec
    used_by: list[str] = field(default_factory=list)

    def add_use(self, text: str) -> None:
        if text not in self.used_by:
            self.used_by.append(text)


def _specs_in(value: Any, depth: int = 0) -> Iterable[WeightSpec]:
    if isinstance(value, WeightSpec):
        yield value
    elif depth < 3 and isinstance(value, (tuple, list)):
        for v in value:
            yield from _specs_in(v, depth + 1)
    elif depth < 3 and isinstance(value, dict):
        for v in value.values():
            yield from _specs_in(v, depth + 1)


def _import_all(package: str) -> None:
    try:
        pkg = importlib.import_module(package)
    except Exception:  # noqa: BLE001 - an optional package (e.g. a broken plugin) hides nothing else
        return
    for info in pkgutil.walk_packages(getattr(pkg, "__path__", []), prefix=package + "."):
        if info.name.rsplit(".", 1)[-1].startswith("__"):
            continue
        try:
            importlib.import_module(info.name)
        except Exception:  # noqa: BLE001 - optional dependencies (mmseg) may be absent
            continue


def catalog() -> list[CatalogEntry]:
    """Every known weight file, one entry per spec key, with what uses it."""
    for package in SCANNED_PACKAGES:
        _import_all(package)
    entries: dict[str, CatalogEntry] = {}

    def add(spec: WeightSpec, use: str) -> None:
        entries.setdefault(spec.key, CatalogEntry(spec)).add_use(use)

    import harness.core.weights as core_weights

    for name, module in sorted(sys.modules.items()):
        if module is None or not isinstance(getattr(module, "__dict__", None), dict):
            continue
        names = vars(module)
        # only modules that use the WeightSpec type (or its module) can define one; this skips
        # third-party modules (and their deprecated lazy attributes)
        if not any(v is WeightSpec or v is core_weights for v in list(names.values())):
            continue
        for attr, value in list(names.items()):
            if attr.startswith("__"):
                continue
            for spec in _specs_in(value):
                add(spec, f"defined in {name}")
    from evaluators.segmenters import SEGMENTERS
    for e in SEGMENTERS.entries():
        for spec in e.obj.weights:
            add(spec, f"segmenter {e.name}")
    for need, method in _method_needs():
        add(need.spec, f"method {method}: {need.purpose}")
    for need, protocol in _protocol_needs():
        add(need.spec, f"{need.purpose} ({', '.join(need.metrics)}; protocols: {protocol})")
    # "defined in <module>" only says where a spec lives: shown when nothing declares a use
    for entry in entries.values():
        uses = [u for u in entry.used_by if not u.startswith("defined in ")]
        entry.used_by = uses or entry.used_by
    return sorted(entries.values(), key=lambda e: e.spec.key)


def _method_needs() -> Iterable[tuple[WeightNeed, str]]:
    from methods import METHODS

    for e in METHODS.entries():
        try:
            cfg = e.obj.Config()
            needs = list(e.obj.required_weights(cfg))
        except Exception:  # noqa: BLE001 - a Config without defaults: nothing to declare
            continue
        for need in needs:
            yield need, e.name


def _protocol_needs() -> Iterable[tuple[WeightNeed, str]]:
    """The metric files of every protocol, one use per (file, purpose) naming the protocols."""
    from evaluators.protocol import load_protocol, protocol_names
    from evaluators.requirements import protocol_weight_needs

    seen: dict[tuple[str, str], tuple[WeightNeed, list[str]]] = {}
    for name in protocol_names():
        try:
            needs = protocol_weight_needs(load_protocol(name), multimodal=None)
        except Exception:  # noqa: BLE001 - `list protocols` reports a broken protocol file
            continue
        for need in needs:
            seen.setdefault((need.spec.key, need.purpose), (need, []))[1].append(name)
    for need, names in seen.values():
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        yield need, shown


def known_keys() -> dict[str, WeightSpec]:
    return {e.spec.key: e.spec for e in catalog()}


# ---------------------------------------------------------------------------------------------
# configuration: --weights-dir and the weights: section
# ---------------------------------------------------------------------------------------------
def apply_config(cfg: Any) -> None:
    """Check the keys of ``cfg.weights`` (strict: an unknown key is an error naming it) and make
    resolve() use its paths; several configurations may not name two files for one key."""
    from harness.core.weights import _CONFIGURED

    section = dict(getattr(cfg, "weights", None) or {})
    if not section:
        return
    keys = known_keys()
    for key, path in section.items():
        if key not in keys:
            where = ", ".join(getattr(cfg, "sources", []) or []) or "the configuration"
            raise ConfigError(f"weights.{key}: unknown weights key {key!r} (in {where}); known "
                              f"keys: {', '.join(sorted(keys))} (see `python -m harness weights`)")
        old = _CONFIGURED["paths"].get(key)
        new = Path(path).expanduser()
        if old is not None and old != new:
            raise ConfigError(f"weights.{key}: two configurations name different files for it "
                              f"({old} and {new})")
    configure(paths=section)


# ---------------------------------------------------------------------------------------------
# status of one file
# ---------------------------------------------------------------------------------------------
def expected_hash(spec: WeightSpec) -> str | None:
    if spec.sha256:
        return spec.sha256
    return f"{spec.sha256_prefix}…" if spec.sha256_prefix else None


def get_hint(spec: WeightSpec) -> str:
    """The one URL or command that gets the file."""
    if spec.url:
        return spec.url
    return spec.source or "no public download; see docs/weights.md"


def _matches(spec: WeightSpec, digest: str) -> bool | None:
    expected = spec.sha256 or spec.sha256_prefix
    if expected is None:
        return None
    return digest.startswith(expected.lower())


def status(spec: WeightSpec, path: str | Path | None = None) -> dict:
    """Where the file is looked for (in order), whether it is there, and whether it verifies."""
    order = search_order(spec, path)
    row: dict[str, Any] = {
        "key": spec.key, "file": spec.filename, "sha256": expected_hash(spec),
        "search": [f"{origin}: {p}" for origin, p in order] +
                  ([f"download: {spec.url}"] if spec.url else []),
        "status": "missing", "path": None, "origin": None, "found_sha256": None,
        "get": get_hint(spec),
    }
    for origin, p in order:
        if p.is_file():
            digest = file_sha256(p)
            ok = _matches(spec, digest)
            row.update(path=str(p), origin=origin, found_sha256=digest,
                       status={True: "verified", False: "unverified", None: "present"}[ok])
            break
    return row


def rows(entries: Sequence[CatalogEntry] | None = None,
         needs: Sequence[WeightNeed] | None = None) -> list[dict]:
    """One status row per file: every catalog entry, or the files of ``needs`` (with purposes)."""
    if needs is not None:
        by_key: dict[tuple, dict] = {}
        for need in needs:
            k = (need.spec.key, str(need.path) if need.path is not None else None)
            if k not in by_key:
                by_key[k] = {**status(need.spec, need.path), "used_by": []}
            use = need.purpose + (f" ({', '.join(need.metrics)})" if need.metrics else
                                  " (training)")
            if use not in by_key[k]["used_by"]:
                by_key[k]["used_by"].append(use)
        return list(by_key.values())
    entries = catalog() if entries is None else entries
    return [{**status(e.spec), "used_by": list(e.used_by)} for e in entries]


def needs_for_run(run: str) -> list[WeightNeed]:
    """What one run needs: its method's training files and its protocol's metric files."""
    from harness.preflight import weight_needs
    from harness.stages.common import resolve_protocol

    from harness.rundir import RunDir

    cfg = RunDir.open(run).load_config()
    apply_config(cfg)
    try:
        protocol = resolve_protocol(cfg.eval.protocol, cfg.dataset.name)
    except ConfigError:
        protocol = None
    return weight_needs(cfg, protocol, training=True)


def needs_for_protocol(name: str) -> list[WeightNeed]:
    from evaluators.protocol import load_protocol
    from evaluators.requirements import protocol_weight_needs

    return protocol_weight_needs(load_protocol(name), multimodal=None)


# ---------------------------------------------------------------------------------------------
# weights add
# ---------------------------------------------------------------------------------------------
def target_dir() -> Path:
    """Where `weights add` copies: --weights-dir, else $HARNESS_WEIGHTS_DIR, else the hub cache."""
    dirs = weights_dirs()
    return dirs[0] if dirs else hub_checkpoints_dir()


def add(file: str | Path, key: str | None = None, *, dest: Path | None = None) -> dict:
    """Verify ``file`` against its spec (by ``key``, else by file name) and copy it atomically
    into the weights folder under the spec's file name. A wrong sha256 raises
    WeightsHashMismatch naming both hashes; nothing is copied then."""
    src = Path(file).expanduser()
    if not src.is_file():
        raise ConfigError(f"weights add: {src} is not a file")
    specs = known_keys()
    if key is not None:
        if key not in specs:
            raise ConfigError(f"weights add --as {key}: unknown weights key; known keys: "
                              f"{', '.join(sorted(specs))}")
        spec = specs[key]
    else:
        named = [s for s in specs.values() if s.filename == src.name]
        if not named:
            raise ConfigError(f"weights add: no known weight file is named {src.name!r}; pass "
                              "--as KEY (see `python -m harness weights` for the keys)")
        spec = named[0]
    digest = file_sha256(src)
    ok = _matches(spec, digest)
    if ok is False:
        raise WeightsHashMismatch(
            f"weights add: {src} has sha256 {digest}, but {spec.key} ({spec.filename}) expects "
            f"{expected_hash(spec)}; it is not the published file (get it from "
            f"{get_hint(spec)}); nothing was copied")
    out_dir = Path(dest) if dest is not None else target_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / spec.filename
    fd, tmp = tempfile.mkstemp(prefix=f".{spec.filename}.", suffix=".part", dir=out_dir)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        if file_sha256(Path(tmp)) != digest:  # a short copy (full disk) must not land
            raise OSError(f"copy of {src} to {tmp} is incomplete")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return {"key": spec.key, "file": spec.filename, "path": str(target), "sha256": digest,
            "status": "verified" if ok else "present (no published sha256 to check)"}


def segmenter_weights_status(entry: Any) -> str:
    """`list segmenters`: 'verified' / 'missing: f.pth' / ... over the entry's files."""
    specs = tuple(getattr(entry, "weights", ()) or ())
    if not specs:
        return "none needed"
    states = [status(s) for s in specs]
    bad = [f"{r['status']}: {r['file']}" for r in states if r["status"] not in ("verified",
                                                                                 "present")]
    if bad:
        return "; ".join(bad)
    return "verified" if all(r["status"] == "verified" for r in states) else "present"
