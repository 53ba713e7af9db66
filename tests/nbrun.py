"""Execute course notebooks: fast mode for the tests, or a full run that refreshes the outputs.

    python tests/nbrun.py notebooks/*.ipynb            # full run, outputs written back
    python tests/nbrun.py --fast notebooks/05_*.ipynb  # fast mode, nothing written

Cells tagged ``skip-fast`` are left out in fast mode (they stay in the notebook).

The committed notebooks show every "write it yourself" exercise unsolved (the stub raises
``NotImplementedError`` and its check prints a hint). Fast mode runs them solved: each cell that
defines an exercise's function or class (``seq2seq_lib.exercises.exercise_for_cell``) gets the reference
answer (``answer_source``) instead, and the text its check cell prints is returned, so the tests
can expect the checker's success mark.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from seq2seq_lib.exercises import answer_source, exercise_for_cell

SKIP_TAG = "skip-fast"
PASSED = "✓"  # what a checker prints when every case passes
NOISY_CELL_METADATA = ("execution", "collapsed", "scrolled", "ExecuteTime")


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop metadata that changes on every run (timings, widget state, kernel details)."""
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata.get("language_info", {}).pop("version", None)
    for cell in nb.cells:
        for key in NOISY_CELL_METADATA:
            cell.metadata.pop(key, None)
    return nb


def exercise_cells(nb: nbformat.NotebookNode) -> dict[str, tuple[int, int]]:
    """Each exercise in ``nb``: its name → (index of the cell defining the function, index of
    the later code cell that calls its checker)."""
    found = {}
    for i, cell in enumerate(nb.cells):
        ex = exercise_for_cell(cell.source) if cell.cell_type == "code" else None
        if ex is None:
            continue
        call = f"{ex.check.__name__}({ex.function})"
        check = next((j for j in range(i + 1, len(nb.cells)) if nb.cells[j].cell_type == "code"
                      and call in nb.cells[j].source), None)
        if check is None:
            raise ValueError(f"exercise {ex.name}: no later cell calls {call}")
        found[ex.name] = (i, check)
    return found


def printed(cell: nbformat.NotebookNode) -> str:
    """What a code cell printed (its stream outputs)."""
    return "".join(out.get("text", "") for out in cell.get("outputs", [])
                   if out.get("output_type") == "stream")


@dataclass
class Run:
    """One executed notebook: seconds, and what each exercise's check cell printed."""

    seconds: float
    checks: dict[str, str] = field(default_factory=dict)

    @property
    def failed_checks(self) -> list[str]:
        return [name for name, text in self.checks.items() if PASSED not in text]


def run(path: Path, fast: bool, timeout: int = 900, env: dict[str, str] | None = None) -> Run:
    """Execute ``path`` top to bottom with its folder as working directory.

    In fast mode the exercises run with their reference answers and the executed copy is
    discarded; otherwise (stubs unsolved) the outputs are written back.
    """
    nb = nbformat.read(path, as_version=4)
    if fast:
        nb.cells = [c for c in nb.cells if SKIP_TAG not in c.metadata.get("tags", [])]
    exercises = exercise_cells(nb)
    if fast:
        for name, (cell, _) in exercises.items():
            nb.cells[cell].source = answer_source(name)
    old_env = dict(os.environ)
    os.environ.update(env or {})
    if fast:
        os.environ["SEQ2SEQ_FAST"] = "1"
    else:
        os.environ.pop("SEQ2SEQ_FAST", None)
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        start = time.perf_counter()
        client.execute()
        seconds = time.perf_counter() - start
    finally:
        os.environ.clear()
        os.environ.update(old_env)
    if not fast:
        nbformat.write(clean(nb), path)
    return Run(seconds, {name: printed(nb.cells[check]) for name, (_, check) in exercises.items()})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--fast", action="store_true", help="fast mode; do not write outputs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="seq2seq-fast-") as tmp:
        env = {}
        if args.fast and not os.environ.get("SEQ2SEQ_CHECKPOINTS"):
            env["SEQ2SEQ_CHECKPOINTS"] = tmp  # tiny fast-mode models never replace real ones
        failed = []
        for path in args.notebooks:
            result = run(path, args.fast, env=env)
            marks = " ".join(f"{name} {'✗' if name in result.failed_checks else PASSED}"
                             for name in result.checks) if args.fast else ""
            print(f"{path.name}: {result.seconds:.0f} s" + (f" · exercises: {marks}" if marks else ""),
                  flush=True)
            failed += [f"{path.name}: {name}" for name in result.failed_checks] if args.fast else []
    if failed:
        print("exercise checks that did not pass with the reference answers:", *failed, sep="\n  ")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
