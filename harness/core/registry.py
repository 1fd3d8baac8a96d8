"""Named registries with decorator registration and entry-point plugins.

Built-ins register with ``@REGISTRY.register("name")`` when their module is imported; the registry
imports every built-in module of its package on first use. Third-party packages declare an entry
point in the registry's group (e.g. ``harness.methods``) and are discovered without any change to
this repository. A name registered twice is an error that names both sources.
"""
from __future__ import annotations

import fnmatch
import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class RegistryError(LookupError):
    pass


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    source: str  # "builtin (module.path)" or "plugin <distribution> <version> (module:attr)"


def _describe_builtin(obj: object) -> str:
    module = getattr(obj, "__module__", "?")
    qual = getattr(obj, "__qualname__", type(obj).__name__)
    return f"builtin ({module}.{qual})"


class Registry(Generic[T]):
    """A name -> object map filled by decorators (built-ins) and entry points (plugins)."""

    def __init__(self, kind: str, *, builtin_packages: tuple[str, ...] = (),
                 entry_point_group: str | None = None,
                 validate: Callable[[str, T], None] | None = None) -> None:
        self.kind = kind
        self.builtin_packages = builtin_packages
        self.entry_point_group = entry_point_group
        self._validate = validate
        self._entries: dict[str, Entry[T]] = {}
        self._loaded = False
        self._loading = False

    # registration -------------------------------------------------------------------------
    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            self.add(name, obj, _describe_builtin(obj))
            return obj
        return decorator

    def add(self, name: str, obj: T, source: str) -> None:
        if not isinstance(name, str) or not name or name != name.strip() or "/" in name:
            raise RegistryError(f"invalid {self.kind} name {name!r}: use a non-empty string "
                                "without spaces at the ends or slashes")
        existing = self._entries.get(name)
        if existing is not None:
            if existing.obj is obj:
                return  # the same module imported twice (e.g. as __main__ and by name)
            raise RegistryError(
                f"duplicate {self.kind} name {name!r}: registered by {existing.source} "
                f"and again by {source}; rename one of them")
        if self._validate is not None:
            self._validate(name, obj)
        self._entries[name] = Entry(name, obj, source)

    # discovery ----------------------------------------------------------------------------
    def _load(self) -> None:
        if self._loaded or self._loading:
            return
        self._loading = True
        try:
            for package_name in self.builtin_packages:
                package = importlib.import_module(package_name)
                for info in pkgutil.iter_modules(package.__path__, package_name + "."):
                    leaf = info.name.rsplit(".", 1)[-1]
                    if leaf.startswith("_") or leaf in ("base", "blocks", "contract"):
                        continue
                    importlib.import_module(info.name)
            if self.entry_point_group:
                for ep in entry_points(group=self.entry_point_group):
                    dist = getattr(ep, "dist", None)
                    dist_desc = f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"
                    source = f"plugin {dist_desc} ({ep.value})"
                    try:
                        obj = ep.load()
                    except Exception as exc:  # a broken plugin must not hide the built-ins
                        raise RegistryError(
                            f"could not load {self.kind} plugin {ep.name!r} from {source}: "
                            f"{type(exc).__name__}: {exc}") from exc
                    self.add(ep.name, obj, source)
            self._loaded = True
        finally:
            self._loading = False

    def reload(self) -> None:
        """Forget discovered entries (built-ins registered at import time stay) and rediscover."""
        self._loaded = False
        self._entries = {k: v for k, v in self._entries.items() if v.source.startswith("builtin")}
        self._load()

    # queries ------------------------------------------------------------------------------
    def get(self, name: str) -> T:
        return self.entry(name).obj

    def entry(self, name: str) -> Entry[T]:
        self._load()
        if name not in self._entries:
            known = ", ".join(sorted(self._entries)) or "none"
            raise RegistryError(f"unknown {self.kind} {name!r}; known {self.kind}s: {known}")
        return self._entries[name]

    def names(self, pattern: str = "*") -> list[str]:
        self._load()
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def entries(self, pattern: str = "*") -> list[Entry[T]]:
        return [self._entries[n] for n in self.names(pattern)]

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def summary_line(obj: object) -> str:
    """First line of an object's docstring, for `harness list`."""
    doc = inspect.getdoc(obj) or ""
    return doc.splitlines()[0] if doc else ""
