"""Execute course notebooks: fast mode for the tests, or a full run that refreshes the outputs.

    python tests/nbrun.py notebooks/*.ipynb            # full run, outputs written back
    python tests/nbrun.py --fast notebooks/05_*.ipynb  # fast mode, nothing written

Cells tagged ``skip-fast`` are left out in fast mode (they stay in the notebook).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

SKIP_TAG = "skip-fast"
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


def run(path: Path, fast: bool, timeout: int = 900, env: dict[str, str] | None = None) -> float:
    """Execute ``path`` top to bottom with its folder as working directory; returns seconds.

    In fast mode the executed copy is discarded; otherwise the outputs are written back.
    """
    nb = nbformat.read(path, as_version=4)
    if fast:
        nb.cells = [c for c in nb.cells if SKIP_TAG not in c.metadata.get("tags", [])]
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
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--fast", action="store_true", help="fast mode; do not write outputs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="seq2seq-fast-") as tmp:
        env = {}
        if args.fast and not os.environ.get("SEQ2SEQ_CHECKPOINTS"):
            env["SEQ2SEQ_CHECKPOINTS"] = tmp  # tiny fast-mode models never replace real ones
        for path in args.notebooks:
            seconds = run(path, args.fast, env=env)
            print(f"{path.name}: {seconds:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
