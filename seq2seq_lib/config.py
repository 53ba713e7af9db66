"""Typed settings for data, model and training, with the lesson's defaults."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting that makes no sense; ``field`` names it (the CLI turns it into its flag)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field} {message}")
        self.field = field
        self.message = message


def _check(ok: bool, field: str, message: str, value: Any) -> None:
    if not ok:
        raise ConfigError(field, f"{message}, got {value!r}")


@dataclass
class DataConfig:
    """Where the pairs come from and how they are split, tokenized and counted.

    :param source: ``"hsk"`` (embedded corpus), ``"parallel"`` (two aligned files) or ``"tsv"``.
    """

    source: Literal["hsk", "parallel", "tsv"] = "hsk"
    src_path: str | None = None
    trg_path: str | None = None
    tsv_path: str | None = None
    valid_frac: float = 0.05
    test_frac: float = 0.05
    seed: int = 0
    lowercase: bool = True
    min_freq: int = 2
    max_size: int = 10_000
    max_len: int = 60  # pairs with a longer side (in tokens) are left out of training
    user_dict: str | None = None
    # Chinese tokens: "word" = jieba's precise mode (the lesson's choice), "char" = one per character
    zh_tokens: Literal["word", "char"] = "word"
    limit: int | None = None  # keep a seeded random sample of this many pairs (quick runs)
    data_dir: str | None = None  # the preprocessed cache trained on (``train --data-dir``), if any
    cache_hash: str | None = None  # that cache's manifest hash, so evaluation can check it

    def __post_init__(self) -> None:
        _check(self.min_freq >= 1, "min_freq", "must be at least 1", self.min_freq)
        _check(self.max_size >= 4, "max_size", "must be at least 4 (the special tokens)",
               self.max_size)
        _check(self.max_len >= 1, "max_len", "must be at least 1", self.max_len)
        _check(self.limit is None or self.limit >= 1, "limit", "must be at least 1", self.limit)
        _check(0 <= self.valid_frac < 1 and 0 <= self.test_frac < 1
               and self.valid_frac + self.test_frac < 1, "valid_frac",
               "valid_frac and test_frac must be in [0, 1) and leave pairs to train on",
               (self.valid_frac, self.test_frac))
        _check(self.zh_tokens in ("word", "char"), "zh_tokens", "must be word or char",
               self.zh_tokens)


@dataclass
class ModelConfig:
    """Sizes of the encoder-decoder; the defaults are the lesson's."""

    emb_dim: int = 256
    hid_dim: int = 512
    n_layers: int = 2
    dropout: float = 0.5
    bidirectional: bool = False
    attention: Literal["none", "bahdanau", "dot", "general"] = "none"

    def __post_init__(self) -> None:
        for name in ("emb_dim", "hid_dim", "n_layers"):
            _check(getattr(self, name) >= 1, name, "must be at least 1", getattr(self, name))
        _check(0 <= self.dropout < 1, "dropout", "must be in [0, 1)", self.dropout)
        _check(self.attention in ("none", "bahdanau", "dot", "general"), "attention",
               "must be none, bahdanau, dot or general", self.attention)


@dataclass
class TrainConfig:
    """Optimisation settings.

    ``teacher_forcing_ratio=1.0`` lets the decoder read the whole target in one fused GRU call;
    the lesson used 0.5, which forces a step-by-step loop.
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    clip: float = 1.0
    teacher_forcing_ratio: float = 1.0
    bucket: bool = True
    seed: int = 0
    device: str = "auto"
    # auto = bf16 autocast where the device computes it natively, fp32 elsewhere (see device.py)
    precision: Literal["auto", "fp32", "bf16", "fp16", "amp"] = "auto"
    checkpoint_path: str | None = None  # the best state (by best_metric) is kept here
    # the state after the latest validation, to resume a run exactly where it stopped
    last_checkpoint_path: str | None = None
    valid_every: int = 0  # also validate and checkpoint every this many steps (0: per epoch only)
    # learning-rate schedule: "plateau" multiplies lr by lr_factor after lr_patience + 1
    # validations in a row without a new best (torch's ReduceLROnPlateau)
    lr_schedule: Literal["none", "plateau"] = "none"
    lr_factor: float = 0.5
    lr_patience: int = 0
    patience: int = 0  # early stopping: end after this many validations without a new best (0: off)
    best_metric: Literal["loss", "bleu"] = "loss"  # what "best" means: lower loss or higher BLEU
    valid_bleu_sample: int = 0  # greedy BLEU on this many validation pairs at each validation
    max_minutes: float | None = None  # time budget: stop after the step that crosses it

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
        _check(self.lr_schedule in ("none", "plateau"), "lr_schedule", "must be none or plateau",
               self.lr_schedule)
        _check(0 < self.lr_factor < 1, "lr_factor", "must be between 0 and 1", self.lr_factor)
        _check(self.lr_patience >= 0, "lr_patience", "must be 0 or more", self.lr_patience)
        _check(self.patience >= 0, "patience", "must be 0 (off) or more", self.patience)
        _check(self.best_metric in ("loss", "bleu"), "best_metric", "must be loss or bleu",
               self.best_metric)
        _check(self.valid_bleu_sample >= 0, "valid_bleu_sample", "must be 0 (off) or more",
               self.valid_bleu_sample)
        _check(self.best_metric != "bleu" or self.valid_bleu_sample > 0, "best_metric",
               "bleu needs a validation BLEU (valid_bleu_sample > 0)", self.valid_bleu_sample)
        _check(self.max_minutes is None or self.max_minutes > 0, "max_minutes",
               "must be positive", self.max_minutes)


def demo_configs() -> tuple[DataConfig, ModelConfig, TrainConfig]:
    """What ``make demo`` trains (``train --preset demo``): the best model for a few CPU minutes.

    One character per Chinese token, a one-layer bidirectional encoder and additive attention;
    every other setting is the lesson's default.
    """
    return (DataConfig(min_freq=1, zh_tokens="char"),
            ModelConfig(emb_dim=256, hid_dim=512, n_layers=1, dropout=0.5, bidirectional=True,
                        attention="bahdanau"),
            TrainConfig(epochs=14, lr=1e-3))


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-dict view of a config, safe for JSON and ``torch.load(weights_only=True)``."""
    return asdict(cfg)


def from_dict(cls: type[T], values: dict[str, Any]) -> T:
    """Rebuild a config, ignoring keys a newer or older version does not know."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in values.items() if k in known})
