"""``preprocess``: tokenize a corpus once into a cache folder that ``train --data-dir`` streams."""

from __future__ import annotations

import argparse

from .flags import add_flags, given
from .settings import Layer, build, default_layer, derive_source

# the data settings a cache is built with (``limit`` samples in memory; a cache holds it all)
CACHE_SETTINGS = ("valid_frac", "test_frac", "seed", "lowercase", "min_freq", "max_size",
                  "max_len", "user_dict", "zh_tokens", "valid_max", "test_max", "en_tokens",
                  "tokens", "spm_vocab", "zh_script")


def add_parser(sub: argparse._SubParsersAction) -> None:
    pp = sub.add_parser(
        "preprocess", help="tokenize a corpus once into a cache folder that training streams",
        allow_abbrev=False,
        description="Read a corpus as a stream, split it, tokenize it in parallel worker processes, "
                    "and write token ids (memory-mapped NumPy arrays), both vocabularies and a "
                    "manifest to --out. Running it again on the same input reuses the folder.")
    g = pp.add_argument_group("input (one of)")
    add_flags(g, "data", only=("source", "src_path", "trg_path", "tsv_path"))
    g = pp.add_argument_group("settings (the same defaults as train)")
    add_flags(g, "data", only=CACHE_SETTINGS)
    g = pp.add_argument_group("output")
    g.add_argument("--out", required=True, metavar="DIR", help="the cache folder to write")
    g.add_argument("--workers", type=int, metavar="N",
                   help="tokenizer processes (default: the number of CPUs)")
    g.add_argument("--force", action="store_true",
                   help="replace a cache in --out that was built from other inputs or settings")
    g.add_argument("--quiet", action="store_true", help="no progress bar (there is none "
                                                        "unless standard error is a terminal)")
    pp.set_defaults(run=run)


def data_config(args: argparse.Namespace):
    """The :class:`DataConfig` of the flags; the corpus is one of --data, --src/--trg, --tsv."""
    flags = Layer("the command line", given(args), is_flags=True)
    check_one_source(flags)
    if not flags.values["data"]:
        raise ValueError("name the corpus: --data hsk, --src FILE --trg FILE, or --tsv FILE")
    derive_source(flags)
    return build([default_layer(), flags])[0]


def check_one_source(flags: Layer) -> None:
    """At most one corpus on the command line, and --src with --trg."""
    data = flags.values["data"]
    named = [f for f, keys in (("--data", ("source",)), ("--src/--trg", ("src_path", "trg_path")),
                               ("--tsv", ("tsv_path",))) if any(k in data for k in keys)]
    if len(named) > 1:
        raise ValueError(f"give one corpus: {' or '.join(named)}, not both")
    if ("src_path" in data) != ("trg_path" in data):
        raise ValueError("--src and --trg must be given together")


def run(args: argparse.Namespace) -> None:
    from .. import cache
    from ..cache import CacheError

    cfg = data_config(args)
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    try:
        result = cache.preprocess(cfg, args.out, workers=args.workers, force=args.force,
                                  progress=not args.quiet)
    except KeyboardInterrupt:
        raise CacheError(f"interrupted: nothing was written to {args.out}") from None
    print(result.summary())
