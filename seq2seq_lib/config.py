"""Typed settings for data, model and training, with the lesson's defaults.

Every setting is declared once, here: its name, type, default and help text. The command line
(``python -m seq2seq_lib train``) and its config files (``train --config run.yaml``) are made
from these declarations: a field's metadata holds its ``help``, and where the flag is not
``--field-name`` its ``flag`` (``None``: no flag, config files only); ``cli_default`` is where the
command line starts from another value than the library.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, TypeVar

T = TypeVar("T")

# the longest warm-up that ``warmup_steps=0`` (one epoch's steps) gives: Vaswani et al.'s
AUTO_WARMUP_MAX = 4000


class ConfigError(ValueError):
    """A setting that makes no sense; ``field`` names it (the CLI turns it into its flag), and
    ``also`` the other settings the message names (by their field names)."""

    def __init__(self, field: str, message: str, also: tuple[str, ...] = ()):
        super().__init__(f"{field} {message}")
        self.field = field
        self.message = message
        self.also = also


def setting(default: Any, help: str, **cli: Any) -> Any:
    """A dataclass field with its help text and command-line metadata (``flag``, ``metavar``,
    ``cli_default``, ``choices``)."""
    return field(default=default, metadata={"help": help, **cli})


def _check(ok: bool, field: str, message: str, value: Any) -> None:
    if not ok:
        raise ConfigError(field, f"{message}, got {value!r}")


def check_fractions(valid_frac: float, test_frac: float) -> None:
    """The one check of the split fractions (used by :class:`DataConfig` and the splitters)."""
    _check(0 <= valid_frac < 1 and 0 <= test_frac < 1 and valid_frac + test_frac < 1,
           "valid_frac", "and test_frac must be in [0, 1) and must leave a training part",
           (valid_frac, test_frac))


@dataclass
class DataConfig:
    """Where the pairs come from and how they are split, tokenized and counted.

    :param source: ``"hsk"`` (embedded corpus), ``"parallel"`` (two aligned files) or ``"tsv"``.
    """

    source: Literal["hsk", "parallel", "tsv"] = setting(
        "hsk", "the corpus: hsk = the embedded HSK sentences; --src/--trg or --tsv choose "
               "the others", flag="--data")
    src_path: str | None = setting(None, "Chinese side: one sentence a line (use with --trg)",
                                   flag="--src", metavar="FILE")
    trg_path: str | None = setting(None, "English side, aligned line by line with --src",
                                   flag="--trg", metavar="FILE")
    tsv_path: str | None = setting(None, "Tatoeba-style file: English<TAB>Chinese per line",
                                   flag="--tsv", metavar="FILE")
    valid_frac: float = setting(0.05, "share of the pairs held out for validation")
    test_frac: float = setting(0.05, "share of the pairs held out for testing")
    seed: int = setting(0, "seed of the split and the sampling (and of training)")
    lowercase: bool = setting(True, "learn lower-cased English, a truecaser restores the case "
                                     "(default; --no-lowercase: learn the case)")
    min_freq: int = setting(2, "rarer words become <unk>")
    max_size: int = setting(10_000, "largest vocabulary, specials included")
    max_len: int = setting(60, "training pairs with a longer side (in tokens) are left out")
    user_dict: str | None = setting(None, "jieba user dictionary (one word a line)",
                                    metavar="FILE")
    zh_tokens: Literal["word", "char", "spm"] = setting(
        "word", "Chinese tokens: jieba words (the lesson's), single characters, or SentencePiece "
                "subwords")
    limit: int | None = setting(None, "use a seeded random sample of this many pairs (quick runs)",
                                metavar="N")
    data_dir: str | None = setting(
        None, "train on this preprocessed cache folder (see 'preprocess') instead of text files; "
              "its settings replace the data settings", metavar="DIR")
    cache_hash: str | None = setting(None, "that cache's manifest hash, so evaluation can check it",
                                     flag=None)
    # a large corpus holds out about this many pairs, not its fractions (10M pairs at 5 %: 500k)
    valid_max: int | None = setting(5_000, "hold out at most about N pairs for validation (a "
                                           "smaller corpus keeps --valid-frac)", metavar="N")
    test_max: int | None = setting(5_000, "hold out at most about N pairs for testing (a "
                                          "smaller corpus keeps --test-frac)", metavar="N")
    # subword vocabularies (notebook 09): SentencePiece trained on the training split only
    en_tokens: Literal["word", "spm"] = setting(
        "word", "English tokens: spaCy words (the lesson's) or SentencePiece subwords")
    tokens: Literal["word", "spm"] | None = setting(
        None, "both sides at once: spm = SentencePiece subwords for the sides left at 'word' "
              "(--tokens spm --zh-tokens char: Chinese characters, English subwords)")
    spm_vocab: int = setting(8000, "SentencePiece pieces learned per spm side (the 4 specials "
                                   "and 256 byte pieces come on top)", metavar="N")
    # Traditional characters as Simplified (seq2seq_lib.script), in training and translation
    zh_script: Literal["keep", "simplified"] = setting(
        "simplified", "Chinese script: simplified = Traditional characters are written as "
                      "Simplified (OpenCC t2s) before tokenizing, in training and translation; "
                      "keep = as written")

    def __post_init__(self) -> None:
        _check(self.min_freq >= 1, "min_freq", "must be at least 1", self.min_freq)
        _check(self.max_size >= 4, "max_size", "must be at least 4 (the special tokens)",
               self.max_size)
        _check(self.max_len >= 1, "max_len", "must be at least 1", self.max_len)
        _check(self.limit is None or self.limit >= 1, "limit", "must be at least 1", self.limit)
        check_fractions(self.valid_frac, self.test_frac)
        _check(self.zh_tokens in ("word", "char", "spm"), "zh_tokens", "must be word, char or spm",
               self.zh_tokens)
        for name in ("valid_max", "test_max"):
            value = getattr(self, name)
            _check(value is None or value >= 1, name, "must be at least 1 (or None: no cap)", value)
        _check(self.zh_script in ("keep", "simplified"), "zh_script", "must be keep or simplified",
               self.zh_script)
        self._resolve_tokens()

    def _resolve_tokens(self) -> None:
        """``tokens`` sets the sides left at ``word``; check the subword settings."""
        _check(self.tokens in (None, "word", "spm"), "tokens", "must be word or spm", self.tokens)
        _check(self.en_tokens in ("word", "spm"), "en_tokens", "must be word or spm",
               self.en_tokens)
        if self.tokens is not None:
            self.zh_tokens = self.tokens if self.zh_tokens == "word" else self.zh_tokens
            self.en_tokens = self.tokens if self.en_tokens == "word" else self.en_tokens
        _check(self.spm_vocab >= 1, "spm_vocab", "must be at least 1", self.spm_vocab)

    @property
    def uses_spm(self) -> bool:
        """Whether a side is split into SentencePiece subwords."""
        return "spm" in (self.zh_tokens, self.en_tokens)


@dataclass
class ModelConfig:
    """Sizes of the encoder-decoder; the defaults are the lesson's."""

    emb_dim: int = setting(256, "word-vector size")
    hid_dim: int = setting(512, "GRU hidden size")
    n_layers: int = setting(2, "stacked GRU layers")
    dropout: float = setting(0.5, "dropout probability")
    bidirectional: bool = setting(False, "bidirectional encoder")
    attention: Literal["none", "bahdanau", "dot", "general"] = setting(
        "none", "attention over the source words")
    arch: Literal["gru", "transformer"] = setting(
        "gru", "the architecture: gru = the lesson's recurrent encoder-decoder (emb/hid dims, "
               "--attention); transformer = self-attention layers (--d-model, --n-heads, "
               "--ff-dim; --n-layers each side)")
    d_model: int = setting(256, "transformer: the size of every position's vector")
    n_heads: int = setting(4, "transformer: attention heads per layer (must divide --d-model)")
    ff_dim: int = setting(1024, "transformer: hidden size of each layer's feed-forward part")

    def __post_init__(self) -> None:
        for name in ("emb_dim", "hid_dim", "n_layers"):
            _check(getattr(self, name) >= 1, name, "must be at least 1", getattr(self, name))
        _check(0 <= self.dropout < 1, "dropout", "must be in [0, 1)", self.dropout)
        _check(self.attention in ("none", "bahdanau", "dot", "general"), "attention",
               "must be none, bahdanau, dot or general", self.attention)
        _check(self.arch in ("gru", "transformer"), "arch", "must be gru or transformer",
               self.arch)
        for name in ("d_model", "n_heads", "ff_dim"):
            _check(getattr(self, name) >= 1, name, "must be at least 1", getattr(self, name))
        if self.d_model % self.n_heads:
            raise ConfigError("d_model", f"must be a multiple of n_heads ({self.n_heads}), got "
                                         f"{self.d_model}", also=("n_heads",))


