"""The registry: decorator registration, entry-point plugins (real importlib.metadata through a
temporary dist-info folder on sys.path), duplicate names naming both sources, lookups."""
from __future__ import annotations

import sys
import textwrap

import pytest

from harness.core.registry import Registry, RegistryError, summary_line

GROUP = "harness.test_registry_things"


def make_dist(root, dist, version, group, entries: dict[str, str], module: str | None = None,
              code: str = ""):
    """A minimal installed distribution: <root>/<dist>-<version>.dist-info + optional module."""
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = [f"[{group}]"] + [f"{k} = {v}" for k, v in entries.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    if module:
        (root / f"{module}.py").write_text(textwrap.dedent(code))
    return root


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    yield root
    for name in [m for m in sys.modules if m.startswith("regtest_")]:
        del sys.modules[name]


def test_decorator_registration_and_queries():
    reg: Registry = Registry("thing")

    @reg.register("beta")
    class Beta:
        """Second thing.

        Details."""

    @reg.register("alpha")
    def alpha():
        """First thing."""

    assert reg.names() == ["alpha", "beta"] and reg.names("b*") == ["beta"]
    assert reg.get("beta") is Beta and "alpha" in reg and "gamma" not in reg
    assert reg.entry("beta").source == f"builtin ({__name__}.test_decorator_registration_and_queries.<locals>.Beta)"
    assert summary_line(Beta) == "Second thing." and list(reg) == ["alpha", "beta"]
    with pytest.raises(RegistryError, match="unknown thing 'gamma'; known things: alpha, beta"):
        reg.get("gamma")


def test_duplicate_builtin_names_both_sources():
    reg: Registry = Registry("thing")

    @reg.register("x")
    class One:
        pass

    with pytest.raises(RegistryError) as e:
        @reg.register("x")
        class Two:
            pass
    msg = str(e.value)
    assert "duplicate thing name 'x'" in msg and "One)" in msg and "Two)" in msg
    reg.register("x")(One)  # the same object twice (module imported twice) is fine


@pytest.mark.parametrize("bad", ["", " x", "a/b"])
def test_invalid_names(bad):
    with pytest.raises(RegistryError, match="invalid thing name"):
        Registry("thing").add(bad, object(), "test")


def test_validation_hook_rejects_wrong_objects():
    def only_types(name, obj):
        if not isinstance(obj, type):
            raise TypeError(f"{name} must be a class")
    reg: Registry = Registry("thing", validate=only_types)
    with pytest.raises(TypeError, match="f must be a class"):
        reg.add("f", lambda: None, "test")


def test_entry_point_plugin_is_discovered_with_its_distribution(plugin_path):
    make_dist(plugin_path, "regtest-dist", "1.2.3", GROUP, {"shiny": "regtest_mod:Shiny"},
              module="regtest_mod", code='''
        class Shiny:
            """A shiny plugin thing."""
        ''')
    reg: Registry = Registry("thing", entry_point_group=GROUP)
    assert reg.names() == ["shiny"]
    entry = reg.entry("shiny")
    assert entry.source == "plugin regtest-dist 1.2.3 (regtest_mod:Shiny)"
    assert entry.obj.__name__ == "Shiny" and summary_line(entry.obj) == "A shiny plugin thing."


def test_plugin_duplicating_a_builtin_names_both(plugin_path):
    make_dist(plugin_path, "regtest-dup", "0.1", GROUP, {"same": "regtest_dup:Thing"},
              module="regtest_dup", code="class Thing: pass\n")
    reg: Registry = Registry("thing", entry_point_group=GROUP)

    @reg.register("same")
    class Builtin:
        pass

    with pytest.raises(RegistryError) as e:
        reg.names()
    msg = str(e.value)
    assert "duplicate thing name 'same'" in msg
    assert "builtin (" in msg and "Builtin)" in msg
    assert "plugin regtest-dup 0.1 (regtest_dup:Thing)" in msg


def test_two_plugins_with_one_name(plugin_path):
    make_dist(plugin_path, "regtest-a", "1.0", GROUP, {"twin": "regtest_a:T"},
              module="regtest_a", code="class T: pass\n")
    make_dist(plugin_path, "regtest-b", "2.0", GROUP, {"twin": "regtest_b:T"},
              module="regtest_b", code="class T: pass\n")
    with pytest.raises(RegistryError, match=r"plugin regtest-(a 1\.0|b 2\.0).*plugin regtest-(a 1\.0|b 2\.0)"):
        Registry("thing", entry_point_group=GROUP).names()


def test_broken_plugin_is_one_clear_error(plugin_path):
    make_dist(plugin_path, "regtest-broken", "0.0.1", GROUP, {"broken": "regtest_broken:Nope"},
              module="regtest_broken", code="raise ImportError('missing dependency frobnicate')\n")
    with pytest.raises(RegistryError, match="could not load thing plugin 'broken' from plugin "
                       "regtest-broken 0.0.1.*ImportError: missing dependency frobnicate"):
        Registry("thing", entry_point_group=GROUP).names()


def test_reload_forgets_removed_plugins(plugin_path, monkeypatch):
    make_dist(plugin_path, "regtest-gone", "1.0", GROUP, {"gone": "regtest_gone:G"},
              module="regtest_gone", code="class G: pass\n")
    reg: Registry = Registry("thing", entry_point_group=GROUP)

    @reg.register("stays")
    class Stays:
        pass

    assert reg.names() == ["gone", "stays"]
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(plugin_path)])
    reg.reload()
    assert reg.names() == ["stays"]


def test_builtin_registries_list_the_shipped_things():
    from evaluators.segmenters import SEGMENTERS
    from harness.core.data import DATASETS
    from methods import METHODS
    assert {"spade", "ccfpse", "pix2pixhd"} <= set(METHODS.names())
    assert {"cityscapes", "ade20k", "coco-stuff", "synthetic"} <= set(DATASETS.names())
    assert "drn-d-105-cityscapes" in SEGMENTERS.names()
    for name in ("spade", "ccfpse", "pix2pixhd"):
        assert METHODS.entry(name).source.startswith(f"builtin (methods.{name}")
