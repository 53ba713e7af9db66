"""``evaluate``: loss, perplexity and BLEU of a checkpoint on its own held-out split (rebuilt
from its corpus, or read from the preprocessed cache it was trained on)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import add_decode_args, add_inference_args, check_beam, load_translator, report


def add_parser(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("evaluate", help="BLEU and perplexity of a checkpoint on its test split",
                        allow_abbrev=False,
                        description="Rebuild the checkpoint's corpus split and score the test part.")
    add_inference_args(ev)
    ev.add_argument("--split", choices=["test", "valid"], default="test",
                    help="which held-out split to score (default test)")
    ev.add_argument("--examples", type=int, default=5, help="sample translations to show (default 5)")
    ev.add_argument("--data-dir", metavar="DIR",
                    help="score the split of this preprocessed cache (default: the cache the "
                         "checkpoint was trained on, if any)")
    add_decode_args(ev)
    ev.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from ..batching import TranslationDataset
    from ..data import load_corpus
    from ..pipeline import prepare_data

    check_beam(args)
    translator = load_translator(args)
    if args.data_dir or translator.data_cfg.data_dir:
        return _evaluate_cache(args, translator)
    data = prepare_data(translator.data_cfg, load_corpus(translator.data_cfg),
                        vocabs=(translator.src_vocab, translator.trg_vocab))
    pairs = getattr(data.splits, args.split)
    if not pairs:
        raise ValueError(f"the {args.split} split of this checkpoint's corpus is empty")
    # score with the checkpoint's own vocabularies, not ones rebuilt from the corpus
    ds = TranslationDataset(*data.tokens[args.split], translator.src_vocab, translator.trg_vocab)
    _score(args, translator, ds, pairs, "")


def _score(args: argparse.Namespace, translator, dataset, pairs, where: str) -> None:
    from ..batching import make_loader
    from ..metrics import perplexity
    from ..train import evaluate_loss

    loss = evaluate_loss(translator.model, make_loader(dataset, 256, bucket=False, shuffle=False),
                         translator.device)
    print(f"{args.split} loss = {loss:.3f}, perplexity = {perplexity(loss):.1f}{where}")
    report(translator, pairs, args.examples, args.split, args.beam, args.length_penalty)


def _evaluate_cache(args: argparse.Namespace, translator) -> None:
    """``evaluate`` on a split of a preprocessed cache, with the checkpoint's vocabularies."""
    from ..batching import TranslationDataset
    from ..cache import CacheError, load_cache
    from ..pipeline import tokenize_pairs

    cfg = translator.data_cfg
    if not args.data_dir and not Path(cfg.data_dir).is_dir():
        raise CacheError(f"this checkpoint was trained on the cache {cfg.data_dir}, which is not "
                         "there any more: give its new place with --data-dir")
    data = load_cache(args.data_dir or cfg.data_dir)
    _warn_other_split(cfg, data, args.split)
    pairs = data.pairs(args.split)
    if not pairs:
        raise ValueError(f"the {args.split} split of {data.path} is empty")
    same_ids = (cfg.cache_hash == data.cache_hash and data.src_vocab.itos == translator.src_vocab.itos
                and data.trg_vocab.itos == translator.trg_vocab.itos)
    if same_ids:  # the cached ids are the ones the checkpoint's vocabularies give
        ds = getattr(data, args.split)
    else:  # tokenize the held-out text as the checkpoint's training data was
        ds = TranslationDataset(*tokenize_pairs(pairs, cfg.lowercase, cfg.zh_tokens, None,
                                                (translator.src_vocab, translator.trg_vocab)),
                                translator.src_vocab, translator.trg_vocab)
    _score(args, translator, ds, pairs, f"  ({data.path})")


def _warn_other_split(cfg, data, split: str) -> None:
    """A warning when the cache's held-out split is not the one the checkpoint held out."""
    if cfg.cache_hash is None:
        print(f"warning: this checkpoint was trained from text files, not from a cache: the "
              f"{split} split of {data.path} is not the split it held out, and may contain "
              "sentences it was trained on", file=sys.stderr)
    elif cfg.cache_hash != data.cache_hash:
        print(f"warning: this checkpoint was trained on another cache ({cfg.data_dir}, hash "
              f"{cfg.cache_hash[:12]}), not on {data.path} (hash {data.cache_hash[:12]}): the "
              f"{split} split here is not the split it held out, and may contain sentences "
              "it was trained on", file=sys.stderr)
