"""Where presets live: ``configs/`` of this repository first, then the config folders that
installed plugins ship inside their packages (entry point group ``harness.configs``).

A plugin declares one folder, a package of its own that holds the same layout as ``configs/``
(``methods/<method>.yaml``, ``experiments/<method>-<dataset>.yaml``, ``datasets/<dataset>.yaml``)::

    [project.entry-points."harness.configs"]
    my-plugin = "my_plugin.configs"          # a package (folder) inside the plugin

For each preset file the first folder that has it wins, so this repository's presets are never
shadowed by a plugin's.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from harness.core.errors import UserError

GROUP = "harness.configs"


class PresetError(UserError, ValueError):
    """A plugin's config folder cannot be found, or a plugin method has no preset."""


@dataclass(frozen=True)
class ConfigRoot:
    path: Path
    source: str  # "configs" or "plugin <distribution> <version> (<package>)"


def plugin_config_roots() -> list[ConfigRoot]:
    """The config folders of installed plugins, in entry-point order; one that does not name an
    importable package folder is an error naming the entry point and its distribution."""
    from importlib.resources import files

    roots = []
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        who = f"plugin {dist.name} {dist.version}" if dist is not None else "plugin (unknown)"
        try:
            folder = Path(str(files(ep.value)))
        except (ImportError, TypeError, ValueError) as exc:
            raise PresetError(f"entry point {ep.name} = {ep.value!r} ({GROUP}, {who}): not an "
                              f"importable package folder ({exc})") from None
        if not folder.is_dir():
            raise PresetError(f"entry point {ep.name} = {ep.value!r} ({GROUP}, {who}): {folder} "
                              "is not a folder")
        roots.append(ConfigRoot(folder, f"{who} ({ep.value})"))
    return roots


def config_roots(root: Path) -> list[ConfigRoot]:
    """``root`` (this repository's configs/ or the one a caller names), then the plugins'."""
    return [ConfigRoot(Path(root), str(root)), *plugin_config_roots()]


def find_preset(roots: list[ConfigRoot], relative: str) -> Path | None:
    """The first ``<root>/<relative>`` file, e.g. ``experiments/spade-cityscapes.yaml``."""
    for r in roots:
        p = r.path / relative
        if p.is_file():
            return p
    return None
