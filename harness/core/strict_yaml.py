"""YAML loading that refuses duplicate mapping keys.

PyYAML keeps the last of two equal keys in one mapping without a word, so a recipe with two
``train:`` sections silently loses the first. :func:`safe_load` is ``yaml.safe_load`` except that
a repeated key is a :class:`DuplicateKeyError` carrying the key and both line numbers. Keys
brought in by a merge (``<<: *anchor``) may be overridden explicitly, as YAML intends.
"""
from __future__ import annotations

from typing import Any

import yaml


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping names one key twice; ``key``, ``first_line`` and ``second_line`` (1-based)."""

    def __init__(self, key: Any, first_line: int, second_line: int, mark) -> None:
        super().__init__(None, None, f"duplicate key {key!r} (lines {first_line} and "
                         f"{second_line})", mark)
        self.key = key
        self.first_line = first_line
        self.second_line = second_line


class StrictSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` whose mappings reject duplicate keys."""


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _construct_mapping(loader: StrictSafeLoader, node: yaml.MappingNode) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.get(key)
        except TypeError:  # unhashable key: the regular constructor reports it
            continue
        line = key_node.start_mark.line + 1
        if first is not None:
            raise DuplicateKeyError(key, first, line, key_node.start_mark)
        seen[key] = line
    return loader.construct_mapping(node, deep=True)


StrictSafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                 _construct_mapping)


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` with duplicate keys as :class:`DuplicateKeyError`."""
    return yaml.load(text, Loader=StrictSafeLoader)  # noqa: S506 - a SafeLoader subclass
