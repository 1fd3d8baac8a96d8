"""Results: collect evaluation records (store), build leaderboard tables (leaderboard), write
them (formats, build), and the papers' published numbers (published)."""
from harness.results.build import build_leaderboard, parse_formats, write_leaderboard
from harness.results.published import DEFAULT_PUBLISHED_CSV, load_published
from harness.results.store import collect_records

__all__ = ["build_leaderboard", "collect_records", "load_published", "parse_formats",
           "write_leaderboard",
           "DEFAULT_PUBLISHED_CSV"]
