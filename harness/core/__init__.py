"""The foundation: what methods, evaluators and the orchestration all build on.

Typed configuration and hashing (config), registries (registry), atomic file io (io), the
dataset contract and readers (data), weight-file resolution (weights), the metrics-record schema
(records), the user-error base (errors), distributed facts (dist), provenance (env) and default
locations (paths). Nothing in here imports methods/, evaluators/ or the rest of harness/
(tests/test_layers.py checks it), and this file imports nothing, so ``import harness.core.io``
stays cheap.
"""
