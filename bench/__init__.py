"""One benchmark suite: ``python -m bench [CASE ...] [--device cpu|cuda] [--quick]``.

Each case prints one JSON line per measured variant on stdout and appends it to
bench/results.jsonl. See bench/README.md for the cases and the latest numbers.
"""
