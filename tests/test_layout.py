"""The house stays as README's "How the code is laid out" draws it: no import circles, imports only
downward through the floors, and folders small enough to find one's way in.

The import graph is read from the source with :mod:`ast` (nothing is imported), counting every
import: at module level, inside functions and under ``TYPE_CHECKING`` alike, because a circle
that only a lazy import hides is still a circle in the design.
"""

from __future__ import annotations

import ast
import graphlib
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "tooldag"

# Bottom up. A module may import its own floor (without a circle) and the floors below it.
# Keep this in step with the README's picture.
FLOORS: list[set[str]] = [
    {"_files", "_sync", "_terminal", "errors", "issues"},  # ground
    {"events", "plan", "registry", "result"},  # contracts
    {"llm", "observe", "testing", "validate"},  # services
    {"execution", "mcp", "planning"},  # engines
    {"durable"},  # durable runs: the store and journal, and the runner over the executor
    {"agent"},  # orchestration
    {"evaluation"},  # goal sets run through the agent, measured (tooldag eval)
    {"ui", "web", "__main__"},  # faces: the terminal and the local web viewer
]
MAX_MODULES_PER_FOLDER = 12


def _modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _ancestors(name: str) -> Iterator[str]:
    parts = name.split(".")
    for i in range(2, len(parts)):  # tooldag itself, the public facade, is not counted
        yield ".".join(parts[:i])


def _imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The tooldag modules (and the packages their import runs first) that ``name`` imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            targets = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for target in targets:
            if target not in modules:
                continue
            found.add(target)
            # Importing a.b.c runs package a.b's __init__ first, unless we are inside a.b.
            found.update(p for p in _ancestors(target) if p != name and p not in _ancestors(name))
    found.discard(name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imported(name, path, modules) for name, path in modules.items()}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_module_imports_itself_in_a_circle() -> None:
    graph = _graph()
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        pytest.fail("import circle: " + " -> ".join(exc.args[1]))


def test_the_graph_sees_an_import_hidden_in_a_function() -> None:
    # The circle test is only as good as the graph: a lazy import inside a function counts.
    graph = _graph()
    assert "tooldag.llm.client" in graph["tooldag.ui.cli.chat_cmd"] | graph["tooldag.agent"]


def test_imports_only_point_down_the_floors() -> None:
    floor_of = {room: level for level, rooms in enumerate(FLOORS) for room in rooms}
    rooms = {_room(m) for m in _modules()} - {""}
    assert rooms <= set(floor_of), f"put {sorted(rooms - set(floor_of))} on a floor"
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in _graph().items()
        if _room(module)
        for target in targets
        if floor_of[_room(target)] > floor_of[_room(module)]
    )
    assert upward == []


@pytest.mark.parametrize(
    "folder", sorted({p.parent for p in SRC.rglob("*.py")}), ids=lambda p: p.name
)
def test_no_folder_holds_more_than_a_dozen_modules(folder: Path) -> None:
    modules = sorted(p.name for p in folder.glob("*.py"))
    assert len(modules) <= MAX_MODULES_PER_FOLDER, modules
