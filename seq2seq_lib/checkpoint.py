"""Self-describing checkpoints: weights, both vocabularies, configs, history; written atomically."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .config import DataConfig, ModelConfig, TrainConfig, from_dict, to_dict
from .vocab import Vocab

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A file that is not a readable course checkpoint; the message names the file."""


@dataclass
class CheckpointInfo:
    """Everything besides the weights that a checkpoint must carry to be used on its own."""

    src_vocab: Vocab
    trg_vocab: Vocab
    data_cfg: DataConfig
    model_cfg: ModelConfig


def library_version() -> str:
    from . import __version__

    return __version__


def save_checkpoint(path: str | Path, model_state: dict[str, torch.Tensor], info: CheckpointInfo,
                    train_cfg: TrainConfig, history: list[dict[str, float]], epoch: int,
                    optimizer_state: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint to a temporary file in the same folder, then rename it into place.

    :param model_state: the weights (``model.state_dict()``, or a kept copy of the best ones).
    :param epoch: the epoch those weights come from.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "library_version": library_version(),
        "model_state": {k: v.detach().cpu() for k, v in model_state.items()},
        "src_vocab": info.src_vocab.to_list(),
        "trg_vocab": info.trg_vocab.to_list(),
        "data_cfg": to_dict(info.data_cfg),
        "model_cfg": to_dict(info.model_cfg),
        "train_cfg": to_dict(train_cfg),
        "history": [dict(r) for r in history],
        "epoch": epoch,
    }
    if optimizer_state is not None:
        payload["optimizer_state"] = optimizer_state
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` and rebuild its vocabularies and configs.

    The returned dict has ``info`` (:class:`CheckpointInfo`), ``train_cfg``, ``model_state``,
    ``history``, ``epoch`` and, when saved, ``optimizer_state``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        raw = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a checkpoint"
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    missing = {"model_state", "src_vocab", "trg_vocab", "data_cfg", "model_cfg"} - set(raw)
    if not isinstance(raw, dict) or missing:
        raise CheckpointError(f"{path}: not a course checkpoint (missing {sorted(missing)})")
    raw["info"] = CheckpointInfo(
        src_vocab=Vocab(raw["src_vocab"]),
        trg_vocab=Vocab(raw["trg_vocab"]),
        data_cfg=from_dict(DataConfig, raw["data_cfg"]),
        model_cfg=from_dict(ModelConfig, raw["model_cfg"]),
    )
    raw["train_cfg"] = from_dict(TrainConfig, raw.get("train_cfg", {}))
    return raw
