"""Speed, memory and quality of ``seq2seq_lib`` on the HSK corpus, in one run: ``make bench``.

    python bench/bench.py                          # the full run (about 35 minutes, 2 cores)
    python bench/bench.py --reference LESSON.py    # also the lesson's own code, side by side
    python bench/bench.py --guard-seeds 1          # the quality guard on one seed (12 min less)
    python bench/bench.py --quick                  # a smoke run on a small sample: checks only

It prints one table and writes it, with the machine and the command, to ``bench/RESULTS.md``.
What is measured and how: ``bench/measure.py`` (one function per measurement, each returning a
small dataclass); how it is shown and which targets it is held to: ``bench/render.py``.

1. Rooflines: the best fp32 and bf16 ``torch.matmul`` GFLOP/s, at the start and at the end of
   the run, and whether the bf16 the library detects is really faster (1c).
2. Training throughput at the lesson's size (emb 256, hid 512, 2 layers): the library defaults in
   fp32 and in ``precision="auto"`` (MFU against the roofline of what ran), a lesson-style run of
   the library (fp32), the lesson's own code when ``--reference`` names it, and the defaults with
   ``TrainConfig.compile=True`` where this version has it. One epoch of the default row, fp32
   and bf16, under ``torch.profiler``: the operators by self CPU time.
3. Decoding throughput over the test split (batched greedy, one at a time, beam 5) in fp32 and
   ``auto``; beam 5 against greedy.
4. Quality: the plain GRU (``auto``), and the ``make demo`` recipe trained in fp32 and in
   ``auto`` with training seeds 0 … ``--guard-seeds`` - 1; the mean difference of their test
   BLEU (greedy and beam 5) with a paired-bootstrap interval over the seeds (the quality guard
   of mixed precision).
5. Peak resident memory of training and decoding; every measurement runs in its own process.
6. Peak memory of one training step of additive attention at batch 128, lengths 60: in one piece
   (before) and in chunks of target steps (after).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import measure  # noqa: E402 - bench/ is not a package
import render  # noqa: E402

from seq2seq_lib.metrics import PairedBootstrap  # noqa: E402

RESULT_MARK = "BENCH-RESULT "
HERE = Path(__file__).resolve().parent
WORKERS = {"train_speed": (measure.train_speed, measure.TrainSpeed),
           "profile_train": (measure.profile_train, measure.Profile),
           "quality": (measure.quality, measure.Quality),
           "decode_speed": (measure.decode_speed, measure.DecodeSpeed),
           "attention_memory": (measure.attention_memory, measure.AttentionMemory),
           "reference": (measure.reference, measure.Reference)}
SHOWN = ("mode", "precision", "compile", "recipe", "seed", "variant")


def run_worker(name: str, threads: int | None, **kwargs: Any):
    """Run one measurement in a fresh Python process and return its dataclass."""
    spec = json.dumps({"threads": threads, "kwargs": kwargs})
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--spec", spec]
    shown = {k: v for k, v in kwargs.items() if k in SHOWN}
    print(f"  {name} {shown} ...", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the {name} worker failed (exit status {proc.returncode})")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_MARK)][-1]
    print(f"    done in {time.perf_counter() - t0:.0f} s", flush=True)
    return WORKERS[name][1](**json.loads(line[len(RESULT_MARK):]))


def worker_main(name: str, spec_json: str) -> None:
    spec = json.loads(spec_json)
    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    result = WORKERS[name][0](**spec["kwargs"])
    print(RESULT_MARK + json.dumps(asdict(result)), flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=8, help="epochs of the plain GRU's BLEU row (8)")
    p.add_argument("--measure-epochs", type=int, default=2,
                   help="timed training epochs after the warm-up epoch (2)")
    p.add_argument("--guard-seeds", type=int, metavar="N",
                   help="training seeds of the bf16 quality guard: the demo recipe is trained "
                        "2 × N times, 2 to 4 minutes each (default 3; 1 with --quick)")
    p.add_argument("--reference", metavar="FILE",
                   help="the lesson's code made runnable: measured side by side (2 epochs)")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: {measure.QUICK_LIMIT} sampled pairs, 1 epoch, small matrices")
    p.add_argument("--device", default="cpu", help="device of rows 2-6 (default cpu)")
    p.add_argument("--threads", type=int, help="torch.set_num_threads in every worker")
    p.add_argument("--out", default=str(HERE / "RESULTS.md"), help="where to write the report")
    p.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker_main(args.worker, args.spec)
        return 0
    if args.reference and not Path(args.reference).is_file():
        p.error(f"--reference {args.reference}: no such file")
    guard_seeds = args.guard_seeds if args.guard_seeds is not None else 1 if args.quick else 3
    if guard_seeds < 1:
        p.error(f"--guard-seeds must be at least 1, got {guard_seeds}")

    started = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    quick, dev, th = args.quick, args.device, args.threads
    epochs = 1 if quick else args.epochs
    measure_epochs = 1 if quick else args.measure_epochs
    load_start = os.getloadavg()
    print("1. rooflines", flush=True)
    sizes, repeats = ((512, 1024), 1) if quick else ((2048, 4096), 3)
    first = {d: measure.roofline(d, sizes, repeats) for d in ("fp32", "bf16")}
    reference = None
    if args.reference:
        print("2. the lesson's own code", flush=True)
        reference = run_worker("reference", th, script=args.reference, epochs=2, quick=quick)
    print("2. training throughput", flush=True)
    compiling = measure.compile_available()
    rows = [("fp32", "default", "fp32", False), ("auto", "default", "auto", False),
            ("lesson-style", "lesson-style", "fp32", False)]
    if compiling:
        rows += [("fp32-compile", "default", "fp32", True), ("auto-compile", "default", "auto", True)]
    train = {name: run_worker("train_speed", th, mode=mode, precision=prec,
                              measure=measure_epochs, quick=quick, device=dev, compile=comp)
             for name, mode, prec, comp in rows}
    if torch.cuda.is_available() and dev != "cuda":
        for prec in ("fp32", "auto"):
            train[f"gpu-{prec}"] = run_worker("train_speed", th, mode="default", precision=prec,
                                              measure=measure_epochs, quick=quick, device="cuda")
    print("2. where one training epoch spends its time", flush=True)
    profiles = {"fp32": run_worker("profile_train", th, precision="fp32", quick=quick,
                                   device=dev)}
    if train["auto"].precision != "fp32":  # auto runs mixed precision here: profile it too
        profiles[train["auto"].precision] = run_worker("profile_train", th, precision="auto",
                                                       quick=quick, device=dev)
    with tempfile.TemporaryDirectory() as tmp:
        print("4. quality", flush=True)
        gru_ckpt, sentences = str(Path(tmp) / "gru.pt"), str(Path(tmp) / "test.json")
        quality = {"gru-auto": run_worker("quality", th, recipe="gru", precision="auto",
                                          quick=quick, device=dev, epochs=epochs,
                                          checkpoint=gru_ckpt, sentences_file=sentences)}
        guard_runs = {prec: [run_worker("quality", th, recipe="demo", precision=prec,
                                        quick=quick, device=dev, epochs=epochs, seed=seed,
                                        checkpoint=str(Path(tmp) / f"demo-{prec}-{seed}.pt"))
                             for seed in range(guard_seeds)]
                      for prec in ("fp32", "auto")}
        quality.update({f"demo-{prec}": runs[0] for prec, runs in guard_runs.items()})
        print("3. decoding throughput", flush=True)
        decode = {prec: run_worker("decode_speed", th, checkpoint=gru_ckpt,
                                   sentences_file=sentences, precision=prec, device=dev)
                  for prec in ("fp32", "auto")}
    print("6. attention memory", flush=True)
    batch, length = (64, 32) if quick else (128, 60)  # quick: still more than one chunk
    attention = [run_worker("attention_memory", th, variant=variant, batch=batch, length=length)
                 for variant in ("one piece", "chunked")]
    guard = quality_guard(guard_runs, samples=200 if quick else 1000)
    print("1. rooflines again (the best of both counts: a busy moment should not lower it)",
          flush=True)
    again = {d: measure.roofline(d, sizes, repeats) for d in ("fp32", "bf16")}
    rooflines = {d: measure.Roofline(d, {n: max(first[d].by_size[n], again[d].by_size[n])
                                         for n in first[d].by_size}) for d in first}
    command = " ".join(["python bench/bench.py", *(argv if argv is not None else sys.argv[1:])])
    if args.reference:  # where the lesson's file lies on this machine says nothing to a reader
        command = command.replace(args.reference, Path(args.reference).name)
    run = render.Run(command, dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                     quick, dev, measure.machine(), load_start, os.getloadavg(),
                     time.perf_counter() - started, rooflines, train, decode, quality, guard,
                     reference, compiling, guard_runs, profiles, attention)
    report = render.markdown(run)
    print("\n" + report)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report, encoding="utf-8")
    Path(args.out).with_suffix(".json").write_text(json.dumps(render.as_dict(run), indent=1),
                                                   encoding="utf-8")
    print(f"written: {args.out}")
    return 0


def quality_guard(runs: dict[str, list[measure.Quality]], samples: int
                  ) -> dict[str, PairedBootstrap]:
    """Demo ``auto`` against demo fp32, over the paired seeds: the mean difference of test
    BLEU, greedy and beam 5, with its paired-bootstrap interval."""
    from seq2seq_lib.metrics import paired_bootstrap_mean

    fp32, auto = runs["fp32"], runs["auto"]
    refs = fp32[0].references
    if any(q.references != refs for q in fp32 + auto):
        raise RuntimeError("the quality guard's runs were scored on different test sentences")
    return {name: paired_bootstrap_mean([getattr(q, name) for q in fp32],
                                        [getattr(q, name) for q in auto], refs, lowercase=True,
                                        samples=samples)
            for name in ("greedy", "beam5")}


if __name__ == "__main__":
    sys.exit(main())
