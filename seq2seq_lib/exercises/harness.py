"""The shared machinery of the exercises: cases, comparison, Chinese reports, the registry.

A checker builds a list of :class:`_Case` and hands it to :func:`_check` with the learner's
function (or class) and the reference. :func:`_check` prints, in Chinese, the first case that
fails with what was expected and what came back, or one short line when all pass; it returns
True or False and never raises. A solution that still raises ``NotImplementedError`` (the
unsolved exercise as the notebooks show it) gets a hint; any other error is reported with its
type and message. The random state of PyTorch is saved and restored around every check.

Each notebook's module registers its exercises (:func:`register`); :func:`answer_source`,
:func:`stub_source` and :func:`exercise_for_cell` serve the notebooks and the test harness.
"""

from __future__ import annotations

import inspect
import math
import re
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .sources import mark_unused_imports, renamed, stub

# ---------------------------------------------------------------------------------------------
# Cases, comparison, messages
# ---------------------------------------------------------------------------------------------


@dataclass
class _Case:
    """One check: its Chinese name, how to call a solution on fresh inputs, and what it tests."""

    name: str
    run: Callable[[Callable], Any]  # run(fn) calls fn on fresh copies of the inputs
    inputs: str  # the inputs, compactly, for the failure message
    point: str = ""  # the rule the case is about, shown when it fails
    expect: Callable[[], Any] | None = None  # the expected value, when not run(reference)
    extra: Callable[[Any], str | None] | None = None  # a further check on the learner's result


class LearnerMistake(Exception):
    """Raised inside a case when the learner's code is found wrong before any value is compared
    (a missing attribute, weights that do not load): the message, in Chinese, is the report."""


