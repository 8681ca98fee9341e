"""The packages' import graph, read from the source with ``ast``: no circles, and the layers hold.

Every ``import`` counts, at module level, inside functions and under ``if TYPE_CHECKING:`` alike: a
lazy import that closes a circle still makes the modules depend on each other in a circle. Parent
packages' ``__init__`` (which Python runs before a submodule) are not counted as imports of the
submodule, as with every import-graph tool.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"labcam": ROOT / "labcam", "labcam_jupyter": ROOT / "jupyter_server_ext" / "labcam_jupyter"}


def _modules() -> dict[str, Path]:
    """Every module of the packages: dotted name -> file."""
    found: dict[str, Path] = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, int]]:
    """The names ``name`` imports (absolute, dotted), with the line of each import."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                # "from pkg import mod" imports the module pkg.mod; "from mod import name" imports mod.
                full = f"{source}.{alias.name}"
                out.append((full if full in MODULES else source, node.lineno))
    return out


def _graph() -> dict[str, dict[str, int]]:
    """module -> {module of the packages it imports: line of the first such import}."""
    graph: dict[str, dict[str, int]] = {}
    for name, path in MODULES.items():
        edges: dict[str, int] = {}
        for target, line in _imports(name, path):
            while target and target not in MODULES:  # "import labcam.x.y" where y is a name: labcam.x
                target = target.rpartition(".")[0]
            if target and target != name:
                edges.setdefault(target, line)
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One circle through each strongly connected group of modules (Tarjan), as a closed path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph)))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)

    cycles = []
    for group in groups:
        members = set(group)
        start = min(group)
        # The shortest way back to the start inside the group (breadth first): a readable circle.
        previous: dict[str, str] = {}
        frontier, seen = [start], {start}
        path: list[str] | None = None
        while frontier and path is None:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v]):
                    if w == start:
                        path = [start]
                        while v != start:
                            path.append(v)
                            v = previous[v]
                        path = [start, *reversed(path[1:]), start]
                        break
                    if w in members and w not in seen:
                        seen.add(w)
                        previous[w] = v
                        nxt.append(w)
                if path is not None:
                    break
            frontier = nxt
        assert path is not None
        cycles.append(path)
    return cycles


def _describe(graph: dict[str, dict[str, int]], cycle: list[str]) -> str:
    return " -> ".join(
        f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:])
    ) + f" -> {cycle[-1]}"


def test_the_graph_sees_the_packages_imports() -> None:
    """The walker itself: it must find imports of every kind, or "no cycle" would prove nothing."""
    graph = _graph()
    assert "labcam.wire" in MODULES and "labcam_jupyter.handlers" in MODULES
    assert "labcam.wire.envelope" in graph["labcam.wire.frames"]  # from .envelope import ...
    assert "labcam.wire" in graph["labcam.server.stream"]  # from .. import wire
    assert "labcam.server.stream" in graph["labcam_jupyter.handlers"]  # from labcam.server import stream
    assert "labcam.remote" in graph["labcam"]  # a lazy import inside connect()
    assert _cycles({"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {"a": 4}}) == [["a", "b", "c", "a"]]


def test_no_module_imports_another_in_a_circle() -> None:
    graph = _graph()
    cycles = _cycles(graph)
    assert not cycles, "import circles:\n" + "\n".join(_describe(graph, c) for c in cycles)


def _external(name: str) -> set[str]:
    return {t.split(".")[0] for t, _ in _imports(name, MODULES[name]) if t.split(".")[0] not in PACKAGES}


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m == "labcam.wire" or m.startswith("labcam.wire.")))
def test_the_wire_layer_stands_on_numpy_and_the_frame_alone(name: str) -> None:
    """So a connect() kernel decodes frames without the server, the preview encoder or simplejpeg."""
    inside = set(_graph()[name]) - {m for m in MODULES if m == "labcam.wire" or m.startswith("labcam.wire.")}
    assert inside <= {"labcam.frame"}, f"{name} imports {sorted(inside)}"
    stdlib = set(sys.stdlib_module_names)
    # The raw payload codec (a wire format) needs its compressors too; labcam.wire itself does not
    # import it, so a connect() kernel loads them only when it decodes raw previews.
    allowed = {"numpy", "isal", "zstandard", "lz4"} if name == "labcam.wire.rawcodec" else {"numpy"}
    assert {m for m in _external(name) if m not in stdlib} <= allowed, f"{name} imports {sorted(_external(name))}"
    if name == "labcam.wire":
        assert "labcam.wire.rawcodec" not in _graph()[name], "labcam.wire must not load the codec libraries"


def test_the_recording_manager_is_free_of_tornado() -> None:
    """Its REST handlers live in recording_handlers; the manager is plain threads and asyncio."""
    assert "tornado" not in _external("labcam.server.recordings")
    assert "labcam.server.base" not in _graph()["labcam.server.recordings"]
