"""Every notebook runs in fast mode (its exercises solved with the reference answers, every check
passing), and every committed notebook carries a clean full run (its exercises unsolved)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbrun import PASSED, exercise_cells, printed, run

from seq2seq_lib.exercises import EXERCISES

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
IDS = [p.stem for p in NOTEBOOKS]


@pytest.fixture(scope="module")
def shared_checkpoints(tmp_path_factory):
    # one folder for the whole run, so a later notebook finds an earlier one's checkpoint
    return tmp_path_factory.mktemp("checkpoints")


def expected_exercises(path: Path) -> set[str]:
    """The exercises of ``seq2seq_lib.exercises`` that belong to this notebook (by its number)."""
    return {ex.name for ex in EXERCISES.values() if ex.notebook == path.name[:2]}


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no numbered notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs_in_fast_mode(path, shared_checkpoints):
    result = run(path, fast=True, timeout=600,
                 env={"SEQ2SEQ_CHECKPOINTS": str(shared_checkpoints)})
    assert set(result.checks) == expected_exercises(path), "exercise cells with check cells"
    for name, text in result.checks.items():  # run with the reference answers: all pass
        assert PASSED in text, f"exercise {name}: the check printed {text!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_exercises_are_committed_unsolved(path):
    nb = nbformat.read(path, as_version=4)
    found = exercise_cells(nb)
    assert set(found) == expected_exercises(path)
    for name, (cell, check) in found.items():
        assert "raise NotImplementedError" in nb.cells[cell].source, f"{name}: not a stub"
        text = printed(nb.cells[check])
        assert "还没有实现" in text and PASSED not in text, f"{name}: the check printed {text!r}"


MACHINE_PATH = re.compile(r"(/(?:home|root|tmp|work|Users)/|[A-Z]:\\\\Users)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_outputs_are_one_clean_run(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    counts = [c.get("execution_count") for c in code]
    assert counts == list(range(1, len(code) + 1)), f"execution counts {counts}"
    for cell in code:
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", f"error output: {out.get('ename')}"
    text = path.read_text(encoding="utf-8")
    assert not MACHINE_PATH.search(text), "machine-specific path in the notebook"
    assert "missing from font" not in text, "a figure drew Chinese text without the CJK font"
    assert "widgets" not in nb["metadata"]
    assert nb["cells"][0]["cell_type"] == "markdown"
    first = "".join(nb["cells"][0]["source"])
    assert "学习目标" in first, "the first cell states the learning goals"
