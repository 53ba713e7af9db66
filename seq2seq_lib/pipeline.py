"""From a :class:`DataConfig` to vocabularies and datasets, tokenizing every sentence only once."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .batching import TranslationDataset
from .config import DataConfig
from .data import Corpus, Pair, Splits, check_held_out, load_corpus, split_pairs
from .script import pairs_in_script
from .subword import SubwordVocab
from .tokenize import (
    check_tokens,
    load_user_dict,
    source_tokens,
    target_tokens,
    tokenize_en,
    zh_mode,
)
from .truecase import TrueCaser
from .vocab import Vocab

Tokenized = tuple[list[list[str]], list[list[str]]]  # (chinese token lists, english token lists)
ZH_CHARACTER_COVERAGE = 0.9995  # SentencePiece's advice for Chinese: the rarest chars as bytes
Subwords = tuple[SubwordVocab | None, SubwordVocab | None]  # (Chinese, English); None: not spm


def tokenize_pairs(pairs: list[Pair], lowercase: bool = True, zh_tokens: str = "word",
                   user_dict: str | None = None,
                   vocabs: tuple[Vocab | None, Vocab | None] | None = None) -> Tokenized:
    """Tokenize both sides of every pair: jieba (or characters) for Chinese, spaCy for English,
    or SentencePiece pieces for a side whose vocabulary in ``vocabs`` is a
    :class:`~seq2seq_lib.subword.SubwordVocab`."""
    src_vocab, trg_vocab = vocabs or (None, None)
    if not isinstance(src_vocab, SubwordVocab) and zh_tokens != "spm":
        zh_mode(zh_tokens)  # refuse an unknown setting before any work
    return ([source_tokens(zh, zh_tokens, user_dict, src_vocab) for zh, _ in pairs],
            [target_tokens(en, lowercase, trg_vocab) for _, en in pairs])


def train_subwords(cfg: DataConfig, train_pairs: list[Pair]) -> Subwords:
    """SentencePiece vocabularies of ``cfg.spm_vocab`` pieces for the sides that ask for them
    (``zh_tokens`` / ``en_tokens`` = "spm"), trained on ``train_pairs`` (the training split)."""
    src = trg = None
    if cfg.zh_tokens == "spm":
        src = SubwordVocab.train((zh for zh, _ in train_pairs), cfg.spm_vocab,
                                 ZH_CHARACTER_COVERAGE)
    if cfg.en_tokens == "spm":
        trg = SubwordVocab.train((en.lower() if cfg.lowercase else en for _, en in train_pairs),
                                 cfg.spm_vocab)
    return src, trg


def given_subwords(cfg: DataConfig, vocabs: tuple[Vocab, Vocab]) -> Subwords:
    """The SentencePiece vocabularies among given ones (a checkpoint's), checked against ``cfg``."""
    check_tokens(cfg, *vocabs)
    return tuple(v if isinstance(v, SubwordVocab) else None for v in vocabs)  # type: ignore[return-value]


@dataclass
class PreparedData:
    """Everything training needs, built from one corpus.

    The vocabularies are counted on the training split only, so valid/test words the model never
    saw become ``<unk>`` exactly as they would for a learner's new sentence.
    """

    corpus: Corpus
    splits: Splits
    tokens: dict[str, Tokenized]
    src_vocab: Vocab
    trg_vocab: Vocab
    train: TranslationDataset
    valid: TranslationDataset
    test: TranslationDataset
    too_long: int  # training pairs left out for being longer than cfg.max_len
    truecaser: TrueCaser | None = None  # usual spellings of the training targets (lowercase=True)

    def summary(self) -> str:
        """A few lines describing the corpus, the splits and the vocabularies."""
        s = self.splits
        return (f"{self.corpus.summary()}\n"
                f"split: {len(s.train)} train / {len(s.valid)} valid / {len(s.test)} test"
                f" ({self.too_long} over-long training pairs left out)\n"
                f"vocabulary: {len(self.src_vocab)} Chinese{_spm(self.src_vocab)} / "
                f"{len(self.trg_vocab)} English{_spm(self.trg_vocab)} tokens")


def _spm(vocab: Vocab) -> str:
    return " SentencePiece" if isinstance(vocab, SubwordVocab) else ""


def sample_pairs(pairs: list[Pair], limit: int | None, seed: int = 0) -> list[Pair]:
    """A seeded random subset of ``limit`` pairs, in corpus order (all pairs when limit is None)."""
    if limit is None or limit >= len(pairs):
        return pairs
    keep = sorted(random.Random(seed).sample(range(len(pairs)), limit))
    return [pairs[i] for i in keep]


def prepare_data(cfg: DataConfig, corpus: Corpus | None = None,
                 vocabs: tuple[Vocab, Vocab] | None = None) -> PreparedData:
    """Load (unless ``corpus`` is given), sample, split, tokenize, count, and encode.

    :param vocabs: (Chinese, English) vocabularies to encode with instead of counting new ones,
        e.g. a checkpoint's when training resumes.
    """
    if cfg.user_dict:
        load_user_dict(cfg.user_dict)
    corpus = corpus if corpus is not None else load_corpus(cfg)
    pairs = pairs_in_script(sample_pairs(corpus.pairs, cfg.limit, cfg.seed), cfg.zh_script)
    splits = split_pairs(pairs, cfg.valid_frac, cfg.test_frac, cfg.seed, cfg.valid_max, cfg.test_max)
    check_held_out(cfg, len(pairs), len(splits.valid), len(splits.test))
    subwords = given_subwords(cfg, vocabs) if vocabs else train_subwords(cfg, splits.train)
    zh_train, en_train, truecaser = _tokenize_training(cfg, splits.train, subwords)
    tokens = {"train": (zh_train, en_train)}
    tokens.update({name: tokenize_pairs(getattr(splits, name), cfg.lowercase, cfg.zh_tokens,
                                          cfg.user_dict, subwords)
                   for name in ("valid", "test")})
    keep = [i for i in range(len(zh_train))
            if len(zh_train[i]) <= cfg.max_len and len(en_train[i]) <= cfg.max_len]
    too_long = len(zh_train) - len(keep)
    tokens["train"] = ([zh_train[i] for i in keep], [en_train[i] for i in keep])
    if vocabs is not None:
        src_vocab, trg_vocab = vocabs
    else:  # a SentencePiece side keeps all its pieces (min_freq and max_size are for words)
        src_vocab, trg_vocab = (sub if sub is not None else Vocab.build(toks, cfg.min_freq,
                                                                         cfg.max_size)
                                for sub, toks in zip(subwords, tokens["train"]))
    datasets = {name: TranslationDataset(*tokens[name], src_vocab, trg_vocab)
                for name in ("train", "valid", "test")}
    return PreparedData(corpus, splits, tokens, src_vocab, trg_vocab, datasets["train"],
                        datasets["valid"], datasets["test"], too_long, truecaser)


def _tokenize_training(cfg: DataConfig, pairs: list[Pair], subwords: Subwords
                       ) -> tuple[list[list[str]], list[list[str]], TrueCaser | None]:
    """The training split's Chinese and English tokens, and the truecaser of its English.

    The English words are tokenized with their case once: the truecaser learns from them (also
    for SentencePiece output, which it truecases word by word once joined into text).
    """
    zh_train = [source_tokens(zh, cfg.zh_tokens, cfg.user_dict, subwords[0]) for zh, _ in pairs]
    en_cased = ([tokenize_en(en, lowercase=False) for _, en in pairs]
                if cfg.lowercase or subwords[1] is None else [])
    truecaser = TrueCaser.fit(en_cased) if cfg.lowercase else None
    if subwords[1] is not None:
        en_train = [target_tokens(en, cfg.lowercase, subwords[1]) for _, en in pairs]
    else:
        en_train = [[t.lower() for t in sent] for sent in en_cased] if cfg.lowercase else en_cased
    return zh_train, en_train, truecaser
