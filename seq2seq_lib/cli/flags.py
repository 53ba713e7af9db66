"""Command-line flags made from the config dataclasses: every setting is declared once, in
:mod:`seq2seq_lib.config` (name, type, default, help), and its flag follows from it.

A flag's argparse default is :data:`argparse.SUPPRESS`, the sentinel: the parsed namespace holds
exactly the settings written on the command line, as ``"section.field"`` attributes, so the
layers below them (dataclass default < preset < config file) show through where no flag is given.
"""

from __future__ import annotations

import argparse
import re
import types
import typing
from dataclasses import MISSING, dataclass, fields
from functools import cache
from typing import Any

from ..config import ConfigError, DataConfig, ModelConfig, TrainConfig

SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
Values = dict[str, dict[str, Any]]  # section -> field name -> value


@dataclass(frozen=True)
class Setting:
    """One config field as the command line and config files see it."""

    section: str
    name: str
    flag: str | None  # None: config files only
    kind: type  # int, float, str or bool
    optional: bool  # None is a value
    choices: tuple[str, ...] | None
    default: Any  # the command line's default
    help: str
    metavar: str | None


def _kind(hint: Any) -> tuple[type, bool, tuple[str, ...] | None]:
    """(scalar type, None allowed, choices) of a field's resolved type hint."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Literal:
        return str, False, tuple(args)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        kind, _, choices = _kind(next(a for a in args if a is not type(None)))
        return kind, True, choices
    return hint, False, None


@cache
def settings(section: str) -> tuple[Setting, ...]:
    """The settings of one section (``data``, ``model``, ``train``), in declaration order."""
    cls = SECTIONS[section]
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        meta = f.metadata
        kind, optional, choices = _kind(hints[f.name])
        default = meta.get("cli_default", f.default if f.default is not MISSING else None)
        flag = meta.get("flag", _flag_name(f.name, kind, default))
        out.append(Setting(section, f.name, flag, kind, optional, meta.get("choices", choices),
                           default, meta.get("help", ""), meta.get("metavar")))
    return tuple(out)


def _flag_name(name: str, kind: type, default: Any) -> str:
    dashed = name.replace("_", "-")
    return f"--no-{dashed}" if kind is bool and default is True else f"--{dashed}"


def setting(section: str, name: str) -> Setting:
    return next(s for s in settings(section) if s.name == name)


def flag_of(name: str, section: str | None = None) -> str:
    """The flag of a field (by name; the first section that has it), or ``name`` without one."""
    for sec in [section] if section else list(SECTIONS):
        for s in settings(sec):
            if s.name == name and s.flag:
                return s.flag
    return name


def add_flags(group: Any, section: str, only: tuple[str, ...] | None = None,
              skip: tuple[str, ...] = ()) -> None:
    """Add the flags of ``section``'s settings (those in ``only``, minus ``skip``) to ``group``."""
    for s in settings(section):
        if s.flag is None or s.name in skip or (only is not None and s.name not in only):
            continue
        shown = "" if s.default is None or s.kind is bool else f" (default {s.default})"
        kwargs: dict[str, Any] = {"dest": f"{section}.{s.name}", "default": argparse.SUPPRESS,
                                  "help": s.help + shown}
        if s.kind is bool:
            kwargs["action"] = "store_const"
            kwargs["const"] = not s.default
        else:
            metavar = s.metavar or {int: "N", float: "X"}.get(s.kind, s.name.upper())
            kwargs.update(type=s.kind, choices=s.choices, metavar=None if s.choices else metavar)
        group.add_argument(s.flag, **kwargs)


def given(args: argparse.Namespace) -> Values:
    """The settings written on the command line, by section."""
    values: Values = {section: {} for section in SECTIONS}
    for dest, value in vars(args).items():
        section, dot, name = dest.partition(".")
        if dot and section in values:
            values[section][name] = value
    return values


def describe(exc: ConfigError, name_of: typing.Callable[[str], str] = flag_of) -> str:
    """A :class:`ConfigError` with its field names turned into flags (or file keys)."""
    names = (exc.field, *exc.also)
    message = re.sub(r"\b(" + "|".join(map(re.escape, names)) + r")\b",
                     lambda m: name_of(m.group(1)), exc.message)
    return f"{name_of(exc.field)} {message}"
