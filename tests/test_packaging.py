"""The dependency bounds in pyproject.toml agree with the pins the course is tested with."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
import torch
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def _bounds() -> dict[str, Version]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["dependencies"]
    return {m[1].lower(): Version(m[2]) for d in deps if (m := re.match(r"([\w.-]+)>=([\w.]+)", d))}


def _pins() -> dict[str, Version]:
    lines = (ROOT / "requirements.txt").read_text("utf-8").splitlines()
    return {m[1].lower(): Version(m[2]) for line in lines if (m := re.match(r"([\w.-]+)==([\w.]+)", line))}


def test_every_pin_satisfies_the_stated_lower_bound():
    bounds, pins = _bounds(), _pins()
    assert bounds.keys() <= pins.keys(), bounds.keys() - pins.keys()
    for name, bound in bounds.items():
        assert pins[name] >= bound, f"{name}: pinned {pins[name]} < stated lower bound {bound}"


def test_the_torch_bound_covers_the_fused_cpu_adam_the_optimizer_uses():
    """make_optimizer asks for fused Adam on the CPU, which PyTorch has had since 2.4."""
    from seq2seq_lib.train import make_optimizer

    assert _bounds()["torch"] >= Version("2.4")
    layer = torch.nn.Linear(3, 2)
    opt = make_optimizer(layer, 1e-3, torch.device("cpu"))
    assert opt.param_groups[0]["fused"] is True
    layer(torch.ones(1, 3)).sum().backward()
    opt.step()  # the fused CPU kernel exists in the installed version
