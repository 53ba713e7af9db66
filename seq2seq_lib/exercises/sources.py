"""Exercise source rewritten with :mod:`ast`: an answer renamed for the notebook, and its stub
(signatures and docstrings, bodies ``raise NotImplementedError``). Nothing here knows the
registry; :mod:`.harness` applies these to the registered answers."""

from __future__ import annotations

import ast
import re

SIGNATURE_WIDTH = 96  # the longest signature line a renamed answer gets (ruff allows 100)


def _parameters(func: ast.FunctionDef, source: str) -> list[str]:
    """The parameters of ``func`` as written in ``source`` (annotations and defaults kept)."""
    args = func.args

    def spelled(arg: ast.arg, default: ast.expr | None, prefix: str = "") -> str:
        text = prefix + (ast.get_source_segment(source, arg) or arg.arg)
        if default is not None:
            glue = " = " if arg.annotation is not None else "="
            text += glue + (ast.get_source_segment(source, default) or ast.unparse(default))
        return text

    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    out = [spelled(a, d) for a, d in zip(positional, defaults)]
    if args.posonlyargs:
        out.insert(len(args.posonlyargs), "/")
    if args.vararg:
        out.append(spelled(args.vararg, None, "*"))
    elif args.kwonlyargs:
        out.append("*")
    out += [spelled(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults)]
    if args.kwarg:
        out.append(spelled(args.kwarg, None, "**"))
    return out


def _signature(func: ast.FunctionDef, source: str, name: str) -> list[str]:
    """``def name(...) -> ...:`` for ``func``, its parameters wrapped under the parenthesis."""
    head = f"{'async ' if isinstance(func, ast.AsyncFunctionDef) else ''}def {name}("
    pad = " " * len(head)
    returns = func.returns
    closing = "):" if returns is None else (
        f") -> {ast.get_source_segment(source, returns) or ast.unparse(returns)}:")
    params = _parameters(func, source)
    pieces = [p + "," for p in params[:-1]] + [(params[-1] if params else "") + closing]
    lines, line = [], head
    for piece in pieces:  # the closing parenthesis stays with the last parameter
        if line not in (head, pad) and len(line) + 1 + len(piece) > SIGNATURE_WIDTH:
            lines.append(line)
            line = pad
        line += ("" if line in (head, pad) else " ") + piece
    return lines + [line]


_DEFINITION = re.compile(r"(?:async\s+def|def|class)\s+(\w+)")


def renamed(source: str, name: str) -> str:
    """``source`` (one top-level ``def`` or ``class``) defining ``name`` instead: read with
    :mod:`ast`; a class's name is replaced where the node says it is, a function's signature is
    re-written from its parameters' own source and wrapped under the new name."""
    node = ast.parse(source).body[0]
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        raise TypeError(f"not a function or class: {source.splitlines()[0]!r}")
    lines = source.splitlines()
    first = node.lineno - 1  # the def / class line (decorators sit above it)
    if isinstance(node, ast.ClassDef):  # the name alone changes: nothing is aligned to it
        found = _DEFINITION.match(lines[first], node.col_offset)
        assert found is not None and found.group(1) == node.name
        lines[first] = lines[first][: found.start(1)] + name + lines[first][found.end(1):]
        return "\n".join(lines) + "\n"
    body = node.body[0].lineno - 1  # the signature ends on the line before the body
    return "\n".join(lines[:first] + _signature(node, source, name) + lines[body:]) + "\n"


FUNCTION_TODO = '"write this function, then run the check below"'
METHOD_TODO = '"write this method, then run the check below"'


def _stub_function(node: ast.FunctionDef, lines: list[str], todo: str) -> list[str]:
    """A function's decorators, signature and docstring, then ``raise NotImplementedError``."""
    start = min([d.lineno for d in node.decorator_list] + [node.lineno]) - 1
    first = node.body[0]
    has_doc = ast.get_docstring(node) is not None
    head = lines[start : first.end_lineno if has_doc else first.lineno - 1]
    indent = " " * (node.col_offset + 4)
    return head + [f"{indent}raise NotImplementedError({todo})"]


def _stub_class(node: ast.ClassDef, lines: list[str]) -> list[str]:
    """A class's statement and docstring, its attributes as written, and every method as a
    stub (signature and docstring, then ``raise NotImplementedError``)."""
    start = min([d.lineno for d in node.decorator_list] + [node.lineno]) - 1
    out = lines[start : node.body[0].lineno - 1]  # decorators and the class line(s)
    for i, stmt in enumerate(node.body):
        first = min([d.lineno for d in getattr(stmt, "decorator_list", [])] + [stmt.lineno])
        if i and not lines[first - 2].strip():  # the blank line the answer has here
            out.append("")
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out += _stub_function(stmt, lines, METHOD_TODO)
        else:  # the docstring, class attributes
            out += lines[stmt.lineno - 1 : stmt.end_lineno]
    return out


UNUSED_IMPORT = "  # noqa: F401 (for your solution)"


def mark_unused_imports(imports: str, body: str) -> str:
    """``imports`` with each line that the stub ``body`` does not use marked for the linter
    (the learner's solution will use it; the stub cell must still pass ruff)."""
    used = {n.id for n in ast.walk(ast.parse(body)) if isinstance(n, ast.Name)}
    out = []
    for line in imports.splitlines():
        tree = ast.parse(line) if line.strip() else None
        names = [(a.asname or a.name).split(".")[0] for n in (tree.body if tree else [])
                 if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names]
        out.append(line + UNUSED_IMPORT if any(n not in used for n in names) else line)
    return "\n".join(out)


def stub(source: str) -> str:
    """The stub of ``source`` (one documented top-level ``def`` or ``class``): a function's
    signature and docstring, a class's statement, docstring, attributes and every method's
    signature and docstring; each body ``raise NotImplementedError(...)``."""
    node = ast.parse(source).body[0]
    if ast.get_docstring(node) is None:
        raise ValueError(f"an exercise's answer needs a docstring (the task): {node.name}")
    lines = source.splitlines()
    return "\n".join(_stub_class(node, lines) if isinstance(node, ast.ClassDef)
                     else _stub_function(node, lines, FUNCTION_TODO)) + "\n"
