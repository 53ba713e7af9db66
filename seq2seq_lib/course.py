"""What the notebooks share: fast mode for the tests, the checkpoint folder, the training recipe
as a :class:`Translator` (``train_translator``, over :mod:`seq2seq_lib.recipe`, which the command
line and the bench use), load-or-train, the recipes of the models notebooks 05-08 load, and timed
decoding runs.

Fast mode (environment variable ``SEQ2SEQ_FAST=1``) shrinks data, model and epochs so the test
suite can execute every notebook in seconds; learners never need it.
"""

from __future__ import annotations

import html
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from .checkpoint import load_checkpoint
from .config import DataConfig, ModelConfig, TrainConfig
from .data import Pair
from .metrics import corpus_bleu
from .pipeline import PreparedData, prepare_data
from .recipe import VALID_BATCH_SIZE, make_loaders, new_model, train_model  # noqa: F401 (kept here)
from .trainer import FitResult
from .translator import Translator

T = TypeVar("T")

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


def train_translator(data: PreparedData, data_cfg: DataConfig, model_cfg: ModelConfig,
                     train_cfg: TrainConfig, **fit_kwargs: Any) -> tuple[Translator, FitResult]:
    """The course's training recipe (:func:`seq2seq_lib.recipe.train_model`: a seeded new model,
    :func:`make_loaders`, :func:`~seq2seq_lib.trainer.fit`), wrapped in a :class:`Translator`.

    :param fit_kwargs: passed on to ``fit`` (``callbacks``, ``stop``, ``loss_fn``,
        ``progress``, ``device``).
    :return: a :class:`Translator` holding the best weights, and what ``fit`` reported. The
        checkpoint is written when ``train_cfg.checkpoint_path`` is set.
    """
    model, result = train_model(data, data_cfg, model_cfg, train_cfg, **fit_kwargs)
    return Translator(model, data.src_vocab, data.trg_vocab, data_cfg, model_cfg,
                      truecaser=data.truecaser, precision=train_cfg.precision), result


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


def gru_recipe() -> tuple[DataConfig, ModelConfig, TrainConfig]:
    """The settings of the plain GRU that notebook 05 trains and notebooks 06-07 load: the HSK
    corpus, the lesson's sizes (emb 256, hid 512, 2 layers, dropout 0.5), 8 epochs."""
    return DataConfig(), ModelConfig(), TrainConfig(epochs=8)


def attention_recipe() -> tuple[DataConfig, ModelConfig, TrainConfig]:
    """The settings of notebook 07's attention model (notebook 08 loads or retrains the same).

    A bidirectional one-layer GRU encoder, a GRU decoder with additive (Bahdanau) attention,
    emb 256 / hid 256, dropout 0.5; Adam with lr 2e-3 for 10 epochs (the validation loss is lowest
    around epoch 8: more epochs only over-fit); every training word kept
    (``min_freq=1``: the attention can point at a rare word, so fewer ``<unk>`` pay off). The
    split does not depend on the vocabulary, so the test pairs are those of the plain GRU.
    """
    return (DataConfig(min_freq=1),
            ModelConfig(emb_dim=256, hid_dim=256, n_layers=1, dropout=0.5, bidirectional=True,
                        attention="bahdanau"),
            TrainConfig(epochs=10, lr=2e-3))


def training_summary(path: str | Path) -> dict[str, float]:
    """What a checkpoint's history says about its training: ``epochs`` run, ``best_epoch``
    (the saved weights), ``best_valid_loss`` and ``seconds`` (training time summed over the
    epochs, validation not included)."""
    ckpt = load_checkpoint(path)
    history = ckpt["history"]
    return {"epochs": len(history), "best_epoch": int(ckpt["epoch"]),
            "best_valid_loss": min((r["valid_loss"] for r in history), default=float("nan")),
            "seconds": sum(r["seconds"] for r in history)}


def best_time(task: Callable[[], T], repeats: int = 3) -> tuple[float, T]:
    """Run ``task`` ``repeats`` times; the fastest run's seconds (the one least disturbed by
    other programs) and the last result."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = task()
        times.append(time.perf_counter() - start)
    return min(times), result  # type: ignore[return-value]


@dataclass
class DecodingRun:
    """One decoding setting measured on a set of pairs (see :func:`decoding_runs`).

    ``hyp_len`` / ``ref_len``: words in all outputs / all references (sacreBLEU's 13a tokens).
    """

    beam_size: int
    length_penalty: float
    bleu: float
    seconds: float
    sentences_per_s: float
    hyp_len: int
    ref_len: int
    hypotheses: list[str]

    @property
    def length_ratio(self) -> float:
        """Output length ÷ reference length (below 1: the outputs are too short)."""
        return self.hyp_len / self.ref_len if self.ref_len else float("nan")


def decoding_runs(translator: Translator, pairs: Sequence[Pair],
                  settings: Sequence[tuple[int, float]], repeats: int = 3,
                  max_len: int = 50) -> list[DecodingRun]:
    """Translate ``pairs`` once per (beam size, length penalty) setting: BLEU, speed, lengths.

    Speed is sentences per second of :meth:`Translator.translate_batch` (tokenization
    included), the fastest of ``repeats`` runs; beam size 1 is greedy decoding.
    """
    sources = [zh for zh, _ in pairs]
    references = [en for _, en in pairs]
    runs = []
    for beam_size, length_penalty in settings:
        seconds, hyps = best_time(lambda b=beam_size, a=length_penalty: translator.translate_batch(
            sources, max_len, beam_size=b, length_penalty=a), repeats)
        score = corpus_bleu(hyps, references, lowercase=translator.data_cfg.lowercase)
        runs.append(DecodingRun(beam_size, length_penalty, score.score, seconds,
                                len(sources) / seconds if seconds > 0 else float("inf"),
                                score.sys_len, score.ref_len, hyps))
    return runs


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
