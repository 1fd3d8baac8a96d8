"""``--segmenter-weights FILE``: score mIoU / accuracy with the user's own segmenter checkpoint.

The file is for the protocol's segmenter (``protocol.segmentation.segmenter``): a checkpoint
written by ``python -m harness train-segmenter`` (or ``train_segmenter(..., out_path=...)``) for
the harness-trained segmenters, the published file for a paper segmenter, whatever the entry's
``build(weights=FILE)`` loads for a plugin's. It is checked before anything runs (exists, loads,
predicts the dataset's label space): a bad file is one error naming it (exit status 2).

Numbers computed with it can never pass for another segmenter's:

- the record holds ``segmenter_weights`` = {segmenter, file, path, sha256} (and the usual
  ``weights`` entry with the file's sha256) and a note naming the file;
- unless the file is the published, hash-verified one, ``protocol.identity`` gets the suffix
  ``+segmenter-<first 8 hex of its sha256>``: the leaderboard and ``compare`` key tables by the
  identity, so rows scored by different segmenter files never share a table (unverified published
  files already carry ``+unverified-...``, :mod:`evaluators.unverified`);
- a recorded evaluation is reused only when it was made with the same file (or both without
  one): :func:`same_segmenter`; otherwise it is computed again.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from harness.core.errors import UserError, describe

IDENTITY_PREFIX = "segmenter-"
RECORD_KEY = "segmenter_weights"


class SegmenterWeightsError(UserError, ValueError):
    """The ``--segmenter-weights`` file is missing, unreadable or does not fit; names the file."""


@dataclass(frozen=True)
class SegmenterFile:
    """A checked ``--segmenter-weights`` file for the protocol's segmenter."""
    segmenter: str                   # registry name (the key evaluate_images' weights= expects)
    path: Path
    sha256: str

    def weights(self) -> dict[str, str]:
        """The ``weights=`` mapping of :func:`evaluators.evaluate.evaluate_images`."""
        return {self.segmenter: str(self.path)}

    def record(self) -> dict:
        return {"segmenter": self.segmenter, "file": self.path.name, "path": str(self.path),
                "sha256": self.sha256}


def check_segmenter_weights(path: str | Path | None, protocol: Any,
                            dataset: Any = None) -> SegmenterFile | None:
    """Check ``path`` for ``protocol``'s segmenter (and ``dataset``'s label space when given).

    None -> None. Raises :class:`SegmenterWeightsError` (or the weights' hash mismatch error of a
    published file) naming the file."""
    if path is None:
        return None
    from evaluators.segmenters import SEGMENTERS
    from harness.core.weights import configure, file_sha256, resolve

    p = Path(path).expanduser()
    flag = f"--segmenter-weights {p}"
    if not p.is_file():
        raise SegmenterWeightsError(f"{flag}: file does not exist")
    name = protocol.segmentation.segmenter
    if name is None:
        raise SegmenterWeightsError(f"{flag}: protocol {protocol.name!r} has no segmenter "
                                    "(no mIoU / accuracy to compute)")
    entry = SEGMENTERS.get(name)
    p = p.resolve()
    if entry.weights:
        # A paper segmenter: the file stands for its published file (hash checked; a mismatch is
        # an error unless unverified files are allowed, then marked as such). Configured by key,
        # so the preflight checks this file, not the default location.
        if len(entry.weights) != 1:
            raise SegmenterWeightsError(f"{flag}: segmenter {name} loads "
                                        f"{len(entry.weights)} files; set each in the "
                                        "configuration's weights: section instead")
        resolve(entry.weights[0], p)
        configure(paths={entry.weights[0].key: p})
    else:
        model = _load(entry, p, flag)
        _check_label_space(model, dataset, flag)
        del model
    return SegmenterFile(name, p, file_sha256(p))


def _load(entry: Any, path: Path, flag: str) -> Any:
    try:
        return entry.build(weights=path, device="cpu", **dict(entry.options))
    except Exception as exc:  # the user's file (or a plugin's loader): one error naming it
        raise SegmenterWeightsError(f"{flag}: segmenter {entry.name} could not load it "
                                    f"({describe(exc)})") from exc


def _check_label_space(model: Any, dataset: Any, flag: str) -> None:
    if dataset is None:
        return
    space = dataset.label_space
    got = (getattr(model, "label_space", space.name), getattr(model, "num_classes",
                                                                space.num_classes))
    if got != (space.name, space.num_classes):
        raise SegmenterWeightsError(
            f"{flag}: the segmenter predicts label space {got[0]!r} with {got[1]} classes; "
            f"{dataset.name} is scored in {space.name!r} with {space.num_classes} classes")
    names = tuple(getattr(model, "class_names", ()) or ())
    if names and names != tuple(space.class_names):
        raise SegmenterWeightsError(
            f"{flag}: the segmenter was trained on classes {', '.join(names)}; {dataset.name} "
            f"has {', '.join(space.class_names)}")


def mark_record(record: dict, sf: SegmenterFile | None) -> dict:
    """Name the file in ``record`` and give its numbers their own protocol identity (in place)."""
    if sf is None or not isinstance(record, dict):
        return record
    record[RECORD_KEY] = sf.record()
    used = [w for w in (record.get("weights") or {}).values()
            if isinstance(w, Mapping) and w.get("sha256") == sf.sha256]
    proto = record.get("protocol")
    # verified True: the published file itself (the protocol's numbers); False: already marked
    # unverified by evaluators.unverified.
    if isinstance(proto, dict) and not any(w.get("verified") in (True, False) for w in used):
        base = proto.get("identity") or proto.get("id")
        proto["identity"] = f"{base}+{IDENTITY_PREFIX}{sf.sha256[:8]}"
    record.setdefault("notes", []).append(
        f"mIoU / accuracy scored by segmenter {sf.segmenter} from {sf.path.name} (sha256 "
        f"{sf.sha256[:12]}, --segmenter-weights)")
    return record


def same_segmenter(existing: Mapping[str, Any] | None, sf: SegmenterFile | None) -> bool:
    """Whether a recorded evaluation was scored with the same segmenter file as requested now
    (both with none given counts as the same)."""
    recorded = (existing or {}).get(RECORD_KEY) or {}
    return recorded.get("sha256") == (sf.sha256 if sf is not None else None)


def describe_change(existing: Mapping[str, Any] | None, sf: SegmenterFile | None) -> str:
    recorded = (existing or {}).get(RECORD_KEY) or {}
    was = (f"{recorded.get('file')} (sha256 {str(recorded.get('sha256'))[:12]})" if recorded
           else "the protocol's default")
    now = f"{sf.path.name} (sha256 {sf.sha256[:12]})" if sf else "the protocol's default"
    return f"the recorded mIoU came from segmenter weights {was}, now {now}"
