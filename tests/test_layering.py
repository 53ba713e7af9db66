"""The library's floors (ARCHITECTURE.md): no import circles, inference never reaches training,
attention imports no model module, the command line and the bench train with the training
layer's recipe. Read from the source (every import, also those inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "seq2seq_lib"
TRAINING = {"train", "trainer", "recipe", "parallel"}
NOTEBOOK_HELPERS = {"course", "widgets", "lesson", "exercises"}


def is_module(name: str) -> bool:
    """Whether ``seq2seq_lib.name`` is a module or a subpackage of the library."""
    return (PACKAGE / f"{name}.py").exists() or (PACKAGE / name / "__init__.py").exists()


def imported_modules(path: Path) -> set[str]:
    """The ``seq2seq_lib`` modules ``path`` imports (``seq2seq_lib`` itself left out; in a
    subpackage such as ``trainer/``, its imports of its own parts too)."""
    here = path.relative_to(PACKAGE).parent.parts  # (): a top-level module; ("trainer",)
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:  # from .x import y, from .. import x
            names = [*here[: len(here) - node.level + 1], *(node.module or "").split(".")]
            names = [n for n in names if n]
            if names:
                found.add(names[0])
            else:  # from . import x, at the package root
                found.update(a.name for a in node.names if is_module(a.name))
        elif isinstance(node, ast.ImportFrom):
            if node.module and node.module.startswith("seq2seq_lib."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names
                         if a.name.startswith("seq2seq_lib."))
    return found - set(here[:1])


def module_graph() -> dict[str, set[str]]:
    """Every top-level module and subpackage of the library, with what it imports."""
    graph = {p.stem: imported_modules(p) for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    for init in PACKAGE.glob("*/__init__.py"):
        graph[init.parent.name] = set().union(*map(imported_modules, init.parent.rglob("*.py")))
    return graph


GRAPH = module_graph()


def test_subpackages_are_seen_whole():
    assert "trainer" in GRAPH and {"checkpoint", "train", "device"} <= GRAPH["trainer"]
    assert "trainer" in GRAPH["recipe"]


def reachable(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in GRAPH.get(todo.pop(), set()) - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_no_module_imports_itself_through_others():
    circles = [m for m in GRAPH if m in reachable(m)]
    assert not circles, f"import circles through {circles}"


def test_attention_and_models_do_not_know_each_other():
    assert {"models", "builders"}.isdisjoint(reachable("attention"))
    assert {"attention", "builders"}.isdisjoint(reachable("models"))
    assert {"models", "attention"} <= GRAPH["builders"]


def test_inference_never_imports_training():
    for module in ("decode", "translator", "device"):
        assert TRAINING.isdisjoint(reachable(module)), module


def test_the_command_line_and_the_bench_train_with_the_training_layer():
    assert NOTEBOOK_HELPERS.isdisjoint(reachable("cli"))
    assert "recipe" in GRAPH["cli"]
    benches = [ast.parse(p.read_text(encoding="utf-8")) for p in (ROOT / "bench").glob("*.py")]
    from_course = {a.name for bench in benches for node in ast.walk(bench)
                   if isinstance(node, ast.ImportFrom) and node.module == "seq2seq_lib.course"
                   for a in node.names}
    assert from_course.isdisjoint({"train_translator", "new_model", "make_loaders"})
