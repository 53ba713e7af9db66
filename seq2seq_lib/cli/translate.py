"""``translate``: Chinese sentences (arguments, ``--input FILE`` or standard input) to English,
in batches, exactly one output line per input line."""

from __future__ import annotations

import argparse
import sys
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from .common import add_decode_args, add_inference_args, check_beam, load_translator

BOM = b"\xef\xbb\xbf"


def add_parser(sub: argparse._SubParsersAction) -> None:
    tl = sub.add_parser("translate", help="translate Chinese sentences with a checkpoint",
                        allow_abbrev=False,
                        description="Translate the sentences given as arguments, or else every "
                                    "line of --input (or standard input), in batches: exactly "
                                    "one output line per input line, blank for blank.")
    add_inference_args(tl)
    tl.add_argument("--max-len", type=int, default=50, help="most output words (default 50)")
    tl.add_argument("--input", metavar="FILE", help="a file of Chinese sentences, one a line")
    tl.add_argument("--chunk", type=int, default=256, metavar="N",
                    help="lines decoded together (default 256)")
    tl.add_argument("sentences", nargs="*", help="Chinese sentences (default: read the input)")
    add_decode_args(tl)
    tl.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    check_beam(args)
    for flag, value in (("--chunk", args.chunk), ("--max-len", args.max_len)):
        if value < 1:
            raise ValueError(f"{flag} must be at least 1, got {value}")
    if args.sentences and args.input:
        raise ValueError("give sentences as arguments or --input FILE, not both")
    translator = load_translator(args)
    n = 0
    for chunk in chunks(_input_lines(args), args.chunk):
        real = [line for line in chunk if not is_blank(line)]
        outputs = iter(translator.translate_batch(real, args.max_len, beam_size=args.beam,
                                                  length_penalty=args.length_penalty)
                       if real else [])
        for line in chunk:
            print("" if is_blank(line) else next(outputs))
        sys.stdout.flush()
        n += len(chunk)
    if n == 0:
        raise ValueError("no sentence to translate: give one as an argument or on standard input")


def _input_lines(args: argparse.Namespace) -> Iterator[str]:
    if args.sentences:
        return iter(args.sentences)
    if args.input:
        path = Path(args.input)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: input file not found")
        return _file_lines(path)
    if sys.stdin is None:
        raise ValueError("no standard input: give sentences as arguments or --input FILE")
    if sys.stdin.isatty():
        print("reading Chinese sentences from standard input, one a line (end with Ctrl-D, "
              "or Ctrl-Z then Enter on Windows)", file=sys.stderr)
    return read_lines(getattr(sys.stdin, "buffer", sys.stdin), "standard input")


def read_lines(stream: BinaryIO, name: str) -> Iterator[str]:
    """The lines of a byte stream as text, without their line ends (a BOM and CRLF accepted);
    a line that is not UTF-8 is named as the corpus readers name it: ``name:LINE``."""
    from ..data import decode_line

    for number, raw in enumerate(stream, start=1):
        if isinstance(raw, str):  # a text stream without a buffer (an embedding host)
            raw = raw.encode("utf-8", "surrogateescape")
        if number == 1 and raw.startswith(BOM):
            raw = raw[len(BOM):]
        yield decode_line(name, number, raw[:-1] if raw.endswith(b"\n") else raw)


def _file_lines(path: Path) -> Iterator[str]:
    with path.open("rb") as fh:
        yield from read_lines(fh, str(path))


def is_blank(line: str) -> bool:
    """Nothing to translate: only white space and invisible format characters (a zero-width
    space, a byte-order mark), which come back as a blank line."""
    return all(ch.isspace() or unicodedata.category(ch) == "Cf" for ch in line)


def chunks(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
