"""What a resumed run needs besides weights and optimizer: where training stands, and the
random-number generators."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from ..train import EpochRecord


@dataclass
class TrainState:
    """Where training stands (plain numbers: saved in every checkpoint as ``trainer_state``).

    ``batch`` counts the batches of epoch ``epoch`` already trained on, in the sampler's global
    order (a step of N processes accumulating K batches each takes N × K of them): a resumed
    run continues with the next one, whatever its number of processes. ``best_score`` is the best validation value of ``TrainConfig.best_metric``
    (lower loss or higher BLEU); ``bad_validations`` counts the validations since then.
    """

    epoch: int = 1
    batch: int = 0
    step: int = 0
    history: list[EpochRecord] = field(default_factory=list)
    best_score: float | None = None
    best_epoch: int = 0
    best_step: int = 0
    best_valid_loss: float = math.inf
    bad_validations: int = 0
    seconds: float = 0.0  # training time, validation not included

    def to_dict(self) -> dict[str, Any]:
        """Every field but the history (which the checkpoint stores on its own)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "history"}

    def load(self, saved: dict[str, Any], history: list[EpochRecord]) -> None:
        """Take the fields of a saved :meth:`to_dict` and the history up to its step."""
        for f in fields(self):
            if f.name != "history" and f.name in saved:
                setattr(self, f.name, saved[f.name])
        self.history = [r for r in history if r.get("step", 0) <= self.step]

    def record_validation(self, metric: float, valid_loss: float, lower_is_better: bool) -> bool:
        """Count a validation's ``metric``; True (and it becomes the best) if it improves."""
        better = math.isfinite(metric) and (
            self.best_score is None
            or (metric < self.best_score if lower_is_better else metric > self.best_score))
        if better:
            self.best_score, self.best_epoch, self.best_step = metric, self.epoch, self.step
            self.best_valid_loss, self.bad_validations = valid_loss, 0
        else:
            self.bad_validations += 1
        return better


def rng_state(device: torch.device) -> dict[str, Any]:
    """This process's Python, torch (and CUDA / MPS) generator states."""
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    elif device.type == "mps":
        state["mps"] = torch.mps.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Put back what :func:`rng_state` captured (read back from a checkpoint)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)
    if "mps" in state and device.type == "mps":
        torch.mps.set_rng_state(state["mps"].cpu())
