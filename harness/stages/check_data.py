"""`check-data`: validate a dataset's layout and every file of each split, collecting every problem."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from harness.stages.common import build_dataset, dataset_spec


def check_data(dataset: str, *, splits: Sequence[str] | None = None,
               config_files: Sequence[str | Path] = (), overrides: Sequence[str] = ()) -> dict:
    """Validate the layout and every file of each split; collect every problem found."""
    from harness.core.data.base import DatasetError

    spec = dataset_spec(dataset, config_files=config_files, overrides=overrides)
    splits = list(splits or ["train", "val"])
    report: dict[str, Any] = {"dataset": dataset, "ok": True, "splits": []}
    for split in splits:
        entry: dict[str, Any] = {"split": split, "samples": 0, "problems": [], "ok": True}
        report["splits"].append(entry)
        try:
            ds = build_dataset(spec, split, train=False)
            records = ds.records()
        except DatasetError as exc:
            entry["problems"].append(str(exc))
            entry["ok"] = report["ok"] = False
            continue
        entry["samples"] = len(records)
        if not records:
            entry["problems"].append(f"split {split!r} has no samples")
        for i, rec in enumerate(records):
            try:
                ds[i]  # decodes every file, checks ids, sizes and pairing
            except (DatasetError, OSError, ValueError) as exc:
                entry["problems"].append(f"{rec.key}: {exc}")
        entry["ok"] = not entry["problems"]
        report["ok"] = report["ok"] and entry["ok"]
        if entry["ok"]:
            entry["label_ids"] = ds.allowed_ids()
            entry["size"] = list(ds.eval_size)
    return report
