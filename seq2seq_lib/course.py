"""What the notebooks share: fast mode for the tests, the checkpoint folder, load-or-train.

Fast mode (environment variable ``SEQ2SEQ_FAST=1``) shrinks data, model and epochs so the test
suite can execute every notebook in seconds; learners never need it.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader

from .batching import make_loader
from .checkpoint import CheckpointInfo
from .config import DataConfig, ModelConfig, TrainConfig
from .models import Seq2Seq, build_model
from .pipeline import PreparedData, prepare_data
from .train import FitResult, fit, set_seed
from .translator import Translator

FAST_ENV = "SEQ2SEQ_FAST"
CHECKPOINT_ENV = "SEQ2SEQ_CHECKPOINTS"


def fast_mode() -> bool:
    """True when the notebooks run under the test suite (``SEQ2SEQ_FAST=1``)."""
    return os.environ.get(FAST_ENV, "") not in ("", "0", "false", "False")


def shrink(data_cfg: DataConfig, model_cfg: ModelConfig, train_cfg: TrainConfig,
           fast: bool | None = None) -> tuple[DataConfig, ModelConfig, TrainConfig]:
    """The same settings, made tiny in fast mode (and unchanged otherwise)."""
    if not (fast_mode() if fast is None else fast):
        return data_cfg, model_cfg, train_cfg
    return (replace(data_cfg, limit=min(data_cfg.limit or 400, 400), valid_frac=0.1, test_frac=0.1),
            replace(model_cfg, emb_dim=32, hid_dim=48),
            replace(train_cfg, epochs=min(train_cfg.epochs, 2)))


def checkpoint_dir() -> Path:
    """Where the notebooks keep their checkpoints: ``checkpoints/`` at the top of the course
    (or the folder named by ``SEQ2SEQ_CHECKPOINTS``)."""
    if os.environ.get(CHECKPOINT_ENV):
        return Path(os.environ[CHECKPOINT_ENV])
    here = Path.cwd()
    root = here.parent if here.name == "notebooks" else here
    return root / "checkpoints"


def checkpoint_path(name: str) -> Path:
    """``checkpoint_dir() / name``, with the folder created."""
    folder = checkpoint_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


VALID_BATCH_SIZE = 256  # evaluation only: larger batches are faster and change nothing


def new_model(data: PreparedData, model_cfg: ModelConfig, seed: int = 0) -> Seq2Seq:
    """A freshly initialised model sized for ``data``'s vocabularies (seeded, so a run repeats)."""
    set_seed(seed)
    return build_model(model_cfg, len(data.src_vocab), len(data.trg_vocab),
                       pad_id=data.src_vocab.pad_id)


def make_loaders(data: PreparedData, train_cfg: TrainConfig) -> tuple[DataLoader, DataLoader]:
    """The training loader (length buckets, reshuffled every epoch) and the validation loader."""
    train_loader = make_loader(data.train, train_cfg.batch_size, bucket=train_cfg.bucket,
                               seed=train_cfg.seed)
    valid_loader = make_loader(data.valid, VALID_BATCH_SIZE, bucket=False, shuffle=False)
    return train_loader, valid_loader


def train_translator(data: PreparedData, data_cfg: DataConfig, model_cfg: ModelConfig,
                     train_cfg: TrainConfig, **fit_kwargs: Any) -> tuple[Translator, FitResult]:
    """The course's training recipe: a seeded new model, :func:`make_loaders`, :func:`fit`.

    :param fit_kwargs: passed on to :func:`fit` (``callbacks``, ``stop``, ``loss_fn``,
        ``progress``, ``device``).
    :return: a :class:`Translator` holding the best weights, and what ``fit`` reported. The
        checkpoint is written when ``train_cfg.checkpoint_path`` is set.
    """
    model = new_model(data, model_cfg, train_cfg.seed)
    train_loader, valid_loader = make_loaders(data, train_cfg)
    info = CheckpointInfo(data.src_vocab, data.trg_vocab, data_cfg, model_cfg)
    result = fit(model, train_loader, valid_loader, train_cfg, info, **fit_kwargs)
    return Translator(model, data.src_vocab, data.trg_vocab, data_cfg, model_cfg), result


def load_or_train(path: str | Path, data_cfg: DataConfig, model_cfg: ModelConfig,
                  train_cfg: TrainConfig, device: str = "cpu", **fit_kwargs: Any) -> Translator:
    """The translator saved at ``path``; when there is none yet, train one exactly as notebook
    05 does (:func:`train_translator`) and save it there first.

    An existing checkpoint wins: its own vocabularies and configs are used, not the arguments.
    :param device: where the loaded translator runs (``"auto"`` picks CUDA/MPS/CPU).
    """
    path = Path(path)
    if not path.is_file():
        data = prepare_data(data_cfg)
        train_translator(data, data_cfg, model_cfg, replace(train_cfg, checkpoint_path=str(path)),
                         **fit_kwargs)
    return Translator.from_checkpoint(path, device=device)


class Table:
    """A small table that shows as HTML in a notebook and as aligned text elsewhere.

    >>> Table(["word", "p"], [["I", "0.41"], ["We", "0.12"]])   # doctest: +SKIP
    """

    def __init__(self, header: Sequence[Any], rows: Sequence[Sequence[Any]],
                 caption: str | None = None):
        self.header = [str(h) for h in header]
        self.rows = [[str(c) for c in row] for row in rows]
        self.caption = caption

    def _repr_html_(self) -> str:
        cells = lambda tag, row: "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in row)
        caption = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        body = "".join(f"<tr>{cells('td', row)}</tr>" for row in self.rows)
        return f"<table>{caption}<thead><tr>{cells('th', self.header)}</tr></thead>{body}</table>"

    def __repr__(self) -> str:
        widths = [max(len(r[i]) for r in [self.header, *self.rows] if i < len(r))
                  for i in range(len(self.header))]
        line = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
        lines = [line(self.header), line(["-" * w for w in widths]), *map(line, self.rows)]
        return "\n".join(([self.caption] if self.caption else []) + lines)
