"""Default locations: the cache (generated datasets, reference statistics, trained segmenters)."""
from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "HARNESS_CACHE"


def cache_root() -> Path:
    """``$HARNESS_CACHE`` or ``~/.cache/harness`` (never inside site-packages)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "harness"
