"""What the notebooks share: fast mode for the tests, the checkpoint folder, the training recipe
as a :class:`Translator` (``train_translator``, over :mod:`seq2seq_lib.recipe`, which the command
line and the bench use), load-or-train, the recipes of the models notebooks 05-08 load (notebook
07's ablation among them), timed decoding runs, and the evidence cells need: library source shown
in a notebook, one progress line per epoch, the library's training step on given batches, BLEU
statistics counted from scratch and paired-bootstrap intervals.

Fast mode (environment variable ``SEQ2SEQ_FAST=1``) shrinks data, model and epochs so the test
suite can execute every notebook in seconds; learners never need it.
"""

from __future__ import annotations

import html
import inspect
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import torch
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

from .batching import Batch
from .checkpoint import last_checkpoint_path, load_checkpoint, run_history
from .config import DataConfig, ModelConfig, TrainConfig
from .data import Pair
from .device import best_time  # noqa: F401 (notebook 06 times decoding with it)
from .exercises import bleu_counts, bleu_from_counts, brevity_penalty
from .metrics import PairedBootstrap, corpus_bleu, length_bin_labels, paired_bootstrap
from .models import Seq2Seq
from .pipeline import PreparedData, prepare_data
from .recipe import VALID_BATCH_SIZE, make_loaders, new_model, train_model  # noqa: F401 (kept here)
from .train import batch_loss
from .trainer import FitResult, fit
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
            replace(model_cfg, emb_dim=32, hid_dim=48, d_model=32, ff_dim=64),
            replace(train_cfg, epochs=min(train_cfg.epochs, 2)))


Configs = tuple[DataConfig, ModelConfig, TrainConfig]


def setup(*recipes: Configs) -> Any:
    """A notebook's settings: each recipe (``(data, model, train)`` configs) as it is, or made
    tiny when the test suite runs the notebook (fast mode). No recipe: the library's defaults.

    One recipe gives back its three configs, several give back a list of them.
    """
    shrunk = [shrink(*r) for r in (recipes or ((DataConfig(), ModelConfig(), TrainConfig()),))]
    return shrunk[0] if len(shrunk) == 1 else shrunk


