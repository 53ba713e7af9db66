"""Decoding speed (greedy against beam 5) and the memory of additive attention in training.

    python bench/bench_decode.py                       # random demo-sized model, ~3 minutes
    python bench/bench_decode.py --checkpoint checkpoints/demo.pt
    python bench/bench_decode.py --train-epochs 2      # a briefly trained demo model

(a) Sentences/s over the HSK test split (the first ``--sentences``), decoding pre-encoded,
length-sorted batches as ``Translator`` does (128 rows per batch, so 25 sentences for beam 5),
in fp32 and under bf16 autocast on the CPU: batched greedy, the vectorised beam 5, and the former
beam search when ``tests/reference_beam.py`` is there (it is loaded from its path; it is no part
of the library). A random model never says ``<eos>``, so every sentence runs ``max_len`` steps:
the ratios hold per step, and a trained model (``--checkpoint``) gives the realistic figures.

(b) One training forward + backward of the demo-sized attention model at batch 128, source
and target length 60, attention dimension 512: additive attention in one piece (before) and in
chunks of target steps (after). Each variant runs in a fresh process and reports the growth of
its peak resident memory, the largest tensor it created, and the seconds it took.

Prints a table and one JSON line (``BENCH-DECODE {...}``). Timings are the best of
``--repeats`` runs; on a shared machine they are noisy.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import measure  # noqa: E402 - bench/ is not a package

REFERENCE = HERE.parent / "tests" / "reference_beam.py"
MARK = "BENCH-DECODE "
BATCH_ROWS = 128  # the Translator's default batch, shared by the beams of its sentences


def load_reference() -> Callable[..., Any] | None:
    """The former beam search from ``tests/reference_beam.py``, or None when it is absent."""
    if not REFERENCE.is_file():
        return None
    spec = importlib.util.spec_from_file_location("reference_beam", REFERENCE)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.reference_beam_search


# ---------------------------------------------------------------- (a) decoding speed


def demo_translator(checkpoint: str | None, train_epochs: int):
    """A Translator of the demo recipe's shape, and the test split's Chinese sentences."""
    from seq2seq_lib import Translator, prepare_data
    from seq2seq_lib.config import demo_configs
    from seq2seq_lib.recipe import new_model, train_model

    data_cfg, model_cfg, train_cfg = demo_configs()
    data = prepare_data(data_cfg)
    sentences = [zh for zh, _ in data.splits.test]
    if checkpoint:
        return Translator.from_checkpoint(checkpoint, precision="fp32"), sentences, "checkpoint"
    if train_epochs > 0:
        cfg = replace(train_cfg, epochs=train_epochs, device="cpu")
        model, _ = train_model(data, data_cfg, model_cfg, cfg, progress=False)
        kind = f"demo recipe, {train_epochs} epoch(s)"
    else:
        model, kind = new_model(data, model_cfg), "random weights"
    model.eval()
    return (Translator(model, data.src_vocab, data.trg_vocab, data_cfg, model_cfg,
                       precision="fp32"), sentences, kind)


def encoded_batches(translator, sentences: list[str], sentences_per_batch: int):
    """Length-sorted batches of encoded sentences, as ``Translator.n_best_hypotheses`` makes."""
    order = sorted(sentences, key=len)
    return [translator.encode(order[i : i + sentences_per_batch])
            for i in range(0, len(order), sentences_per_batch)]


def decode_speeds(translator, sentences: list[str], repeats: int, max_len: int
                  ) -> dict[str, Any]:
    """Sentences/s of greedy, beam 5 and (if present) the former beam 5, in fp32 and bf16."""
    from seq2seq_lib import beam_search, greedy_decode
    from seq2seq_lib.device import PrecisionChoice, autocast, best_time

    reference = load_reference()
    greedy_batches = encoded_batches(translator, sentences, BATCH_ROWS)
    beam_batches = encoded_batches(translator, sentences, BATCH_ROWS // 5)
    searches = {"greedy": lambda s, n: greedy_decode(translator.model, s, n, max_len),
                "beam5": lambda s, n: beam_search(translator.model, s, n, 5, max_len)}
    if reference is not None:
        searches["beam5_former"] = lambda s, n: reference(translator.model, s, n, 5, max_len)
    out: dict[str, Any] = {}
    for precision in ("fp32", "bf16"):
        choice = PrecisionChoice(precision, "bench")
        row: dict[str, Any] = {}
        for name, search in searches.items():
            batches = greedy_batches if name == "greedy" else beam_batches

            def run(search=search, batches=batches, choice=choice):
                with autocast(translator.device, choice):
                    return [search(src, lens) for src, lens in batches]

            run()  # warm-up
            seconds, _ = best_time(run, repeats)
            row[name] = len(sentences) / seconds
        row["beam5_vs_greedy"] = row["beam5"] / row["greedy"]
        if reference is not None:
            row["same_as_former"] = same_results(translator, beam_batches, reference, choice,
                                                 max_len)
        out[precision] = row
    return out


def same_results(translator, batches, reference, choice, max_len: int) -> bool:
    """Whether the vectorised beam gives the former one's ids (and scores within 1e-5)."""
    from seq2seq_lib import beam_search
    from seq2seq_lib.device import autocast

    with autocast(translator.device, choice):
        for src, lens in batches:
            new = beam_search(translator.model, src, lens, 5, max_len)
            old = reference(translator.model, src, lens, 5, max_len)
            for a, b in zip(new, old):
                if a[0].ids != b[0].ids or abs(a[0].score - b[0].score) > 1e-5:
                    return False
    return True


