"""Which preset for your own corpus under a time budget? Train each through the command line, as
a user would, and score them on the same test split, with paired-bootstrap intervals.

    python bench/bench_presets.py --src train.zh --trg train.en                 # demo vs transformer, 10 min each
    python bench/bench_presets.py --src train.zh --trg train.en --side-by-side --minutes 20
    python bench/bench_presets.py --src train.zh --trg train.en \\
        --run "transformer=--preset transformer" --run "w400=--preset transformer --warmup-steps 400"
    python bench/bench_presets.py --limit 600 --minutes 0.3                    # a smoke run on HSK

Each run is ``python -m seq2seq_lib train --max-minutes M --seed S`` plus its own flags (the
corpus flags are added to every run), in a subprocess, writing to ``--work``. The runs of one seed
go one after another with all the cores, or with ``--side-by-side`` all at once with the cores
split between them (``OMP_NUM_THREADS``): on a machine whose speed wanders, side by side is the
fairer race, but each run then has fewer cores, so give it a longer budget (a 2-core machine's 10
minutes are about 20 minutes at 1 core each). Every checkpoint is scored on the seed's test split
(the same one for all runs: the split depends on the seed only), greedy and with beam search,
case-insensitive sacreBLEU (the course learns lower-cased English) and chrF; each run after the
first gets the paired-bootstrap interval of its difference to the first run.

It prints a table and, with ``--json``, writes the rows there.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
DEFAULT_RUNS = ("demo=--preset demo", "transformer=--preset transformer")


def parse_run(text: str) -> tuple[str, list[str]]:
    """``"NAME=FLAGS"`` → (NAME, the flags as a list)."""
    name, sep, flags = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"--run {text!r}: expected NAME=TRAIN FLAGS, e.g. "
                                         "'transformer=--preset transformer'")
    return name.strip(), shlex.split(flags)


def corpus_flags(args: argparse.Namespace) -> list[str]:
    """The data flags every run gets."""
    flags = ["--src", args.src, "--trg", args.trg] if args.src else []
    return flags + (["--limit", str(args.limit)] if args.limit else [])


def train_command(args: argparse.Namespace, flags: list[str], seed: int, out: Path) -> list[str]:
    return [sys.executable, "-m", "seq2seq_lib", "train", *corpus_flags(args), *flags,
            "--max-minutes", str(args.minutes), "--seed", str(seed), "--out", str(out),
            "--quiet"]


def train_all(args: argparse.Namespace, runs: list[tuple[str, list[str]]], seed: int
              ) -> dict[str, Path]:
    """Train every run of ``seed``; return each run's checkpoint. A failed run stops the bench
    and names its log."""
    work = Path(args.work) / f"seed{seed}"
    jobs = []
    env = dict(os.environ)
    if args.side_by_side:
        env["OMP_NUM_THREADS"] = str(max(1, torch.get_num_threads() // len(runs)))
    for name, flags in runs:
        out = work / name / "model.pt"
        out.parent.mkdir(parents=True, exist_ok=True)
        log = out.parent / "train.log"
        cmd = train_command(args, flags, seed, out)
        print(f"[seed {seed}] {name}: {shlex.join(cmd[1:])}  (log: {log})", flush=True)
        with open(log, "w", encoding="utf-8") as f:
            proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
        jobs.append((name, out, log, proc))
        if not args.side_by_side:
            proc.wait()
    for name, out, log, proc in jobs:
        if proc.wait() != 0 or not out.exists():
            raise SystemExit(f"run {name!r} (seed {seed}) failed: see {log}")
    return {name: out for name, out, _, _ in jobs}


def last_metrics(checkpoint: Path) -> dict[str, Any]:
    """The last validation row that ``train`` logged beside ``checkpoint``."""
    from seq2seq_lib.cli.metrics_log import metrics_paths

    rows = [json.loads(line) for line in
            metrics_paths(checkpoint)[0].read_text(encoding="utf-8").splitlines()
            if line.strip()]
    return rows[-1] if rows else {}


def score_all(checkpoints: dict[str, Path], beam: int) -> list[dict[str, Any]]:
    """Greedy and beam BLEU and chrF of every checkpoint on its test split, and the paired
    bootstrap against the first one (greedy and beam)."""
    from seq2seq_lib import Translator
    from seq2seq_lib.data import load_corpus
    from seq2seq_lib.metrics import corpus_chrf, paired_bootstrap
    from seq2seq_lib.pipeline import prepare_data

    rows, first, refs = [], None, None
    for name, ckpt in checkpoints.items():
        tr = Translator.from_checkpoint(str(ckpt), device="cpu")
        data = prepare_data(tr.data_cfg, load_corpus(tr.data_cfg),
                            vocabs=(tr.src_vocab, tr.trg_vocab))
        pairs = data.splits.test
        these_refs = [en for _, en in pairs]
        if refs is not None and these_refs != refs:
            raise SystemExit(f"run {name!r} holds out another test split than the first run: "
                             "give every run the same corpus and data flags")
        refs = these_refs
        row: dict[str, Any] = {"run": name, "checkpoint": str(ckpt)}
        hyps = {}
        for how, size in (("greedy", 1), (f"beam{beam}", beam)):
            t0 = time.perf_counter()
            score, hyps[how] = tr.bleu(pairs, beam_size=size)
            row[f"bleu_{how}"] = round(score.score, 2)
            row[f"chrf_{how}"] = round(corpus_chrf(hyps[how], refs, tr.data_cfg.lowercase), 2)
            row[f"decode_s_{how}"] = round(time.perf_counter() - t0, 1)
        metrics = last_metrics(ckpt)
        row.update(epoch=metrics.get("epoch"), step=metrics.get("step"),
                   valid_loss=metrics.get("valid_loss"))
        if first is None:
            first = hyps
        else:
            for how in hyps:
                row[f"delta_{how}"] = str(paired_bootstrap(first[how], hyps[how], refs,
                                                           lowercase=tr.data_cfg.lowercase))
        row["test_sentences"] = len(refs)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", help="Chinese side, one sentence a line (default: the HSK corpus)")
    p.add_argument("--trg", help="English side, aligned with --src")
    p.add_argument("--run", action="append", type=parse_run, metavar="NAME=FLAGS",
                   help="a run: its name and its train flags; repeat it (the first is the one "
                        "the others are compared with; default: demo and transformer presets)")
    p.add_argument("--minutes", type=float, default=10.0, help="each run's --max-minutes")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--side-by-side", action="store_true",
                   help="train a seed's runs at the same time, the cores split between them")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--limit", type=int, help="a sample of N pairs (a smoke run, not figures)")
    p.add_argument("--work", default=str(HERE / "presets_runs"),
                   help="where the checkpoints and logs go (default bench/presets_runs)")
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args(argv)
    if bool(args.src) != bool(args.trg):
        p.error("--src and --trg go together")
    runs = args.run or [parse_run(r) for r in DEFAULT_RUNS]
    if len({name for name, _ in runs}) != len(runs):
        p.error("every --run needs its own name")

    rows = []
    for seed in args.seeds:
        for row in score_all(train_all(args, runs, seed), args.beam):
            rows.append({"seed": seed, **row})
    b = f"beam{args.beam}"
    print(f"\n{'seed':>4}  {'run':<16} {'epoch':>5} {'step':>6} {'valid loss':>10} "
          f"{'greedy':>6} {b:>6} {'chrF':>5}  {'Δ greedy':<22} Δ {b}")
    for r in rows:
        print(f"{r['seed']:>4}  {r['run']:<16} {r['epoch'] or '':>5} {r['step'] or '':>6} "
              f"{r['valid_loss'] or float('nan'):>10.3f} {r['bleu_greedy']:>6.2f} "
              f"{r[f'bleu_{b}']:>6.2f} {r[f'chrf_{b}']:>5.1f}  {r.get('delta_greedy', ''):<22} "
              f"{r.get(f'delta_{b}', '')}")
    print(f"(epoch, step, valid loss: the last validation's; test BLEU case-insensitive; "
          f"Δ: run minus {runs[0][0]}, paired bootstrap 95 %)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
