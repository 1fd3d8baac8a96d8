"""The floors of the package (docs/architecture.md), read statically from every module's imports.

harness.core (the foundation) imports nothing above it; methods/ and evaluators/ import only the
foundation and never each other; the orchestration (the rest of harness/) may import anything.
No module imports, however indirectly, a module that imports it back. Function-level imports
count; imports under ``if TYPE_CHECKING:`` (annotations only, never executed) do not.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "methods", "evaluators")
ALLOWED = {"core": {"core"}, "methods": {"core", "methods"}, "evaluators": {"core", "evaluators"},
           "orchestration": {"core", "methods", "evaluators", "orchestration"}}


def module_files(root: Path) -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def import_graph(root: Path) -> dict[str, set[str]]:
    """module -> the modules of PACKAGES it imports (`from a import b` means a.b if that is a
    module, else a)."""
    files = module_files(root)
    graph = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        type_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                     and "TYPE_CHECKING" in ast.unparse(node.test)
                     for stmt in node.body for n in ast.walk(stmt)}
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(tree):
            if id(node) in type_only:
                continue
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from . / .. import
                    up = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                targets.update(f"{base}.{a.name}" if f"{base}.{a.name}" in files else base
                               for a in node.names)
        resolved = set()
        for target in targets:  # `import a.b.c` of a module inside a package -> the longest known
            while target and target not in files:
                target = target.rpartition(".")[0]
            if target and target != name:
                resolved.add(target)
        graph[name] = resolved
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, str] = {}  # "open" while on the DFS stack, then "done"
    stack: list[str] = []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def layer(module: str) -> str:
    if module == "harness.core" or module.startswith("harness.core."):
        return "core"
    top = module.split(".")[0]
    return top if top in ("methods", "evaluators") else "orchestration"


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return [f"{m} ({layer(m)}) imports {t} ({layer(t)})" for m, targets in sorted(graph.items())
            for t in sorted(targets) if layer(t) not in ALLOWED[layer(m)]]


def test_no_import_cycles():
    cycle = find_cycle(import_graph(ROOT))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_each_floor_imports_only_the_floors_below():
    assert upward_imports(import_graph(ROOT)) == []


def test_checker_sees_function_level_imports_and_reports_the_cycle(tmp_path):
    for rel, text in {"harness/__init__.py": "", "harness/core/__init__.py": "",
                      "harness/core/a.py": "def f():\n    from harness.run import x\n",
                      "harness/run.py": "from harness.core import a\n",
                      "methods/__init__.py": "import evaluators.e\n",
                      "evaluators/__init__.py": "", "evaluators/e.py":
                      "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import methods\n"
                      }.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    graph = import_graph(tmp_path)
    assert find_cycle(graph) == ["harness.core.a", "harness.run", "harness.core.a"]
    assert upward_imports(graph) == [
        "harness.core.a (core) imports harness.run (orchestration)",
        "methods (methods) imports evaluators.e (evaluators)"]
