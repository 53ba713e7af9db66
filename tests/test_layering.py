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


def _module_of(path: Path) -> str:
    """``seq2seq_lib/x.py`` and every file of the subpackage ``seq2seq_lib/x/`` are module x."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _exists(name: str) -> bool:
    return (PACKAGE / f"{name}.py").exists() or (PACKAGE / name / "__init__.py").exists()


def imported_modules(path: Path) -> set[str]:
    """The ``seq2seq_lib`` modules ``path`` imports (``seq2seq_lib`` itself left out); in a
    subpackage, ``from .y`` is its own file and ``from ..y`` the package's module y."""
    root_level = len(path.relative_to(PACKAGE).parts)  # 1 in the package, 2 in a subpackage
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level == root_level and node.module:  # from .x import y
                found.add(node.module.split(".")[0])
            elif node.level == root_level:  # from . import x
                found.update(a.name for a in node.names if _exists(a.name))
            elif node.module and node.module.startswith("seq2seq_lib."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names
                         if a.name.startswith("seq2seq_lib."))
    return found - {_module_of(path)}


GRAPH: dict[str, set[str]] = {}
for _path in sorted(PACKAGE.glob("*.py")) + sorted(PACKAGE.glob("*/*.py")):
    if _path.name != "__init__.py" or _path.parent != PACKAGE:
        GRAPH.setdefault(_module_of(_path), set()).update(imported_modules(_path))


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
