"""From a :class:`DataConfig` to vocabularies and datasets, tokenizing every sentence only once."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .batching import TranslationDataset
from .config import DataConfig
from .data import Corpus, Pair, Splits, check_held_out, load_corpus, split_pairs
from .tokenize import load_user_dict, tokenize_en, tokenize_zh, zh_mode
from .truecase import TrueCaser
from .vocab import Vocab

Tokenized = tuple[list[list[str]], list[list[str]]]  # (chinese token lists, english token lists)


def tokenize_pairs(pairs: list[Pair], lowercase: bool = True, zh_tokens: str = "word",
                   user_dict: str | None = None) -> Tokenized:
    """Tokenize both sides of every pair: jieba (or characters) for Chinese, spaCy for English."""
    mode = zh_mode(zh_tokens)
    return ([tokenize_zh(zh, mode, user_dict) for zh, _ in pairs],
            [tokenize_en(en, lowercase) for _, en in pairs])


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
                f"vocabulary: {len(self.src_vocab)} Chinese / {len(self.trg_vocab)} English tokens")


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
    pairs = sample_pairs(corpus.pairs, cfg.limit, cfg.seed)
    splits = split_pairs(pairs, cfg.valid_frac, cfg.test_frac, cfg.seed, cfg.valid_max, cfg.test_max)
    check_held_out(cfg, len(pairs), len(splits.valid), len(splits.test))
    # the training targets are tokenized with their case once: the truecaser learns from it
    zh_train, en_cased = tokenize_pairs(splits.train, lowercase=False, zh_tokens=cfg.zh_tokens,
                                        user_dict=cfg.user_dict)
    truecaser = TrueCaser.fit(en_cased) if cfg.lowercase else None
    en_train = [[t.lower() for t in sent] for sent in en_cased] if cfg.lowercase else en_cased
    tokens = {"train": (zh_train, en_train)}
    tokens.update({name: tokenize_pairs(getattr(splits, name), cfg.lowercase, cfg.zh_tokens,
                                          cfg.user_dict)
                   for name in ("valid", "test")})
    keep = [i for i in range(len(zh_train))
            if len(zh_train[i]) <= cfg.max_len and len(en_train[i]) <= cfg.max_len]
    too_long = len(zh_train) - len(keep)
    tokens["train"] = ([zh_train[i] for i in keep], [en_train[i] for i in keep])
    if vocabs is not None:
        src_vocab, trg_vocab = vocabs
    else:
        src_vocab = Vocab.build(tokens["train"][0], cfg.min_freq, cfg.max_size)
        trg_vocab = Vocab.build(tokens["train"][1], cfg.min_freq, cfg.max_size)
    datasets = {name: TranslationDataset(*tokens[name], src_vocab, trg_vocab)
                for name in ("train", "valid", "test")}
    return PreparedData(corpus, splits, tokens, src_vocab, trg_vocab, datasets["train"],
                        datasets["valid"], datasets["test"], too_long, truecaser)
