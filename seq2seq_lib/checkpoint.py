"""Self-describing checkpoints: weights, both vocabularies, configs, history; written atomically."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch

from .config import DataConfig, ModelConfig, TrainConfig, from_dict, to_dict
from .subword import SubwordVocab
from .truecase import TrueCaser
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
    truecaser: TrueCaser | None = None  # restores the case of lower-cased output


def library_version() -> str:
    from . import __version__

    return __version__


def save_checkpoint(path: str | Path, model_state: dict[str, torch.Tensor], info: CheckpointInfo,
                    train_cfg: TrainConfig, history: list[dict[str, float]], epoch: int,
                    optimizer_state: dict[str, Any] | None = None,
                    scaler_state: dict[str, Any] | None = None,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint to a temporary file in the same folder, then rename it into place.

    :param model_state: the weights (``model.state_dict()``, or a kept copy of the best ones).
    :param epoch: the epoch those weights come from.
    :param scaler_state: the fp16 gradient scaler's state, so a resumed run keeps its scale.
    :param extra: more entries (plain data and tensors), e.g. the trainer's ``trainer_state``.
    The file gets the permissions of any new file of the user (umask), not the temporary
    file's private 0600.
    """
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
    if scaler_state is not None:
        payload["scaler_state"] = scaler_state
    if info.truecaser is not None:
        payload["truecaser"] = info.truecaser.to_dict()
    for side, vocab in (("src", info.src_vocab), ("trg", info.trg_vocab)):
        if isinstance(vocab, SubwordVocab):  # the SentencePiece model travels inside
            payload[f"{side}_spm"] = vocab.model
    payload.update(extra or {})
    return _write_atomically(path, payload)


def last_checkpoint_path(path: str | Path) -> Path:
    """Where the *last* state goes beside the *best* checkpoint ``path``:
    ``checkpoints/model.pt`` → ``checkpoints/model.last.pt``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.last{path.suffix or '.pt'}")


def best_checkpoint_path(path: str | Path) -> Path:
    """The *best* checkpoint a checkpoint belongs to: ``model.last.pt`` → ``model.pt``; a best
    checkpoint is its own."""
    path = Path(path)
    if path.stem.endswith(".last"):
        return path.with_name(path.stem[: -len(".last")] + path.suffix)
    return path


def copy_checkpoint(source: str | Path, target: str | Path) -> Path:
    """Copy a checkpoint file whole and atomically (a temporary file renamed into place)."""
    with open(source, "rb") as src:
        return _write_atomically(target, lambda out: shutil.copyfileobj(src, out))


def run_history(path: str | Path) -> list[dict[str, float]]:
    """The whole history of the run that wrote the best checkpoint ``path``.

    The best checkpoint is written once, when it is found, so its history ends at that
    validation; the *last* state beside it (:func:`last_checkpoint_path`) holds every
    validation of the run. Falls back to ``path``'s own history when there is no last state.
    """
    best = load_checkpoint(path)
    last = last_checkpoint_path(path)
    if last.is_file():
        history = load_checkpoint(last)["history"]
        if history[: len(best["history"])] == best["history"]:  # the same run
            return history
    return best["history"]


def _write_atomically(path: str | Path, write: dict[str, Any] | Callable[[BinaryIO], Any]
                      ) -> Path:
    """Write a checkpoint payload (or what ``write(file)`` writes) to a temporary file in the
    same folder, then rename it into place with the user's usual file permissions."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(write):
                write(fh)
            else:
                torch.save(write, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _read_umask() -> int | None:
    """The process's umask as Linux reports it (``Umask:`` in ``/proc/self/status``), read
    without changing it; None where there is no such line."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _umask_at_import() -> int:
    """The umask, read once while the library is imported (reading it elsewhere means setting
    it, which would race with other threads creating files)."""
    mask = _read_umask()
    if mask is None:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


_UMASK_AT_IMPORT = _umask_at_import()


def _umask() -> int:
    """The umask new files get now (never toggled: other threads may be creating files)."""
    mask = _read_umask()
    return _UMASK_AT_IMPORT if mask is None else mask


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` and rebuild its vocabularies and configs.

    The returned dict has ``info`` (:class:`CheckpointInfo`), ``train_cfg``, ``model_state``,
    ``history``, ``epoch`` and, when saved, ``optimizer_state``, ``scaler_state`` and the
    trainer's ``trainer_state`` (see :mod:`seq2seq_lib.trainer`).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        raw = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a checkpoint"
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: not a course checkpoint (it holds a "
                              f"{type(raw).__name__}, not a dict of weights and settings)")
    missing = {"model_state", "src_vocab", "trg_vocab", "data_cfg", "model_cfg"} - set(raw)
    if missing:
        raise CheckpointError(f"{path}: not a course checkpoint (missing {sorted(missing)})")
    try:
        raw["info"] = CheckpointInfo(
            src_vocab=_vocab(raw, "src"),
            trg_vocab=_vocab(raw, "trg"),
            # a checkpoint from before valid_max / test_max held out its fractions uncapped,
            # one from before zh_script read its Chinese as written
            data_cfg=from_dict(DataConfig, {"valid_max": None, "test_max": None,
                                            "zh_script": "keep", **raw["data_cfg"]}),
            model_cfg=from_dict(ModelConfig, raw["model_cfg"]),
            truecaser=TrueCaser(raw["truecaser"]) if "truecaser" in raw else None,
        )
        raw["train_cfg"] = from_dict(TrainConfig, raw.get("train_cfg", {}))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: a damaged course checkpoint ({exc})") from None
    return raw


def _vocab(raw: dict[str, Any], side: str) -> Vocab:
    """A side's vocabulary: its SentencePiece model when the checkpoint holds one (``src_spm``,
    ``trg_spm``), whose pieces must be the saved list, else the saved token list."""
    if f"{side}_spm" not in raw:
        return Vocab(raw[f"{side}_vocab"])
    vocab = SubwordVocab(raw[f"{side}_spm"])
    if vocab.itos != list(raw[f"{side}_vocab"]):
        raise ValueError(f"its {side} SentencePiece model does not match its {side} vocabulary")
    return vocab


def check_same_vocabularies(saved: CheckpointInfo, current: CheckpointInfo,
                            path: str | Path) -> None:
    """Refuse to load weights into a model built for other vocabularies (the embedding rows
    would belong to other words, silently)."""
    for side, a, b in (("Chinese", saved.src_vocab, current.src_vocab),
                       ("English", saved.trg_vocab, current.trg_vocab)):
        if a.itos != b.itos:
            diff = next((i for i, (x, y) in enumerate(zip(a.itos, b.itos)) if x != y),
                        min(len(a), len(b)))
            raise CheckpointError(
                f"{path}: its {side} vocabulary ({len(a)} tokens) is not this run's ({len(b)} "
                f"tokens; first difference at id {diff}): resume with the checkpoint's own "
                "vocabularies and data settings")
