"""What a passing check keeps for a later notebook: the learner's own cell, as text.

Notebook 04's checks (``check_encoder``, ...) keep the cell that defined the learner's class in
``<checkpoint folder>/exercises/<exercise>.py`` when it passes, and forget it when it fails;
notebook 05 (:func:`~seq2seq_lib.exercises.nb05.learner_model`) runs those cells again and
trains the learner's model. A notebook cell's text is found through the code's file name:
IPython registers every cell in :mod:`linecache`, as Python does for a module's file.
"""

from __future__ import annotations

import linecache
import os
import tempfile
from pathlib import Path
from typing import Any

CHECKPOINT_ENV = "SEQ2SEQ_CHECKPOINTS"  # the variable seq2seq_lib.course.checkpoint_dir reads


def solutions_dir() -> Path:
    """Where kept solutions live: ``exercises/`` in the notebooks' checkpoint folder (the rule of
    :func:`seq2seq_lib.course.checkpoint_dir`: ``$SEQ2SEQ_CHECKPOINTS``, else ``checkpoints/``
    at the top of the course)."""
    if os.environ.get(CHECKPOINT_ENV):
        return Path(os.environ[CHECKPOINT_ENV]) / "exercises"
    here = Path.cwd()
    root = here.parent if here.name == "notebooks" else here
    return root / "checkpoints" / "exercises"


def _code_file(obj: Any) -> str | None:
    """The file name (or IPython cell name) the code of a function or class was compiled from."""
    code = getattr(obj, "__code__", None)
    if code is not None:
        return code.co_filename
    for member in vars(obj).values() if isinstance(obj, type) else ():
        member = getattr(member, "__func__", member)  # staticmethod, classmethod
        if getattr(member, "__code__", None) is not None:
            return member.__code__.co_filename
    return None


def cell_source(obj: Any) -> str | None:
    """The whole text of the notebook cell (or file) that defined ``obj``, or None."""
    filename = _code_file(obj)
    text = "".join(linecache.getlines(filename)) if filename else ""
    return text if text.strip() else None


def keep_solution(name: str, obj: Any, folder: Path | None = None) -> Path | None:
    """Write the cell that defined ``obj`` as exercise ``name``'s kept solution (atomically);
    None when its text cannot be found or written."""
    text = cell_source(obj)
    if text is None:
        return None
    folder = folder or solutions_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        path = folder / f"{name}.py"
        os.replace(tmp, path)
    except OSError:
        return None
    return path


def forget_solution(name: str, folder: Path | None = None) -> None:
    """Remove exercise ``name``'s kept solution, if there is one (its check failed since)."""
    try:
        ((folder or solutions_dir()) / f"{name}.py").unlink(missing_ok=True)
    except OSError:
        pass


def kept_solution(name: str, folder: Path | None = None) -> str | None:
    """The kept cell text of exercise ``name``, or None."""
    path = (folder or solutions_dir()) / f"{name}.py"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def remember(name: str, obj: Any, passed: bool, folder: Path | None = None) -> None:
    """After a check: keep the solution when it passed (and say so), forget it otherwise."""
    if not passed:
        forget_solution(name, folder)
        return
    kept = keep_solution(name, obj, folder)
    label = getattr(obj, "__name__", name)
    print(f"  已记下你的 {label}，笔记本 05 会训练它。" if kept else
          f"  （找不到 {label} 所在单元格的源代码，笔记本 05 会改用库里的模型。）")