def sized(full: T, fast: T) -> T:
    """``full``, or the smaller ``fast`` when the test suite runs the notebook (fast mode)."""
    return fast if fast_mode() else full


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
        train_translator(data, data_cfg, model_cfg,
                         replace(train_cfg, checkpoint_path=str(path),
                                 last_checkpoint_path=str(last_checkpoint_path(path))),
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


@dataclass
class Recipe:
    """One trained model of the course: its checkpoint's file name, what it changes compared
    with the row before it (notebook 07's ablation), and its settings."""

    checkpoint: str
    change: str
    data_cfg: DataConfig
    model_cfg: ModelConfig
    train_cfg: TrainConfig

    @property
    def configs(self) -> tuple[DataConfig, ModelConfig, TrainConfig]:
        """(data, model, training) settings, e.g. for ``shrink(*recipe.configs)``."""
        return self.data_cfg, self.model_cfg, self.train_cfg


def ablation_recipes() -> list[Recipe]:
    """Notebook 07's ablation: four models that differ from the row before in one setting each.

    All share :func:`attention_recipe`'s data (``min_freq=1``, the same split), sizes (emb 256,
    hid 256, one layer, dropout 0.5) and training (lr 2e-3, 10 epochs, seed 0):

    1. ``gru_small.pt``: a plain GRU encoder-decoder (no attention, one direction);
    2. ``attention_uni.pt``: + additive attention;
    3. ``attention.pt``: + a bidirectional encoder (this is :func:`attention_recipe`, which
       notebook 08 loads);
    4. ``attention_char.pt``: + one Chinese character per token instead of jieba words.
    """
    data_cfg, model_cfg, train_cfg = attention_recipe()
    plain = replace(model_cfg, attention="none", bidirectional=False)
    return [
        Recipe("gru_small.pt", "GRU，无注意力", data_cfg, plain, train_cfg),
        Recipe("attention_uni.pt", "+ 注意力", data_cfg, replace(plain, attention="bahdanau"),
               train_cfg),
        Recipe("attention.pt", "+ 双向编码器", data_cfg, model_cfg, train_cfg),
        Recipe("attention_char.pt", "+ 中文按字切", replace(data_cfg, zh_tokens="char"),
               model_cfg, train_cfg),
    ]


def training_summary(path: str | Path) -> dict[str, float]:
    """What a checkpoint's history says about its training: ``epochs`` run, ``best_epoch``
    (the saved weights), ``best_valid_loss`` and ``seconds`` (training time summed over the
    epochs, validation not included)."""
    ckpt, history = load_checkpoint(path), run_history(path)
    return {"epochs": len(history), "best_epoch": int(ckpt["epoch"]),
            "best_valid_loss": min((r["valid_loss"] for r in history), default=float("nan")),
            "seconds": sum(r["seconds"] for r in history)}


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

    ``conclusion``: one or more sentences shown under the table, computed from its figures.
    """

    def __init__(self, header: Sequence[Any], rows: Sequence[Sequence[Any]],
                 caption: str | None = None, conclusion: str | Sequence[str] = ()):
        self.header = [str(h) for h in header]
        self.rows = [[str(c) for c in row] for row in rows]
        self.caption = caption
        # what the table shows, computed by the cell that measured it (e.g. with verdict())
        self.conclusion = [conclusion] if isinstance(conclusion, str) else list(conclusion)

    def _repr_html_(self) -> str:
        cells = lambda tag, row: "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in row)
        caption = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        body = "".join(f"<tr>{cells('td', row)}</tr>" for row in self.rows)
        table = f"<table>{caption}<thead><tr>{cells('th', self.header)}</tr></thead>{body}</table>"
        return table + "".join(f"<p>{html.escape(line)}</p>" for line in self.conclusion)

    def __repr__(self) -> str:
        widths = [max(len(r[i]) for r in [self.header, *self.rows] if i < len(r))
                  for i in range(len(self.header))]
        line = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
        lines = [line(self.header), line(["-" * w for w in widths]), *map(line, self.rows)]
        return "\n".join(([self.caption] if self.caption else []) + lines
                         + ([""] + self.conclusion if self.conclusion else []))


# ---------------------------------------------------------------------------------------------
# Evidence for the notebooks' claims
# ---------------------------------------------------------------------------------------------


def show_source(*objects: Any) -> Any:
    """The library's own source of ``objects`` (classes, functions, methods), highlighted in a
    notebook: what the model or the loop really runs, not a copy that could drift."""
    from IPython.display import Code  # only the notebooks need IPython

    return Code("\n\n".join(inspect.getsource(obj).rstrip() for obj in objects),
                language="python")


VERDICTS = {"better": "显著更好", "tie": "分不出", "worse": "显著更差"}


def verdict(result: PairedBootstrap, name_b: str = "b", name_a: str = "a",
            metric: str = "BLEU") -> str:
    """One computed conclusion from a paired bootstrap (b compared with a), in Chinese:
    "显著更好" / "分不出" / "显著更差", with the interval it rests on (``metric``: what was
    resampled, e.g. ``"chrF"`` for :func:`~seq2seq_lib.metrics.paired_bootstrap_chrf`)."""
    detail = (f"{metric} {result.bleu_b:.2f} 对 {result.bleu_a:.2f}，差 {result.delta:+.2f}，"
              f"95% 区间 [{result.low:+.2f}, {result.high:+.2f}]")
    if result.low <= 0 <= result.high:
        return f"{name_b} 和 {name_a} {VERDICTS['tie']}（{detail}，区间包含 0）"
    word = VERDICTS["better" if result.low > 0 else "worse"]
    return f"{name_b} 比 {name_a} {word}（{detail}）"


def print_progress(name: str = "") -> Callable[[dict[str, float], list[dict[str, float]]], None]:
    """A ``fit`` callback that prints one line per epoch (plain text: no progress widget in a
    saved notebook), e.g. ``attention · epoch 3: train loss 3.912, valid loss 3.870 (2.9 s)``."""
    prefix = f"{name} · " if name else ""

    def callback(record: dict[str, float], history: list[dict[str, float]]) -> None:
        print(f"{prefix}epoch {int(record['epoch'])}: train loss {record['train_loss']:.3f}, "
              f"valid loss {record['valid_loss']:.3f} ({record['seconds']:.1f} s)", flush=True)

    return callback


def library_step_losses(data: PreparedData, model_cfg: ModelConfig, train_cfg: TrainConfig,
                        batches: Sequence[Batch]) -> tuple[Seq2Seq, list[float]]:
    """What the library's training loop does on ``batches``: a new model seeded with
    ``train_cfg.seed`` (:func:`new_model`), one pass of :func:`fit` over exactly these batches on
    the CPU in float32, and the loss of every step.

    Notebook 05 writes the same steps out by hand and checks that both give the same losses and
    weights. Dropout draws random numbers, so compare with ``dropout=0`` (or the same seed at the
    same point); the model comes back in ``eval()`` mode.
    """
    model = new_model(data, model_cfg, train_cfg.seed)
    losses: list[float] = []

    def recording_loss(model: Seq2Seq, batch: Batch, teacher_forcing_ratio: float = 1.0):
        loss, n_tokens = batch_loss(model, batch, teacher_forcing_ratio)
        losses.append(loss.item())
        return loss, n_tokens

    cfg = replace(train_cfg, epochs=1, precision="fp32", device="cpu", checkpoint_path=None)
    fit(model, list(batches), list(batches[:1]), cfg, progress=False,
        device=torch.device("cpu"), loss_fn=recording_loss)
    return model.eval(), losses


def bleu_tokens(sentences: Sequence[str], lowercase: bool = True) -> list[list[str]]:
    """Sentences split into the tokens sacreBLEU counts (its default ``13a`` tokenizer, after
    lower-casing when ``lowercase``), so BLEU counted from scratch sees the same words."""
    tokenize = Tokenizer13a()
    return [tokenize((s.lower() if lowercase else s).rstrip()).split() for s in sentences]


@dataclass
class BleuStatistics:
    """What corpus BLEU is computed from: clipped n-gram matches and hypothesis n-grams for
    n = 1..4, summed over the corpus, and the total hypothesis and reference lengths. Counted
    and scored by the functions of exercise 5's reference answer (:mod:`~seq2seq_lib.exercises`)."""

    matches: list[int]
    totals: list[int]
    hyp_len: int
    ref_len: int

    @property
    def precisions(self) -> list[float]:
        """p_n = matches / totals, in percent (as sacreBLEU prints them)."""
        return [100 * m / t if t else 0.0 for m, t in zip(self.matches, self.totals)]

    @property
    def brevity_penalty(self) -> float:
        """1 when the hypotheses are at least as long as the references, else exp(1 - r / c)."""
        return brevity_penalty(self.hyp_len, self.ref_len)

    @property
    def score(self) -> float:
        """BLEU without smoothing: 100 · BP · geometric mean of p_1..p_4 (0 if some p_n is 0)."""
        return bleu_from_counts(self.matches, self.totals, self.hyp_len, self.ref_len)


def bleu_statistics(hyps: Sequence[list[str]], refs: Sequence[list[str]]) -> BleuStatistics:
    """Count BLEU's statistics from scratch for tokenized sentences, one reference each."""
    return BleuStatistics(*bleu_counts(list(hyps), list(refs)))


@dataclass
class LengthBinDifference:
    """One source-length bin of :func:`paired_bootstrap_by_length`: its label (``"≤4"``,
    ``"6–7"``, ``">7"``), how many sentences fall in it, and the two systems' BLEU there with
    the interval of their difference (all ``nan`` for an empty bin)."""

    label: str
    n: int
    diff: PairedBootstrap


def paired_bootstrap_by_length(hyps_a: Sequence[str], hyps_b: Sequence[str],
                               references: Sequence[str], lengths: Sequence[int],
                               edges: Sequence[int], lowercase: bool = True,
                               samples: int = 1000, seed: int = 0) -> list[LengthBinDifference]:
    """:func:`paired_bootstrap` within each source-length bin (bins cut at ``edges`` as in
    :func:`~seq2seq_lib.metrics.bleu_by_length`): where does system b gain, and how sure is it?"""
    members: list[list[int]] = [[] for _ in range(len(edges) + 1)]
    for i, length in enumerate(lengths):
        members[sum(length > e for e in edges)].append(i)
    nan = float("nan")
    return [LengthBinDifference(label, len(idx), paired_bootstrap(
                [hyps_a[i] for i in idx], [hyps_b[i] for i in idx], [references[i] for i in idx],
                lowercase, samples, seed) if idx else PairedBootstrap(nan, nan, nan, nan, nan,
                                                                       nan, 0))
            for label, idx in zip(length_bin_labels(edges), members)]


# ---------------------------------------------------------------------------------------------
# Reading single translations (notebook 08's last section)
# ---------------------------------------------------------------------------------------------

KINDS = {"exact": "与参考相同", "unknown": "含 ⁇", "repeat": "退化的重复",
         "near": "说法不同、字面接近", "miss": "其他"}


def repeats_itself(tokens: Sequence[str]) -> bool:
    """Degenerate repetition: one word three times, or a two-word phrase twice in a row."""
    words = [t for t in tokens if any(ch.isalnum() for ch in t)]
    if any(words.count(w) >= 3 for w in set(words)):
        return True
    return any(words[i:i + 2] == words[i + 2:i + 4] for i in range(len(words) - 3))


def translation_kind(hypothesis: str, reference: str, near_chrf: float = 45.0) -> str:
    """Which :data:`KINDS` a translation is, in this order: the same words as its reference
    (case and punctuation aside), an output with ⁇ (``<unk>``), degenerate repetition, a near
    miss (sentence chrF at least ``near_chrf`` though not the same words), or none of those."""
    from sacrebleu.metrics import CHRF

    tokens = lambda s: [t for t in Tokenizer13a()(s.lower()).split() if any(c.isalnum() for c in t)]
    if tokens(hypothesis) == tokens(reference):
        return "exact"
    if "⁇" in hypothesis:
        return "unknown"
    if repeats_itself(tokens(hypothesis)):
        return "repeat"
    if CHRF().sentence_score(hypothesis, [reference]).score >= near_chrf:
        return "near"
    return "miss"