# ---------------------------------------------------------------- (b) attention memory


def memory_worker(variant: str, batch: int, length: int) -> dict[str, Any]:
    """One forward + backward of the demo-sized attention model (``measure.attention_memory``,
    which ``bench.py`` runs too); runs in its own process."""
    return asdict(measure.attention_memory(variant, batch, length))


def attention_memory(batch: int, length: int) -> list[dict[str, Any]]:
    """Run :func:`memory_worker` for both variants, each in a fresh process."""
    rows = []
    for variant in ("one piece", "chunked"):
        spec = json.dumps({"variant": variant, "batch": batch, "length": length})
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--memory-worker",
                               spec], stdout=subprocess.PIPE, text=True, check=True)
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return rows


# ---------------------------------------------------------------- report


def report(kind: str, n: int, speeds: dict[str, Any], memory: list[dict[str, Any]],
           batch: int, length: int) -> None:
    if speeds:
        print(f"\n(a) decoding, {n} HSK test sentences, demo-sized model ({kind}), "
              f"{torch.get_num_threads()} threads; sentences/s, best of the runs")
        names = [k for k in speeds["fp32"] if isinstance(speeds["fp32"][k], float)]
        print(f"{'precision':<10}" + "".join(f"{k:>16}" for k in names))
        for precision, row in speeds.items():
            cells = "".join(f"{row[k]:>16.{3 if k == 'beam5_vs_greedy' else 1}f}" for k in names)
            same = row.get("same_as_former")
            print(f"{precision:<10}{cells}" + ("" if same is None else
                                              f"   identical to former: {same}"))
    if memory:
        print(f"\n(b) one training forward + backward, batch {batch}, lengths {length}, "
              "attn dim 512")
        print(f"{'attention':<12}{'peak RSS growth MiB':>22}{'largest tensor MiB':>20}"
              f"{'seconds':>10}")
        for row in memory:
            print(f"{row['variant']:<12}{row['peak_rss_growth_mib']:>22.0f}"
                  f"{row['largest_tensor_mib']:>20.1f}{row['seconds']:>10.2f}")
    print(MARK + json.dumps({"model": kind, "sentences": n, "threads": torch.get_num_threads(),
                             "decode": speeds, "attention_memory": memory}))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", help="a trained checkpoint (default: the demo recipe's shape)")
    p.add_argument("--train-epochs", type=int, default=0,
                   help="without --checkpoint: train the demo recipe this long first (0: random)")
    p.add_argument("--sentences", type=int, default=200, help="test sentences decoded (200)")
    p.add_argument("--max-len", type=int, default=50, help="most output words (50)")
    p.add_argument("--repeats", type=int, default=2, help="timed runs of each decoder (2)")
    p.add_argument("--batch", type=int, default=128, help="batch of the memory step (128)")
    p.add_argument("--length", type=int, default=60, help="lengths of the memory step (60)")
    p.add_argument("--only", choices=("decode", "memory"), help="run one part only")
    p.add_argument("--memory-worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.memory_worker:
        print(json.dumps(memory_worker(**json.loads(args.memory_worker))))
        return 0
    for flag in ("sentences", "repeats", "batch", "length", "max_len"):
        least = 0 if flag == "max_len" else 1
        if getattr(args, flag) < least:
            p.error(f"--{flag.replace('_', '-')} must be at least {least}, "
                    f"got {getattr(args, flag)}")
    memory = attention_memory(args.batch, args.length) if args.only != "decode" else []
    kind, n, speeds = "", 0, {}
    if args.only != "memory":
        translator, sentences, kind = demo_translator(args.checkpoint, args.train_epochs)
        sentences = sentences[: args.sentences]
        n, speeds = len(sentences), decode_speeds(translator, sentences, args.repeats,
                                                  args.max_len)
    report(kind, n, speeds, memory, args.batch, args.length)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
