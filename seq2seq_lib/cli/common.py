"""What several commands share: decoding and device flags, the BLEU report, error lines."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

Pair = tuple[str, str]


def add_decode_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("decoding")
    g.add_argument("--beam", type=int, default=1, metavar="N",
                   help="beam size; 1 = greedy decoding (default 1)")
    g.add_argument("--length-penalty", type=float, default=0.6, metavar="ALPHA",
                   help="GNMT length-penalty exponent for beam search; 0 = none (default 0.6)")


def add_inference_args(p: argparse.ArgumentParser) -> None:
    """``--checkpoint``, ``--device`` and ``--precision`` of ``translate`` and ``evaluate``."""
    from ..device import PRECISIONS

    p.add_argument("--checkpoint", required=True, help="checkpoint written by 'train'")
    p.add_argument("--device", default="auto",
                   help="auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:1 or mps (default auto)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="number format: auto = bf16 where the device computes it natively, "
                        "else fp32 (default auto)")


def check_beam(args: argparse.Namespace) -> None:
    if args.beam < 1:
        raise ValueError(f"--beam must be at least 1, got {args.beam}")


def load_translator(args: argparse.Namespace):
    """The checkpoint's :class:`~seq2seq_lib.translator.Translator` on ``--device``."""
    from ..device import choose_device
    from ..translator import Translator

    try:
        device = choose_device(args.device, verbose=False)
    except ValueError as exc:
        raise ValueError(f"--device {args.device}: {str(exc).split(': ', 1)[-1]}") from None
    return Translator.from_checkpoint(args.checkpoint, device=str(device),
                                      precision=args.precision)


def report(translator: Any, pairs: Sequence[Pair], n_examples: int, label: str, beam: int = 1,
           length_penalty: float = 0.6) -> None:
    """BLEU of ``translator`` on ``pairs`` (case-insensitive and cased) and a few examples."""
    from ..metrics import bleu_signature, corpus_bleu

    score, hyps = translator.bleu(pairs, beam_size=beam, length_penalty=length_penalty)
    how = "greedy" if beam == 1 else f"beam {beam}, length penalty {length_penalty:g}"
    lowercase = translator.data_cfg.lowercase
    cased = corpus_bleu(hyps, [en for _, en in pairs]) if lowercase else score
    print(f"{label} BLEU = {score.score:.2f} {'case-insensitive, ' if lowercase else ''}"
          f"{cased.score:.2f} cased  ({len(pairs)} sentences, {how}; "
          f"sacreBLEU {bleu_signature(lowercase)})")
    for (zh, en), hyp in list(zip(pairs, hyps))[:n_examples]:
        print(f"  {zh}\n    reference: {en}\n    model:     {hyp}")


def use_utf8_streams() -> None:
    """Standard input, output and error in UTF-8 whatever the locale (Windows code pages)."""
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and (getattr(stream, "encoding", "") or "").lower() != "utf-8":
            try:
                reconfigure(encoding="utf-8")
            except (ValueError, OSError):  # already read from / not reconfigurable
                pass


def say(message: str) -> None:
    """An error line on standard error, written once: by the first of several processes."""
    if os.environ.get("RANK", "0") == "0":
        print(message, file=sys.stderr)
