"""Command line: ``python -m seq2seq_lib preprocess | train | translate | evaluate``.

One module per command; each adds its parser (``add_parser``) and runs it (``run``). The flags of
every setting come from the config dataclasses (:mod:`.flags`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from . import evaluate, preprocess, train, translate
from .common import say, use_utf8_streams
from .flags import describe


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq_lib", allow_abbrev=False,
        description="Chinese-to-English translation with a GRU encoder-decoder.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (train, translate, evaluate, preprocess):
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 training stopped early, 2 bad input)."""
    use_utf8_streams()
    args = build_parser().parse_args(argv)
    from ..checkpoint import CheckpointError
    from ..config import ConfigError
    from ..data import CorpusError
    from ..train import TrainingError

    try:
        args.run(args)
    except ConfigError as exc:
        say(f"error: {describe(exc)}")
        return 2
    except (CorpusError, CheckpointError, ValueError, FileNotFoundError) as exc:
        say(f"error: {exc}")
        return 2
    except TrainingError as exc:
        say(f"training stopped: {exc}")
        return 1
    return 0


__all__ = ["build_parser", "main"]
