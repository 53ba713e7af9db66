"""The library's floors (ARCHITECTURE.md): no import circles, inference never reaches training,
attention imports no model module, the command line and the bench train with the training
layer's recipe. Read from the source (every import, also those inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "seq2seq_lib"
TRAINING = {"train", "trainer", "recipe", "parallel"}
NOTEBOOK_HELPERS = {"course", "widgets", "lesson", "exercises"}


ROOT_NODE = "__init__"  # the package root: it imports (nearly) every module
ROOT_METADATA = {"__version__"}  # set before the root imports anything: reading it is no import


def _node(name: str) -> str:
    """The graph node for a top-level name of the package: its module or subpackage, else the
    package root (a name the root re-exports, such as ``fit``)."""
    if (PACKAGE / f"{name}.py").exists() or (PACKAGE / name / "__init__.py").exists():
        return name
    return ROOT_NODE


def imported_modules(source: str, package: tuple[str, ...] = ()) -> set[str]:
    """The nodes of ``seq2seq_lib`` that ``source`` imports: top-level modules, subpackages, and
    :data:`ROOT_NODE` for ``from . import fit`` / ``from seq2seq_lib import fit`` /
    ``import seq2seq_lib``.

    :param package: where the source lives below ``seq2seq_lib`` (``("cli",)`` for
        ``seq2seq_lib/cli/train.py``), to resolve ``from .. import x``.
    """
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from .x import y, from . import x, from ..x import y
                base = list(package[: len(package) - node.level + 1])
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "seq2seq_lib":
                target = node.module.split(".")[1:]
            else:
                continue
            if target:
                found.add(_node(target[0]))
            else:  # from the package root itself
                found.update(_node(a.name) for a in node.names if a.name not in ROOT_METADATA)
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "seq2seq_lib":
                    found.add(_node(parts[1]) if len(parts) > 1 else ROOT_NODE)
    return found


def package_graph() -> dict[str, set[str]]:
    """Node → the nodes it imports; a subpackage is one node, the union of its files."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        node = ROOT_NODE if parts == ("__init__",) else parts[0]
        package = parts[:-1]
        imports = imported_modules(path.read_text(encoding="utf-8"), package)
        graph.setdefault(node, set()).update(imports - {node})
    return graph


GRAPH = package_graph()


def reachable(start: str, graph: dict[str, set[str]] = GRAPH) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), set()) - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def circles(graph: dict[str, set[str]] = GRAPH) -> list[str]:
    """The nodes that import themselves through others."""
    return [m for m in graph if m in reachable(m, graph)]


def inference_reaching_training(graph: dict[str, set[str]] = GRAPH) -> dict[str, set[str]]:
    """For each inference module that does, the training modules it reaches."""
    found = {m: TRAINING & reachable(m, graph) for m in ("decode", "translator", "device")}
    return {m: reached for m, reached in found.items() if reached}


def test_no_module_imports_itself_through_others():
    assert not circles(), f"import circles through {circles()}"


def test_attention_and_models_do_not_know_each_other():
    assert {"models", "builders"}.isdisjoint(reachable("attention"))
    assert {"attention", "builders"}.isdisjoint(reachable("models"))
    assert {"models", "attention"} <= GRAPH["builders"]


def test_inference_never_imports_training():
    assert not inference_reaching_training()


@pytest.mark.parametrize("source, package", [
    ("def f():\n    from . import fit\n", ()),  # a name the package root re-exports
    ("from seq2seq_lib import Trainer\n", ()),
    ("import seq2seq_lib\n", ()),
    ("from .. import fit\n", ("cache",)),  # from a subpackage's file
    ("from . import trainer\n", ()),  # the module itself
    ("from seq2seq_lib import trainer\n", ()),
])
def test_the_checker_sees_upward_imports_through_the_package_root(source, package):
    """``device`` importing training through the root, in any spelling, is caught twice: as a
    circle (the root imports ``device``) or as inference reaching training."""
    imports = imported_modules(source, package)
    assert imports in ({ROOT_NODE}, {"trainer"}), imports
    graph = {**GRAPH, "device": GRAPH["device"] | imports}
    assert "trainer" in inference_reaching_training(graph)["device"]
    if imports == {ROOT_NODE}:
        assert "device" in circles(graph)


def test_the_checker_leaves_the_version_and_other_packages_alone():
    assert imported_modules("from . import __version__\nimport torch\nfrom numpy import x\n") == set()
    assert imported_modules("from .vocab import Vocab\nfrom . import data\n") == {"vocab", "data"}
    assert imported_modules("from ..vocab import Vocab\nfrom .read import x\n", ("cache",)) == {
        "vocab", "cache"}


def test_the_command_line_and_the_bench_train_with_the_training_layer():
    assert NOTEBOOK_HELPERS.isdisjoint(reachable("cli"))
    assert "recipe" in GRAPH["cli"]
    benches = [ast.parse(p.read_text(encoding="utf-8")) for p in (ROOT / "bench").glob("*.py")]
    helpers = {f"seq2seq_lib.{m}" for m in NOTEBOOK_HELPERS}
    from_helpers = [f"{node.module}: {a.name}" for bench in benches for node in ast.walk(bench)
                    if isinstance(node, ast.ImportFrom) and node.module in helpers
                    for a in node.names]
    assert not from_helpers, "the bench imports the notebooks' helpers"


def test_subpackages_are_seen_whole():
    assert "trainer" in GRAPH and {"checkpoint", "train", "device"} <= GRAPH["trainer"]
    assert "trainer" in GRAPH["recipe"]
