"""`python -m harness leaderboard`: recorded runs (+ published numbers) -> results/leaderboard.*"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from harness.core.io import atomic_write_text
from harness.results.formats import to_csv, to_latex, to_markdown
from harness.results.leaderboard import Leaderboard, build_tables
from harness.results.published import DEFAULT_PUBLISHED_CSV, load_published
from harness.results.store import Reporter, collect_records

# canonical format name -> (file name, renderer)
WRITERS: dict[str, tuple[str, Callable[[Leaderboard], str]]] = {
    "csv": ("leaderboard.csv", to_csv),
    "latex": ("leaderboard.tex", to_latex),
    "md": ("leaderboard.md", to_markdown),
}
ALIASES = {"csv": "csv", "latex": "latex", "tex": "latex", "md": "md", "markdown": "md"}


def parse_formats(formats: Iterable[str] | str) -> list[str]:
    """'csv,latex,md' or a list of names (aliases tex / markdown) -> canonical names, in order."""
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    out: list[str] = []
    for item in items:
        for name in str(item).split(","):
            name = name.strip().lower()
            if not name:
                continue
            if name not in ALIASES:
                raise ValueError(f"unknown leaderboard format {name!r}; choose from "
                                 f"{', '.join(sorted(ALIASES))}")
            if ALIASES[name] not in out:
                out.append(ALIASES[name])
    if not out:
        raise ValueError("no leaderboard format given; choose from csv, latex, md")
    return out


def build_leaderboard(runs_root: Path, published_csv: Path | None, out_dir: Path,
                      formats: Iterable[str] | str, *, include_published: bool = True,
                      datasets: Iterable[str] | None = None,
                      extra_paths: Iterable[str | Path] = (),
                      problems: list[str] | None = None) -> dict[str, Path]:
    """Read every metrics.json under ``runs_root`` (and ``extra_paths``), add the published
    numbers, and write ``out_dir/leaderboard.{csv,tex,md}`` atomically for the requested formats.

    Returns canonical format -> written path. Problems with individual metrics.json files are
    warnings (logger ``harness.results``; also appended to ``problems``); a malformed published
    CSV or an unknown format is an error raised before anything is written.
    """
    names = parse_formats(formats)
    published = (load_published(published_csv)
                 if include_published and published_csv is not None else [])
    warn = Reporter(problems)
    runs_root = Path(runs_root)
    paths = [runs_root, *map(Path, extra_paths)]
    if not runs_root.exists():
        warn(f"{runs_root}: no runs folder; the leaderboard has no reproduced rows")
        paths = paths[1:]
    records = collect_records(paths, problems=problems)
    board = build_tables(records, published, datasets=datasets, warn=warn)
    from harness.results.run_info import with_budgets   # rows say what was run
    board = with_budgets(board, records)
    rendered = {name: WRITERS[name][1](board) for name in names}   # render all, then write
    written = {}
    for name in names:
        written[name] = atomic_write_text(Path(out_dir) / WRITERS[name][0], rendered[name])
    return written


def write_leaderboard(paths: Iterable[str | Path], results_dir: str | Path, *,
                      formats: Iterable[str] = ("csv", "latex", "md"), published: bool = True,
                      datasets: Iterable[str] | None = None,
                      problems: list[str] | None = None) -> list[Path]:
    """The runner's / CLI's entry point: ``paths[0]`` is the runs folder, the rest are extra
    folders (e.g. evaluated image folders). The published numbers are read from
    ``results_dir/published.csv`` when it exists, else from the repository's copy."""
    paths = [Path(p) for p in paths] or [Path("runs")]
    results_dir = Path(results_dir)
    local = results_dir / "published.csv"
    published_csv = local if local.is_file() else DEFAULT_PUBLISHED_CSV
    # External rows (`evaluate --images --label`) live under results_dir/external and are read
    # by every rebuild (harness.results.external).
    from harness.results.external import external_root
    extra = [*paths[1:]] + ([external_root(results_dir)]
                            if external_root(results_dir).is_dir() else [])
    written = build_leaderboard(paths[0], published_csv, results_dir, list(formats),
                                include_published=published, datasets=datasets,
                                extra_paths=extra, problems=problems)
    return list(written.values())