def _fresh(value: Any) -> Any:
    """A copy the learner may modify in place without changing the next run's inputs."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone().requires_grad_(value.requires_grad)
    if isinstance(value, list):
        return [_fresh(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_fresh(v) for v in value)
    return value


def _case(name: str, point: str, names: Sequence[str], args: Sequence[Any], **kw: Any) -> _Case:
    """A case that calls ``fn(*args)`` (on copies), showing the arguments by name."""
    shown = ", ".join(f"{n}={_fmt(a)}" for n, a in zip(names, args))
    return _Case(name, lambda fn: fn(*_fresh(tuple(args))), shown, point, **kw)
def _fmt(x: Any, limit: int = 260) -> str:
    """A compact, one-line view of a value: tensors with shape, dtype and (rounded) values."""
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu()
        if t.is_floating_point():
            t = t.double().round(decimals=4)
        if t.dim() == 0:
            text = f"tensor({t.item()})"
        else:
            body = t.tolist() if t.numel() <= 24 else str(t.flatten()[:6].tolist())[:-1] + ", …]"
            text = f"tensor{list(t.shape)} {str(x.dtype).replace('torch.', '')} {body}"
    elif isinstance(x, float):
        text = repr(round(x, 6))
    elif isinstance(x, tuple):
        text = "(" + ", ".join(_fmt(v, limit) for v in x) + ")"
    elif isinstance(x, dict):
        text = "{" + ", ".join(f"{k}: {_fmt(v, limit)}" for k, v in x.items()) + "}"
    elif isinstance(x, list) and any(isinstance(v, torch.Tensor) for v in x):
        text = "[" + ", ".join(_fmt(v, limit) for v in x) + "]"
    else:
        text = repr(x)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _compare(expected: Any, got: Any, atol: float = 1e-5) -> str | None:
    """None when ``got`` matches ``expected``, otherwise what differs, in Chinese."""
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"应返回 torch.Tensor，得到的是 {type(got).__name__}"
        if tuple(got.shape) != tuple(expected.shape):
            return f"形状应为 {list(expected.shape)}，得到 {list(got.shape)}"
        e, g = expected.detach().cpu(), got.detach().cpu()
        if e.is_floating_point():
            if not g.is_floating_point():
                return f"应是浮点张量，得到 {g.dtype}"
            e, g = e.double(), g.double()
            if bool(g.isnan().any()) and not bool(e.isnan().any()):
                return "结果里有 nan"
            if torch.allclose(g, e, rtol=0.0, atol=atol, equal_nan=True):
                return None
            wrong = ~torch.isclose(g, e, rtol=0.0, atol=atol, equal_nan=True)
            gap = float((g - e)[wrong].abs().max())
            return f"有 {int(wrong.sum())} 个位置不同，最大相差 {gap:.3g}"
        if g.dtype != e.dtype:
            return f"dtype 应为 {e.dtype}，得到 {g.dtype}"
        return None if torch.equal(g, e) else f"有 {int((g != e).sum())} 个位置的值不同"
    if isinstance(expected, tuple):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            return f"应返回 {len(expected)} 个值（一个 tuple），得到 {_fmt(got, 60)}"
        for i, (e, g) in enumerate(zip(expected, got), 1):
            problem = _compare(e, g, atol)
            if problem:
                return f"第 {i} 个返回值：{problem}"
        return None
    if isinstance(expected, dict):  # named results: report the first name that differs
        if not isinstance(got, dict):
            return f"应返回 {', '.join(expected)}，得到的是 {type(got).__name__}"
        for key, e in expected.items():
            if key not in got:
                return f"缺少 {key}"
            problem = _compare(e, got[key], atol)
            if problem:
                return f"{key}：{problem}"
        return None
    if isinstance(expected, float):
        try:
            value = float(got)
        except (TypeError, ValueError):
            return f"应返回一个数，得到的是 {type(got).__name__}"
        if math.isnan(value) or abs(value - expected) > atol:
            return f"数值不同（允许的误差是 {atol:g}）"
        return None
    if isinstance(expected, list):
        if not isinstance(got, (list, tuple)):
            return f"应返回一个 list，得到的是 {type(got).__name__}"
        return None if list(got) == expected else "结果不同"
    return None if got == expected else "结果不同"


def _differing(expected: Any, got: Any, atol: float) -> tuple[Any, Any]:
    """For named results, the first pair that differs (what the report shows); else both."""
    if isinstance(expected, dict) and isinstance(got, dict):
        for key, e in expected.items():
            if key in got and _compare(e, got[key], atol):
                return e, got[key]
    return expected, got


def _where(expected: Any, got: Any) -> list[str]:
    """For two float tensors of one shape too large to print: where they differ most."""
    if not (isinstance(expected, torch.Tensor) and isinstance(got, torch.Tensor)
            and expected.is_floating_point() and got.is_floating_point()
            and expected.shape == got.shape and expected.numel() > 24):
        return []
    gap = (got.detach().double().cpu() - expected.detach().double().cpu()).abs().nan_to_num(1e30)
    at = [int(i) for i in torch.unravel_index(gap.argmax(), gap.shape)]
    e, g = float(expected[tuple(at)]), float(got[tuple(at)])
    return [f"相差最大的位置 {at}：期望 {e:.4g}，得到 {g:.4g}"]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    message = message if len(message) <= 200 else message[:199] + "…"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _report(index: int, total: int, case: _Case, problem: str, lines: Sequence[str] = ()) -> None:
    out = [f"✗ 用例 {index}/{total}「{case.name}」没有通过：{problem}", f"  输入：{case.inputs}"]
    out += [f"  {line}" for line in lines]
    if case.point:
        out.append(f"  要点：{case.point}")
    print("\n".join(out))


def _check(fn: Callable, hint: str, make_cases: Callable[[], list[_Case]],
           reference: Callable | None = None, atol: float = 1e-5) -> bool:
    """Run ``fn`` case by case against ``reference``; print the first failure or one ✓ line."""
    name = getattr(fn, "__name__", "你的函数")
    if not callable(fn):
        print(f"✗ 检查需要一个函数（或类），得到的是 {type(fn).__name__}")
        return False
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is many times faster on a busy CPU
    try:
        return _run_cases(fn, name, hint, make_cases, reference, atol)
    finally:
        torch.set_num_threads(threads)


def _run_cases(fn: Callable, name: str, hint: str, make_cases: Callable[[], list[_Case]],
               reference: Callable | None, atol: float) -> bool:
    """:func:`_check`'s loop: each case on the reference and on ``fn``, the first failure."""
    with torch.random.fork_rng(devices=[]):  # the learner's random state stays as it was
        torch.manual_seed(0)
        cases = make_cases()
        for i, case in enumerate(cases, 1):
            expected = case.expect() if case.expect else case.run(reference)
            try:
                got = case.run(fn)
            except NotImplementedError:
                print(f"✗ {name} 还没有实现（它抛出了 NotImplementedError）。\n  要做的：{hint}")
                return False
            except LearnerMistake as exc:
                _report(i, len(cases), case, str(exc))
                return False
            except Exception as exc:  # the learner's bug, reported without a traceback
                _report(i, len(cases), case, f"运行时出错 {_one_line(exc)}")
                return False
            try:
                problem = _compare(expected, got, atol) or (case.extra(got) if case.extra else None)
            except Exception as exc:
                problem = f"返回值无法检查（{_one_line(exc)}）"
            if problem:
                expected, got = _differing(expected, got, atol)
                lines = [f"期望：{_fmt(expected)}", f"得到：{_fmt(got)}", *_where(expected, got)]
                _report(i, len(cases), case, problem, lines)
                return False
    print(f"✓ 全部 {len(cases)} 个用例通过")
    return True