@dataclass
class TrainConfig:
    """Optimisation settings.

    ``teacher_forcing_ratio=1.0`` lets the decoder read the whole target in one fused GRU call;
    the lesson used 0.5, which forces a step-by-step loop.
    """

    epochs: int = setting(10, "passes over the data")
    batch_size: int = setting(64, "sentences per batch")
    lr: float = setting(1e-3, "Adam learning rate")
    clip: float = setting(1.0, "gradient-norm clipping, 0 = off")
    teacher_forcing_ratio: float = setting(
        1.0, "probability of feeding the true previous word (the lesson used 0.5)",
        flag="--teacher-forcing")
    bucket: bool = setting(True, "batches of similar lengths (default; --no-bucket: plain "
                                  "shuffled batches)")
    seed: int = setting(0, "seed of training (the command line's --seed sets both seeds)",
                        flag=None)
    device: str = setting("auto", "auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:1 or mps")
    # auto = bf16 autocast where the device computes it natively, fp32 elsewhere (see device.py)
    precision: Literal["auto", "fp32", "bf16", "fp16", "amp"] = setting(
        "auto", "number format: auto = bf16 where the device computes it natively, else fp32; "
                "amp = bf16 where native, else fp16 on a CUDA GPU")
    checkpoint_path: str | None = setting(
        None, "the best checkpoint; the last state goes beside it (model.last.pt), and so do "
              "model.config.yaml and model.metrics.jsonl/.csv", flag="--out",
        cli_default="checkpoints/model.pt")
    # the state after the latest validation, to resume a run exactly where it stopped
    last_checkpoint_path: str | None = setting(
        None, "the last state (the command line puts it beside checkpoint_path)", flag=None)
    valid_every: int = setting(0, "also validate and write the checkpoints every N steps "
                                  "(0: once per epoch)", metavar="N")
    # learning-rate schedule: "plateau" multiplies lr by lr_factor after lr_patience + 1
    # validations in a row without a new best (torch's ReduceLROnPlateau)
    # "inverse_sqrt" (the Transformer's, Vaswani et al. 2017): lr * step / warmup_steps for the
    # first warmup_steps optimizer steps, then lr * sqrt(warmup_steps / step)
    lr_schedule: Literal["none", "plateau", "inverse_sqrt"] = setting(
        "none", "plateau: multiply the learning rate by --lr-factor when the best metric stops "
                "improving; inverse_sqrt: rise linearly to --lr over --warmup-steps steps, then "
                "fall as 1/sqrt(step)")
    lr_factor: float = setting(0.5, "plateau factor")
    # a linear cool-down on top of any schedule: budgeted runs end at a low learning rate
    # whether the budget is --max-minutes or --epochs (whichever is nearer its end counts)
    cooldown: float = setting(
        0.0, "the last share of the run (of --max-minutes, or of --epochs, whichever ends "
             "first) over which the learning rate falls linearly to 0 (0: off)", metavar="X")
    # 0: as many steps as one epoch has (at most AUTO_WARMUP_MAX), so that a small corpus
    # reaches its peak rate soon and a larger one does not decay before it has seen its data
    warmup_steps: int = setting(4000, "inverse_sqrt: optimizer steps of the linear warm-up (0: "
                                      f"one epoch's steps, at most {AUTO_WARMUP_MAX})",
                                metavar="N")
    label_smoothing: float = setting(
        0.0, "training loss: give this share of each target's probability to the other words "
             "(0 = plain cross-entropy; the validation loss is always plain)")
    lr_patience: int = setting(0, "plateau: validations without improvement tolerated before "
                                  "each cut", metavar="N")
    patience: int = setting(0, "early stopping: end after N validations without a new best "
                               "(0: off)", metavar="N")
    # "auto": BLEU when a validation BLEU is computed, else loss. Measured on the demo recipe
    # (bench/best_metric.py, 3 seeds): best-by-BLEU gave +0.82 [+0.07, +1.58] beam-5 test BLEU
    best_metric: Literal["auto", "loss", "bleu"] = setting(
        "auto", "which validation keeps the best checkpoint: lowest loss, highest BLEU, or auto "
                "(BLEU when --valid-bleu-sample > 0, else loss)")
    valid_bleu_sample: int = setting(0, "greedy BLEU on N validation pairs at every validation, "
                                        "0 = none", metavar="N", cli_default=500)
    max_minutes: float | None = setting(
        None, "time budget: stop after the step that crosses M minutes, keeping the best "
              "checkpoint", metavar="M")
    max_tokens: int | None = setting(
        None, "batches of at most N padded tokens instead of --batch-size sentences (a "
              "preprocessed cache only)", metavar="N")
    loader_workers: int = setting(
        0, "DataLoader processes that prefetch batches (a preprocessed cache only)", metavar="N")
    accumulate: int = setting(
        1, "gradient accumulation: one optimizer step per K batches (per process), the loss "
           "averaged over all their tokens: a K times larger batch in the same memory",
        metavar="K")
    sync_every: int = setting(
        25, "several processes: agree on the training loss and on stop requests every N steps "
            "(one collective; a Stop or Ctrl-C ends all of them at that step)", metavar="N")
    # the output layer and the loss over this many target tokens at a time (loss.py): the
    # [tokens, vocab] logits of a whole batch are never held at once
    loss_chunk: int = setting(
        1024, "project the decoder states onto the vocabulary and score them N target tokens "
              "at a time (less memory; 0: the whole batch at once)", metavar="N")
    compile: bool = setting(
        False, "torch.compile the model (needs a C++ compiler on the CPU; without one, or if "
               "compiling fails, training runs uncompiled and says so in one line)")

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, "epochs", "must be at least 1", self.epochs)
        _check(self.batch_size >= 1, "batch_size", "must be at least 1", self.batch_size)
        _check(self.lr > 0, "lr", "must be positive", self.lr)
        _check(self.clip >= 0, "clip", "must be 0 (off) or positive", self.clip)
        _check(0 <= self.teacher_forcing_ratio <= 1, "teacher_forcing_ratio",
               "must be between 0 and 1", self.teacher_forcing_ratio)
        _check(self.precision in ("auto", "fp32", "bf16", "fp16", "amp"), "precision",
               "must be auto, fp32, bf16 or fp16", self.precision)
        _check(self.valid_every >= 0, "valid_every", "must be 0 (per epoch) or positive",
               self.valid_every)
        _check(self.lr_schedule in ("none", "plateau", "inverse_sqrt"), "lr_schedule",
               "must be none, plateau or inverse_sqrt", self.lr_schedule)
        _check(self.warmup_steps >= 0, "warmup_steps", "must be 0 (one epoch) or more",
               self.warmup_steps)
        _check(0 <= self.label_smoothing < 1, "label_smoothing", "must be in [0, 1)",
               self.label_smoothing)
        _check(0 < self.lr_factor < 1, "lr_factor", "must be between 0 and 1", self.lr_factor)
        _check(0 <= self.cooldown <= 1, "cooldown", "must be in [0, 1] (0: off)", self.cooldown)
        _check(self.lr_patience >= 0, "lr_patience", "must be 0 or more", self.lr_patience)
        _check(self.patience >= 0, "patience", "must be 0 (off) or more", self.patience)
        _check(self.best_metric in ("auto", "loss", "bleu"), "best_metric",
               "must be auto, loss or bleu",
               self.best_metric)
        _check(self.valid_bleu_sample >= 0, "valid_bleu_sample", "must be 0 (off) or more",
               self.valid_bleu_sample)
        _check(self.best_metric != "bleu" or self.valid_bleu_sample > 0, "best_metric",
               "bleu needs a validation BLEU (valid_bleu_sample > 0)", self.valid_bleu_sample)
        _check(self.max_minutes is None or self.max_minutes > 0, "max_minutes",
               "must be positive", self.max_minutes)
        _check(self.max_tokens is None or self.max_tokens >= 1, "max_tokens",
               "must be at least 1", self.max_tokens)
        _check(self.loader_workers >= 0, "loader_workers", "must be 0 or more",
               self.loader_workers)
        _check(self.accumulate >= 1, "accumulate", "must be at least 1", self.accumulate)
        _check(self.sync_every >= 1, "sync_every", "must be at least 1", self.sync_every)
        _check(self.loss_chunk >= 0, "loss_chunk", "must be 0 (one piece) or more",
               self.loss_chunk)

    @property
    def best_by(self) -> Literal["loss", "bleu"]:
        """What "best" means for this run: ``best_metric`` with ``auto`` resolved."""
        if self.best_metric == "auto":
            return "bleu" if self.valid_bleu_sample > 0 else "loss"
        return self.best_metric


