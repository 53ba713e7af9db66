"""``--compile``: the training step's model under ``torch.compile``, or uncompiled with one line.

On the CPU, torch's compiler (inductor) writes C++ and needs a C++ compiler to build it. Where
there is none, or where compiling fails for any other reason, training goes on with the
uncompiled model and says so once; it never stops for it. Off by default: a learner's first
run should not wait minutes for a compiler.
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from typing import Any

import torch
from torch import nn

__all__ = ["CompileFallback", "cxx_compiler", "maybe_compile"]


def cxx_compiler() -> str | None:
    """The C++ compiler inductor would use on this machine (its path), or None."""
    try:
        from torch._inductor import config  # private: where inductor looks for its compiler

        names = [c for c in config.cpp.cxx if c] if isinstance(config.cpp.cxx, (list, tuple)) \
            else [config.cpp.cxx]
    except (ImportError, AttributeError):
        names = [os.environ.get("CXX", "clang++" if sys.platform == "darwin" else "g++")]
    for name in names:
        if found := shutil.which(name):
            return found
    return None


def _compile_errors() -> tuple[type[BaseException], ...]:
    """The exceptions torch raises when compiling (not the model) fails."""
    found: list[type[BaseException]] = []
    for module, name in (("torch._dynamo.exc", "BackendCompilerFailed"),
                         ("torch._dynamo.exc", "InternalTorchDynamoError"),
                         ("torch._inductor.exc", "InductorError"),
                         ("torch._inductor.exc", "InvalidCxxCompiler"),
                         ("torch._inductor.exc", "CppCompileError")):
        try:
            found.append(getattr(__import__(module, fromlist=[name]), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


class CompileFallback(nn.Module):
    """Calls the compiled model; if compiling fails, warns once and calls ``model`` from then on.

    ``model`` is the one sub-module (``module``), so the wrapper's parameters are the model's
    own; ``compiled`` (not a sub-module) is None once it has fallen back.
    """

    def __init__(self, model: nn.Module, compiled: Any):
        super().__init__()
        self.module = model
        self.__dict__["compiled"] = compiled  # kept out of the sub-modules and the state dict
        self.errors = _compile_errors()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except self.errors as exc:
                self.__dict__["compiled"] = None
                _fall_back(f"compiling failed ({type(exc).__name__}: {_first_line(exc)})")
        return self.module(*args, **kwargs)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else "no message"


def _fall_back(why: str) -> None:
    warnings.warn(f"--compile: {why}; training runs uncompiled", RuntimeWarning, stacklevel=3)


def maybe_compile(model: nn.Module, enabled: bool, device: torch.device | str = "cpu"
                  ) -> nn.Module:
    """``model`` under ``torch.compile`` when ``enabled`` (in a :class:`CompileFallback`), else
    ``model`` itself. On the CPU without a C++ compiler it warns in one line and returns
    ``model``."""
    if not enabled:
        return model
    if torch.device(device).type == "cpu" and sys.platform != "win32" and cxx_compiler() is None:
        _fall_back("no C++ compiler found (inductor needs one on the CPU, e.g. g++)")
        return model
    try:
        compiled = torch.compile(model)
    except (RuntimeError, *_compile_errors()) as exc:  # e.g. a Python torch cannot compile for
        _fall_back(f"torch.compile is not available ({_first_line(exc)})")
        return model
    return CompileFallback(model, compiled)
