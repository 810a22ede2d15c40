"""The sidecar's start-up stays one builder and no import circles (issue 13).

Why a test: an import circle or a service located by name creeps back one "quick" local import at a time.
The graph counts every import of a ``fhir_bridge`` module — at module level, under ``TYPE_CHECKING`` and
inside functions — because a circle closed by a function-local import is still a circle: the two modules
cannot be understood (or type-checked) one after the other. Importing ``a.b.c`` also runs the ``__init__``
of ``a.b`` (unless the importer lives inside it), so that edge is counted too.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "fhir_bridge"

#: Circles still present, each a sorted tuple of module names. Empty: none is allowed.
ALLOWED_CYCLES: set[tuple[str, ...]] = set()

#: Files where start-up must be explicit: no attributes attached or probed, no signature sniffing, no
#: modules loaded by name.
EXPLICIT = ("fhir_bridge/app.py", "fhir_bridge/sidecar.py", "fhir_bridge/detectors.py")
FORBIDDEN = ("hasattr(", "inspect.signature", "importlib.import_module", "import importlib")


def _modules() -> dict[str, Path]:
    found = {}
    for path in (ROOT / PACKAGE).rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _ancestors(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def _imported(
    module: str, path: Path, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]
) -> set[str]:
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        for alias in node.names:  # ``from pkg import submodule`` imports the submodule
            names.append(f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source)
    targets: set[str] = set()
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if not name.startswith(PACKAGE):
            continue
        targets.add(name)
        targets |= {a for a in _ancestors(name) if a in modules and a not in _ancestors(module)}
    targets.discard(module)
    return targets


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                edges |= _imported(module, path, node, modules)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> set[tuple[str, ...]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[tuple[str, ...]] = set()
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.add(tuple(sorted(component)))
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == {("a", "b", "c")}


def test_the_graph_sees_local_and_type_checking_imports() -> None:
    graph = import_graph()
    # ``fhir_bridge.api.routes`` names the Sidecar only under TYPE_CHECKING; the builder defers pgqueue.
    assert "fhir_bridge.sidecar" in graph["fhir_bridge.api.routes"]
    assert "fhir_bridge.pipeline.pgqueue" in graph["fhir_bridge.sidecar"]


def test_no_import_cycles_inside_fhir_bridge() -> None:
    found = cycles(import_graph())
    assert found - ALLOWED_CYCLES == set(), f"import circles: {sorted(found - ALLOWED_CYCLES)}"
    assert ALLOWED_CYCLES - found == set(), "an allowed circle is gone: remove it from ALLOWED_CYCLES"


def test_start_up_is_explicit() -> None:
    for name in EXPLICIT:
        text = (ROOT / name).read_text()
        assert not [f for f in FORBIDDEN if f in text], name
