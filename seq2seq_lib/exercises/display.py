"""Source shown folded in a notebook (an HTML ``<details>`` block): the library's own code, or an
exercise's reference answer, *after* the exercise, so that the learner opens it only once their
own version passes."""

from __future__ import annotations

import html
import inspect
import textwrap
from dataclasses import dataclass
from typing import Any

from .harness import answer_source, get_exercise


@dataclass(frozen=True)
class Folded:
    """Source code a notebook shows folded: an HTML ``<details>`` block (plain text elsewhere)."""

    summary: str
    code: str

    def _repr_html_(self) -> str:
        return (f"<details><summary>{html.escape(self.summary)}</summary>"
                f"<pre><code class=\"language-python\">{html.escape(self.code)}</code></pre>"
                "</details>")

    def __repr__(self) -> str:
        return f"{self.summary}\n\n{self.code}"


def show_folded(*objects: Any, summary: str = "") -> Folded:
    """The library's own source of ``objects`` (classes, functions, methods), folded, e.g.
    ``show_folded(AdditiveAttention)`` after the attention exercise: open it once yours passes."""
    names = ", ".join(getattr(o, "__qualname__", type(o).__name__) for o in objects)
    code = "\n\n".join(textwrap.dedent(inspect.getsource(o)).rstrip() for o in objects)
    return Folded(summary or f"库里的源代码：{names}（点开看）", code)


def show_answer(name: str) -> Folded:
    """The reference answer of exercise ``name`` (:func:`answer_source`), folded."""
    ex = get_exercise(name)
    return Folded(f"参考答案：{ex.function}（先自己写，通过检查后再点开）", answer_source(name))
