"""The architecture, checked from the source: no import cycles (lazy ones included), methods as siblings."""
from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "diffkit"

# The three methods, the reference and the peers never import one another: each stands on the library below.
SIBLINGS = {
    "automatic": ("diffkit.reverse", "diffkit.forward"),
    "numeric": ("diffkit.finite_differences",),
    "symbolic": ("diffkit.symbolic", "diffkit.symbolic_program"),
    "reference": ("diffkit.reference",),
    "peers": ("diffkit.peers",),
}


def _modules() -> dict[str, pathlib.Path]:
    mods = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


def _imports(name: str, path: pathlib.Path, mods: dict) -> set[str]:
    """Every diffkit module ``name`` imports, at the top or inside a function."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.add(target if target in mods else base)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m in mods and m != name}


GRAPH = {name: _imports(name, path, _modules()) for name, path in _modules().items()}


def _cycles(graph: dict) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def _with_packages(graph: dict) -> dict:
    """A package's __init__ importing its own submodules is not a cycle; importing the parent package is an edge
    to every module the parent imports."""
    return {m: {t for t in targets if not t.startswith(m + ".")} for m, targets in graph.items()}


def test_no_import_cycles_lazy_ones_included():
    assert _cycles(_with_packages(GRAPH)) == []


def test_the_cycle_finder_finds_a_planted_cycle():
    planted = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(planted) == [["a", "b", "c"]]


@pytest.mark.parametrize("group", sorted(SIBLINGS))
def test_methods_reference_and_peers_are_siblings(group):
    mine = set(SIBLINGS[group])
    others = {m for g, ms in SIBLINGS.items() if g != group for m in ms}
    for module in mine & set(GRAPH):
        assert not (GRAPH[module] & others), f"{module} imports its sibling(s) {sorted(GRAPH[module] & others)}"


def test_the_tape_core_is_short():
    lines = (ROOT / "tape" / "core.py").read_text().splitlines()
    assert len(lines) <= 200, f"diffkit/tape/core.py has {len(lines)} lines; the core (node, record, sweep) is <= 200"
