"""Benchmark and evaluation harness for semantic image synthesis."""
__version__ = "0.1.0"
