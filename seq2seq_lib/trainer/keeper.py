"""The checkpoint keeper: the *last* and the *best* state on disk (Joey NMT's latest and best).

Each file is written whole (weights, optimizer, scaler, configs, history, ``trainer_state``) and
atomically, at the moment it happens, and never rewritten afterwards:

* the best (``TrainConfig.checkpoint_path``) at the validation that improves on every earlier
  one, with the history up to that validation;
* the last (``TrainConfig.last_checkpoint_path``) at every validation and when training ends,
  with the whole history; while the best is an earlier step it also carries the best weights
  (``best_model_state``), so that a run resumed from it ends with them in the model.

Either file continues training exactly: a last one where the run stopped, a best one from its
validation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import (
    CheckpointInfo,
    best_checkpoint_path,
    check_same_vocabularies,
    copy_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from ..config import TrainConfig
from ..train import EpochRecord
from .state import TrainState


@dataclass
class Snapshot:
    """Everything a checkpoint of this moment holds besides the vocabularies."""

    weights: Mapping[str, torch.Tensor]
    optimizer: dict[str, Any]
    scaler: dict[str, Any] | None
    train_cfg: TrainConfig
    history: list[EpochRecord]
    epoch: int
    trainer_state: dict[str, Any]


class CheckpointKeeper:
    """Writes the best and the last state (see the module doc); only the main process writes.

    ``best_weights`` is a CPU copy of the best weights seen so far (put back into the model at
    the end of training).
    """

    def __init__(self, cfg: TrainConfig, info: CheckpointInfo | None, is_main: bool = True):
        self.best_path = Path(cfg.checkpoint_path) if cfg.checkpoint_path else None
        self.last_path = Path(cfg.last_checkpoint_path) if cfg.last_checkpoint_path else None
        if (self.best_path or self.last_path) and info is None:
            raise ValueError("a checkpoint path is set, so training needs info= "
                             "(vocabularies, configs)")
        self.info, self.is_main = info, is_main
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.last_step = -1  # the step of the last state on disk (-1: none written)

    def keep_best(self, weights: Mapping[str, torch.Tensor]) -> None:
        self.best_weights = {k: v.detach().to("cpu", copy=True) for k, v in weights.items()}

    def keep_resumed_best(self, ckpt: dict[str, Any], state: TrainState) -> None:
        """The best weights a checkpoint resumed from brings: those it carries beside its own,
        or its own when it is the best state."""
        if "best_model_state" in ckpt:
            self.keep_best(ckpt["best_model_state"])
        elif state.best_epoch and state.best_step == state.step:
            self.keep_best(ckpt["model_state"])

    def adopt_resumed_best(self, source: str | Path, ckpt: dict[str, Any],
                           state: TrainState) -> None:
        """A run resumed from ``source`` that writes its best elsewhere starts with the best
        file it continues: ``source`` itself when that is the best state, else the best file
        beside it (``X.last.pt`` → ``X.pt``), copied whole; never one of another step."""
        if self.best_path is None or not self.is_main or not state.best_epoch:
            return
        source = Path(source)
        candidates = [source, best_checkpoint_path(source)]
        if any(c.is_file() and c.resolve() == self.best_path.resolve() for c in candidates):
            return  # the best file is already where this run writes it
        if ckpt["trainer_state"]["step"] == state.best_step:
            copy_checkpoint(source, self.best_path)
            return
        sibling = best_checkpoint_path(source)
        if sibling != source and sibling.is_file():
            saved = load_checkpoint(sibling).get("trainer_state") or {}
            if saved.get("step") == state.best_step:
                copy_checkpoint(sibling, self.best_path)

    def wants(self, best: bool) -> bool:
        """Whether a validation (a new best or not) writes anything."""
        return bool(self.last_path or (best and self.best_path))

    def save(self, snap: Snapshot, best: bool) -> None:
        """Write the best state (when ``best``) and the last one; every process calls this."""
        step = snap.trainer_state["step"]
        if self.is_main and best and self.best_path:
            self._write(self.best_path, snap, {})
        if self.last_path:
            extra = {}
            if self.best_weights is not None and snap.trainer_state["best_step"] != step:
                extra["best_model_state"] = self.best_weights
            if self.is_main:
                self._write(self.last_path, snap, extra)
            self.last_step = step

    def _write(self, path: Path, snap: Snapshot, extra: dict[str, Any]) -> None:
        assert self.info is not None
        save_checkpoint(path, snap.weights, self.info, snap.train_cfg, snap.history, snap.epoch,
                        snap.optimizer, snap.scaler, {"trainer_state": snap.trainer_state, **extra})

    def best_checkpoint(self, state: TrainState) -> Path | None:
        """The file holding the best state: written by this run, or by the run it resumed."""
        if self.best_path is not None and state.best_epoch and self.best_path.is_file():
            return self.best_path
        return None

    def last_checkpoint(self) -> Path | None:
        return self.last_path if self.last_path is not None and self.last_step >= 0 else None

    def load(self, path: str | Path, device: torch.device) -> dict[str, Any]:
        """Read a checkpoint to resume from; its vocabularies must be this run's."""
        ckpt = load_checkpoint(path, map_location=device)
        if self.info is not None:
            check_same_vocabularies(ckpt["info"], self.info, path)
        return ckpt


def legacy_state(ckpt: dict[str, Any]) -> TrainState:
    """The state of a checkpoint written before the trainer kept one (it holds the best epoch):
    go on with the next epoch, the best being that one."""
    st = TrainState(epoch=ckpt["epoch"] + 1)
    st.history = [r for r in ckpt["history"] if r["epoch"] <= ckpt["epoch"]]
    best = min(st.history, key=lambda r: r["valid_loss"], default=None)
    if best is not None:
        st.best_score = st.best_valid_loss = best["valid_loss"]
        st.best_epoch = int(best["epoch"])
    return st
