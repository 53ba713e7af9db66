"""Speed, memory and quality of ``seq2seq_lib`` on the HSK corpus, in one run: ``make bench``.

    python bench/bench.py                          # the full run (about 15 minutes, 2 cores)
    python bench/bench.py --reference LESSON.py    # also the lesson's own code, side by side
    python bench/bench.py --quick                  # a smoke run on a small sample: checks only

It prints one table and writes it, with the machine and the command, to ``bench/RESULTS.md``.
What is measured and how: ``bench/measure.py`` (one function per measurement, each returning a
small dataclass); how it is shown: ``bench/render.py``.

1. Rooflines: the best fp32 and bf16 ``torch.matmul`` GFLOP/s, at the start and at the end of
   the run, and whether the bf16 the library detects is really faster (1c).
2. Training throughput at the lesson's size (emb 256, hid 512, 2 layers): the library defaults in
   fp32 and in ``precision="auto"``, and a lesson-style run of the library (fp32); the lesson's
   own code when ``--reference`` names it.
3. Decoding throughput over the test split (batched greedy, one at a time, beam 5) in fp32 and
   ``auto``.
4. Quality: the plain GRU (``auto``), and the ``make demo`` recipe trained in fp32 and in
   ``auto`` with the same seed; test BLEU greedy and beam 5, and a paired-bootstrap interval of
   the difference (the quality guard of mixed precision).
5. Peak resident memory of training and decoding; every measurement runs in its own process.
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

RESULT_MARK = "BENCH-RESULT "
HERE = Path(__file__).resolve().parent
WORKERS = {"train_speed": (measure.train_speed, measure.TrainSpeed),
           "quality": (measure.quality, measure.Quality),
           "decode_speed": (measure.decode_speed, measure.DecodeSpeed),
           "reference": (measure.reference, measure.Reference)}


def run_worker(name: str, threads: int | None, **kwargs: Any):
    """Run one measurement in a fresh Python process and return its dataclass."""
    spec = json.dumps({"threads": threads, "kwargs": kwargs})
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--spec", spec]
    shown = {k: v for k, v in kwargs.items() if k in ("mode", "precision", "recipe")}
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
    p.add_argument("--reference", metavar="FILE",
                   help="the lesson's code made runnable: measured side by side (2 epochs)")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: {measure.QUICK_LIMIT} sampled pairs, 1 epoch, small matrices")
    p.add_argument("--device", default="cpu", help="device of rows 2-5 (default cpu)")
    p.add_argument("--threads", type=int, help="torch.set_num_threads in every worker")
    p.add_argument("--out", default=str(HERE / "RESULTS.md"), help="where to write the report")
    p.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker_main(args.worker, args.spec)
        return 0

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
    train = {name: run_worker("train_speed", th, mode=mode, precision=prec,
                              measure=measure_epochs, quick=quick, device=dev)
             for name, mode, prec in (("fp32", "default", "fp32"), ("auto", "default", "auto"),
                                      ("lesson-style", "lesson-style", "fp32"))}
    if torch.cuda.is_available() and dev != "cuda":
        for prec in ("fp32", "auto"):
            train[f"gpu-{prec}"] = run_worker("train_speed", th, mode="default", precision=prec,
                                              measure=measure_epochs, quick=quick, device="cuda")
    with tempfile.TemporaryDirectory() as tmp:
        print("4. quality", flush=True)
        gru_ckpt, sentences = str(Path(tmp) / "gru.pt"), str(Path(tmp) / "test.json")
        quality = {"gru-auto": run_worker("quality", th, recipe="gru", precision="auto",
                                          quick=quick, device=dev, epochs=epochs,
                                          checkpoint=gru_ckpt, sentences_file=sentences)}
        for prec in ("fp32", "auto"):
            quality[f"demo-{prec}"] = run_worker(
                "quality", th, recipe="demo", precision=prec, quick=quick, device=dev,
                epochs=epochs, checkpoint=str(Path(tmp) / f"demo-{prec}.pt"))
        print("3. decoding throughput", flush=True)
        decode = {prec: run_worker("decode_speed", th, checkpoint=gru_ckpt,
                                   sentences_file=sentences, precision=prec, device=dev)
                  for prec in ("fp32", "auto")}
    from seq2seq_lib.metrics import paired_bootstrap

    a, b = quality["demo-fp32"], quality["demo-auto"]
    guard = {"greedy": paired_bootstrap(a.greedy, b.greedy, a.references, lowercase=True),
             "beam5": paired_bootstrap(a.beam5, b.beam5, a.references, lowercase=True)}
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
                     reference)
    report = render.markdown(run)
    print("\n" + report)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report, encoding="utf-8")
    Path(args.out).with_suffix(".json").write_text(json.dumps(render.as_dict(run), indent=1),
                                                   encoding="utf-8")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