# ---------------------------------------------------------------------------------------------
# The registry, answers and stubs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exercise:
    """One self-checking exercise.

    ``function``: the name the notebook's exercise cell defines (a function or a class);
    ``check``: its checker; ``answer``: the reference solution (its source, renamed to
    ``function``, is the answer a notebook can show); ``imports``: what that source needs to
    run on its own; ``helpers``: the functions the answer calls, shown after it (the library
    uses the same ones).
    """

    name: str
    notebook: str
    function: str
    check: Callable[[Callable], bool]
    answer: Callable
    imports: str
    helpers: tuple[Callable, ...] = ()


EXERCISES: dict[str, Exercise] = {}  # filled by the notebooks' modules, in notebook order


def register(*exercises: Exercise) -> None:
    """Add exercises to :data:`EXERCISES`; each notebook's module does, when it is imported."""
    for ex in exercises:
        if ex.name in EXERCISES:
            raise ValueError(f"exercise {ex.name!r} is registered twice")
        EXERCISES[ex.name] = ex


def get_exercise(name: str) -> Exercise:
    """The exercise called ``name`` (``"build_vocab"``) or whose function is ``name``
    (``"my_build_vocab"``)."""
    for ex in EXERCISES.values():
        if name in (ex.name, ex.function):
            return ex
    known = ", ".join(f"{ex.name} ({ex.function})" for ex in EXERCISES.values())
    raise KeyError(f"no exercise {name!r}; the exercises are: {known}")


def _renamed_source(ex: Exercise) -> str:
    """The answer's source, defining the notebook's name ``ex.function``."""
    return renamed(textwrap.dedent(inspect.getsource(ex.answer)), ex.function)


def answer_source(name: str) -> str:
    """Self-contained source of the reference solution, defining the notebook's name.

    ``exec(answer_source("build_vocab"), ns)`` puts ``my_build_vocab`` into ``ns``.
    """
    ex = get_exercise(name)
    helpers = "".join(f"\n\n{textwrap.dedent(inspect.getsource(h))}" for h in ex.helpers)
    return f"{ex.imports}\n\n\n{_renamed_source(ex)}{helpers}"


def stub_source(name: str) -> str:
    """The unsolved exercise cell: the answer's signature and docstring (for a class: its
    docstring, attributes and every method's signature and docstring), each body replaced by
    ``raise NotImplementedError`` (the checker turns that into a hint, not an error); imports
    only the solution will use are marked for the linter."""
    ex = get_exercise(name)
    body = stub(_renamed_source(ex))
    return f"{mark_unused_imports(ex.imports, body)}\n\n\n{body}"


def exercise_for_cell(source: str) -> Exercise | None:
    """The exercise whose function or class a notebook cell defines (``def my_build_vocab(``,
    ``class MyEncoder(``), or None.

    A test harness replaces such a cell's source with :func:`answer_source` and expects the
    next cell's check to pass.
    """
    for ex in EXERCISES.values():
        if re.search(rf"^\s*(?:def|class) {ex.function}\b\s*[(:]", source, flags=re.MULTILINE):
            return ex
    return None
