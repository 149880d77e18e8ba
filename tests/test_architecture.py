"""The layering rules of docs/architecture.md, checked on the AST of every module of the package:
imports point one way (core <- models, storage <- indexer <- search), there is no import cycle, and
exactly one module writes face rows, vectors and index snapshots."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import REPO

LAYERS = ("picsort_local", "models", "storage", "indexer", "search")
ALLOWED: dict[str, set[str]] = {
    "picsort_local": set(),
    "models": {"picsort_local"},
    "storage": {"picsort_local"},
    "indexer": {"picsort_local", "models", "storage"},
    "search": {"picsort_local", "models", "storage", "indexer"},
}
PROJECT = set(LAYERS) | {"benchmarks", "tests", "scripts"}
FACE_STORE = "indexer/faces.py"
# Calls that write face rows or index snapshots: only the face store may make them (the repositories and
# the snapshot store that define them are not calls).
FACE_WRITES = {"insert_pending", "reset_photos"}
FACE_WRITES_ON = {("faces", "commit"), ("photos", "delete"), ("rekognition", "delete_faces")}


def modules() -> Iterator[tuple[str, Path]]:
    for layer in LAYERS:
        for path in sorted((REPO / layer).rglob("*.py")):
            yield layer, path


def imported(tree: ast.AST) -> Iterator[tuple[str, int]]:
    """(module name, line) of every import, including those inside functions."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, node.lineno


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_imports_point_down_the_layers() -> None:
    wrong = []
    for layer, path in modules():
        for name, line in imported(ast.parse(path.read_text(encoding="utf-8"))):
            top = name.split(".")[0]
            if top in PROJECT and top != layer and top not in ALLOWED[layer]:
                wrong.append(f"{path.relative_to(REPO)}:{line} imports {name}")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def _top_level_imports(tree: ast.Module) -> Iterator[str]:
    """Imports executed when the module loads (not inside functions nor `if TYPE_CHECKING`)."""
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield from (name for name, _ in imported(node))


def test_imports_are_absolute() -> None:
    """Relative imports would hide a module's layer from the checks above."""
    relative = [f"{path.relative_to(REPO)}:{node.lineno}" for _, path in modules()
                for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                if isinstance(node, ast.ImportFrom) and node.level > 0]
    assert not relative, f"relative imports: {relative}"


def test_no_import_cycle() -> None:
    known = {module_name(path): path for _, path in modules()}
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        targets = set()
        for target in _top_level_imports(ast.parse(path.read_text(encoding="utf-8"))):
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                targets.add(target)
        graph[name] = targets
    done: set[str] = set()

    def find_cycle(node: str, path: list[str]) -> list[str]:
        if node in path:
            return [*path[path.index(node):], node]
        if node in done:
            return []
        for nxt in sorted(graph[node]):
            found = find_cycle(nxt, [*path, node])
            if found:
                return found
        done.add(node)
        return []

    cycles = [c for c in (find_cycle(start, []) for start in sorted(graph)) if c]
    assert not cycles, "import cycle: " + " -> ".join(cycles[0])


def _face_writes(tree: ast.AST) -> Iterator[tuple[str, int]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr, owner = node.func.attr, node.func.value
            owner_name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if attr in FACE_WRITES or (owner_name, attr) in FACE_WRITES_ON:
                yield f"{owner_name}.{attr}", node.lineno
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "IndexStore":
            yield "IndexStore(...)", node.lineno


def test_only_the_face_store_writes_faces_and_snapshots() -> None:
    writers = {}
    for _, path in modules():
        rel = path.relative_to(REPO).as_posix()
        found = list(_face_writes(ast.parse(path.read_text(encoding="utf-8"))))
        if found:
            writers[rel] = found
    assert FACE_STORE in writers, "the face store no longer writes faces: update this test"
    others = {k: v for k, v in writers.items() if k != FACE_STORE}
    assert not others, f"face rows or snapshots written outside {FACE_STORE}: {others}"


@pytest.mark.parametrize("layer", LAYERS)
def test_every_layer_has_modules(layer: str) -> None:
    assert any((REPO / layer).rglob("*.py")), layer
