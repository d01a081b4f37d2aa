"""The import graph of src/poolattn: no cycle, and losses/ depends on nothing above it.

Read from the source with `ast` (nothing is imported), counting every poolattn -> poolattn import, at module level
or inside a function: a function-level import hides a cycle from Python but not from the reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(src: Path) -> dict[str, Path]:
    return {_module_name(path, src): path for path in sorted((src / "poolattn").rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The poolattn modules that module `name` imports, at any depth; `from pkg import mod` counts as `pkg.mod`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from poolattn.model import folder` imports the submodule poolattn.model.folder (an edge to it, not
            # to the package: a package's __init__ importing its modules and them importing each other this way is
            # no cycle); any other name is the module's own
            submodules = [f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}" in known]
            targets = submodules + ([module] if len(submodules) < len(node.names) else [])
        else:
            continue
        for target in targets:
            if target in known and target != name:
                found.add(target)
    return found


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """module -> the poolattn modules it imports."""
    modules = _modules(src)
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search, three colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_src_poolattn_has_no_import_cycle():
    graph = import_graph()
    assert "poolattn.model.embedder" in graph and graph["poolattn.model.embedder"], "the graph read no imports"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("forbidden", ["poolattn.model", "poolattn.features", "poolattn.training"])
def test_losses_import_nothing_from_the_model_features_or_training(forbidden):
    graph = import_graph()
    losses = {name: targets for name, targets in graph.items() if name.startswith("poolattn.losses")}
    assert losses
    offending = {name: sorted(t for t in targets if t == forbidden or t.startswith(forbidden + "."))
                 for name, targets in losses.items()}
    assert not any(offending.values()), f"losses/ imports {forbidden}: {offending}"


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "poolattn" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_a_cycle_through_a_function_level_and_a_relative_import_is_found(tmp_path):
    # a -> b at module level, b -> c by `from poolattn.pkg import c` inside a function, c -> a relatively
    src = _write(tmp_path, {
        "__init__.py": "",
        "a.py": "from poolattn.pkg.b import thing\n",
        "pkg/__init__.py": "",
        "pkg/b.py": "def thing():\n    from poolattn.pkg import c\n    return c\n",
        "pkg/c.py": "from ..a import thing\n",
        "d.py": "import poolattn.a\n",
    })
    graph = import_graph(src)
    assert graph["poolattn.pkg.b"] == {"poolattn.pkg.c"}
    assert graph["poolattn.d"] == {"poolattn.a"}
    assert graph["poolattn.pkg.c"] == {"poolattn.a"}
    assert find_cycle(graph) == ["poolattn.a", "poolattn.pkg.b", "poolattn.pkg.c", "poolattn.a"]
    # and without the closing edge there is none
    (src / "poolattn" / "pkg" / "c.py").write_text("x = 1\n", encoding="utf-8")
    assert find_cycle(import_graph(src)) is None
