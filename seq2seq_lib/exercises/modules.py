"""Checking a module the learner wrote: load the library's weights into it by name, and read
what it returns; every mismatch becomes a :class:`~.harness.LearnerMistake` with a Chinese
message that the checker prints as the failing case's report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .harness import LearnerMistake, _fmt


def _load_weights(mine: Any, state: dict[str, torch.Tensor], names: str) -> None:
    """Load the library's ``state`` into the learner's module, or raise :class:`LearnerMistake`
    saying which parameter names or shapes differ (``names``: the attributes the task fixes)."""
    if not isinstance(mine, torch.nn.Module):
        raise LearnerMistake(f"应是 nn.Module 的子类，得到的是 {type(mine).__name__}")
    theirs = mine.state_dict()
    missing = [k for k in state if k not in theirs]
    unexpected = [k for k in theirs if k not in state]
    if missing or unexpected:
        raise LearnerMistake(f"参数名和库里的不同（属性要叫 {names}）：缺少 {missing or '无'}，"
                             f"多出 {unexpected or '无'}")
    for key, value in state.items():
        if tuple(theirs[key].shape) != tuple(value.shape):
            raise LearnerMistake(f"参数 {key} 的形状应为 {list(value.shape)}，"
                                 f"得到 {list(theirs[key].shape)}")
    mine.load_state_dict(state)


def _fields(got: Any, names: Sequence[str], what: str) -> dict[str, Any]:
    """The named fields of a returned object (``Encoded``), or :class:`LearnerMistake`."""
    if not all(hasattr(got, n) for n in names):
        raise LearnerMistake(f"应返回 {what}，得到的是 {type(got).__name__}")
    return {n: getattr(got, n) for n in names}


def _unpack(got: Any, n: int, what: str) -> tuple[Any, ...]:
    """A returned tuple of ``n`` values, or :class:`LearnerMistake`."""
    if not isinstance(got, (tuple, list)) or len(got) != n:
        raise LearnerMistake(f"应返回 {what}（{n} 个值），得到的是 {_fmt(got, 80)}")
    return tuple(got)