def demo_configs() -> tuple[DataConfig, ModelConfig, TrainConfig]:
    """What ``make demo`` trains (``train --preset demo``): the best model for a few CPU minutes.

    One character per Chinese token, a one-layer bidirectional encoder and additive attention;
    every other setting is the lesson's default.
    """
    return (DataConfig(min_freq=1, zh_tokens="char"),
            ModelConfig(emb_dim=256, hid_dim=512, n_layers=1, dropout=0.5, bidirectional=True,
                        attention="bahdanau"),
            TrainConfig(epochs=14, lr=1e-3))


def transformer_configs() -> tuple[DataConfig, ModelConfig, TrainConfig]:
    """What ``train --preset transformer`` trains: a Transformer sized for a few CPU minutes
    (``--max-minutes 10`` is its natural use; the epochs only bound it).

    The demo's data (one character per Chinese token); 3 + 3 pre-norm layers of size 256 with 4
    heads, dropout 0.1; a linear warm-up over one epoch's steps (at most 4000) to lr 1e-3, then
    the inverse-sqrt decay, and over the last 30 % of the run (of ``--max-minutes``, or of the
    epochs) a linear cool-down to 0; label smoothing 0.1.

    On HSK, in 3-minute runs on a loaded CPU, warm-up 100 / dropout 0.1 did better than warm-up
    300 / dropout 0.1 and warm-up 100 / dropout 0.3 (validation BLEU); an HSK epoch is about 60
    steps. On 24,300 Tatoeba pairs (380 steps an epoch), warm-up 400 did better than 100, and
    the cool-down gave a small gain that one run cannot tell from noise
    (``bench/bench_presets.py``; the README has the figures).
    """
    return (DataConfig(min_freq=1, zh_tokens="char"),
            ModelConfig(arch="transformer", d_model=256, n_heads=4, ff_dim=1024, n_layers=3,
                        dropout=0.1),
            TrainConfig(epochs=100, lr=1e-3, lr_schedule="inverse_sqrt", warmup_steps=0,
                        cooldown=0.3, label_smoothing=0.1))


PRESETS = ("lesson", "demo", "transformer")


def preset_configs(name: str) -> tuple[DataConfig, ModelConfig, TrainConfig]:
    """The settings ``train --preset NAME`` starts from: ``lesson`` is the dataclass defaults
    (the lesson's own), ``demo`` :func:`demo_configs`, ``transformer``
    :func:`transformer_configs`."""
    if name == "lesson":
        return DataConfig(), ModelConfig(), TrainConfig()
    if name == "demo":
        return demo_configs()
    if name == "transformer":
        return transformer_configs()
    raise ValueError(f"unknown preset {name!r}: use one of {', '.join(PRESETS)}")


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-dict view of a config, safe for JSON and ``torch.load(weights_only=True)``."""
    return asdict(cfg)


def from_dict(cls: type[T], values: dict[str, Any]) -> T:
    """Rebuild a config, ignoring keys a newer or older version does not know."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in values.items() if k in known})
