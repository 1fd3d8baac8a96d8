"""``python -m bench.table``: the latest record of every (case, variant, parameters, quick) in
bench/results.jsonl as Markdown tables, CPU and GPU apart (pasted into bench/README.md)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.cli import RESULTS

RATIO_KEYS = ("ratio_vs_torch_fidelity", "speedup_vs_cold", "speedup_vs_baseline",
              "peak_memory_vs_baseline", "peak_memory_vs_plain", "time_vs_plain",
              "speedup_vs_torch_fidelity", "fraction_of_bf16_peak",
              "speedup_vs_official", "peak_memory_vs_official", "speedup_vs_before")
# Any other derived number a case adds (ratios against official code, paired or CPU-time
# ratios, memory-budget extrapolations) is shown too, after the known ones.
DERIVED_MARKERS = ("ratio", "_vs_", "speedup", "images_in_budget", "per_image_mib")


def derived_keys(r: dict) -> list[str]:
    extra = sorted(k for k in r if k not in RATIO_KEYS and any(m in k for m in DERIVED_MARKERS))
    return [k for k in (*RATIO_KEYS, *extra) if r.get(k) is not None]


def latest(path: Path) -> list[dict]:
    rows: dict[tuple, dict] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            rows[(r["case"], r["variant"], json.dumps(r["parameters"], sort_keys=True),
                  r["device"], r["quick"])] = r
    return list(rows.values())


def table(rows: list[dict]) -> str:
    out = ["| case | variant | parameters | median s (min-max) | CPU s | peak MiB (kind) | images/s | ratios | commit, date |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        params = ", ".join(f"{k}={v}" for k, v in r["parameters"].items())
        ratios = ", ".join(f"{k}={r[k]}" for k in derived_keys(r))
        cpu = r.get("cpu_median_s")
        cpu = f"{cpu:.3g}" if isinstance(cpu, (int, float)) and cpu == cpu else ""
        out.append(f"| {r['case']}{' (quick)' if r['quick'] else ''} | {r['variant']} | {params} | "
                   f"{r['median_s']:.3g} ({r['min_s']:.3g}-{r['max_s']:.3g}) | {cpu} | "
                   f"{r['peak_memory_mib']:.0f} ({r['peak_memory_kind']}) | "
                   f"{r.get('images_per_s', '')} | {ratios} | "
                   f"{(r['git_commit'] or '?')[:8]}, {r['date'][:16]} |")
    return "\n".join(out)


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS
    rows = latest(path)
    for device, title in (("cpu", "CPU"), ("cuda", "GPU")):
        part = [r for r in rows if r["device"] == device]
        print(f"### {title}\n")
        print(table(part) if part else "No records.")
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
