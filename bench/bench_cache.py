"""The preprocessed cache at scale: preprocessing speed and memory, cache size, time to the first
training batch from the cache and from the text files.

    python bench/bench_cache.py                          # 100k and 1M pairs, 1 and 2 workers (long)
    python bench/bench_cache.py --sizes 20000            # a smoke run: checks, not numbers
    python bench/bench_cache.py --text-max 100000        # skip the slow text-file path above 100k

The corpus is synthetic: the HSK pairs and the test fixture pairs, repeated and shuffled (seeded)
up to each size, written as aligned .zh/.en files in a temporary folder that is removed at the end.
Every measurement runs in its own subprocess:

- preprocess: ``python -m seq2seq_lib preprocess --src --trg --out --workers N``; pairs/s as the
  command reports it (reading, tokenizing, writing; the Python start-up and imports excluded) and
  the wall time of the whole command. Peak memory is the largest sum, over the command and its
  worker processes, of PSS (proportional set size: shared pages divided among the processes that
  share them; RSS where PSS cannot be read), sampled every 0.1 s.
- first batch: the time from opening the data (``load_cache`` or ``prepare_data`` on the text
  files, imports excluded) to the first padded batch of 64 from the training loader.
- training from the cache: peak RSS of a process that opens the cache and runs 50 training steps of
  a small model (emb 64, hid 128) on batches of 64; RSS includes the cache pages it has touched,
  which the operating system can reclaim.

Targets (issue 14): peak memory of preprocessing and of training from the cache does not grow with
the corpus (1M pairs within 1.5x of 100k); 2 workers at least 1.7x one worker; the first batch
from the cache in under 5 s at 1M pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULT_MARK = "BENCH-RESULT "


def base_pairs() -> list[tuple[str, str]]:
    """The HSK pairs and the test fixture pairs: what the synthetic corpus repeats."""
    sys.path.insert(0, str(ROOT))
    from seq2seq_lib import load_hsk, read_parallel

    tiny = read_parallel(ROOT / "tests/data/tiny.zh", ROOT / "tests/data/tiny.en")
    return load_hsk().pairs + tiny.pairs


def write_corpus(pairs: list[tuple[str, str]], n: int, folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """``n`` pairs: the base pairs shuffled again for every repetition, streamed to two files."""
    rng = np.random.default_rng(seed)
    zh_path, en_path = folder / f"corpus-{n}.zh", folder / f"corpus-{n}.en"
    with zh_path.open("w", encoding="utf-8") as zh, en_path.open("w", encoding="utf-8") as en:
        left = n
        while left > 0:
            order = rng.permutation(len(pairs))[:left]
            zh.write("".join(pairs[i][0] + "\n" for i in order))
            en.write("".join(pairs[i][1] + "\n" for i in order))
            left -= len(order)
    return zh_path, en_path


# ---------------------------------------------------------------- memory of a process tree


def _children(pid: int) -> list[int]:
    """The child processes of ``pid``: from ``/proc/PID/task/*/children`` where the kernel has
    it (cheap), else by reading every process's ``stat`` (a few milliseconds a time: on a busy
    2-core machine the sampling would slow down what it measures)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        if Path(f"/proc/{pid}/task/{tasks[0]}/children").exists():
            kids = []
            for task in tasks:
                try:
                    kids += [int(k) for k in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
                except OSError:  # the thread ended
                    continue
            return kids
    except (OSError, IndexError):
        return []
    kids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


def _memory_kib(pid: int) -> tuple[int | None, int]:
    """(PSS or None where smaps_rollup cannot be read, RSS) of one process, in KiB."""
    values: list[int | None] = []
    for path, key in ((f"/proc/{pid}/smaps_rollup", "Pss:"), (f"/proc/{pid}/status", "VmRSS:")):
        try:
            line = next(ln for ln in Path(path).read_text().splitlines() if ln.startswith(key))
            values.append(int(line.split()[1]))
        except (OSError, StopIteration):
            values.append(None)
    return values[0], values[1] or 0


def run_measured(cmd: list[str]) -> tuple[subprocess.CompletedProcess, float, float, str]:
    """Run ``cmd``; return it, its wall seconds, the peak memory (MiB) of its process tree and
    which memory that is: "PSS" when every sample could read it, else "RSS"."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    peak_pss, peak_rss, pss_readable = 0, 0, True
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_pss, peak_rss, pss_readable
        while not done.is_set():
            pids, frontier = [proc.pid], [proc.pid]
            while frontier and Path("/proc").is_dir():
                frontier = [k for p in frontier for k in _children(p)]
                pids += frontier
            measured = [_memory_kib(p) for p in pids]
            peak_rss = max(peak_rss, sum(rss for _, rss in measured))
            if all(pss is not None for pss, rss in measured if rss):
                peak_pss = max(peak_pss, sum(pss or 0 for pss, _ in measured))
            else:
                pss_readable = False
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    result = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{err[-2000:]}")
    if pss_readable and peak_pss:
        return result, seconds, peak_pss / 1024, "PSS"
    return result, seconds, peak_rss / 1024, "RSS"


def child_result(proc: subprocess.CompletedProcess) -> dict:
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_MARK))
    return json.loads(line[len(RESULT_MARK):])


# ---------------------------------------------------------------- what the subprocesses run

FIRST_BATCH_CACHE = """
import json, sys, time
from seq2seq_lib.batching import make_loader
from seq2seq_lib.cache import load_cache
t0 = time.perf_counter()
data = load_cache(sys.argv[1])
batch = next(iter(make_loader(data.train, 64)))
seconds = time.perf_counter() - t0
print("BENCH-RESULT " + json.dumps({"seconds": seconds, "pairs": len(data.train)}))
"""

FIRST_BATCH_TEXT = """
import json, sys, time
from seq2seq_lib.batching import make_loader
from seq2seq_lib.config import DataConfig
from seq2seq_lib.pipeline import prepare_data
t0 = time.perf_counter()
data = prepare_data(DataConfig(source="parallel", src_path=sys.argv[1], trg_path=sys.argv[2]))
batch = next(iter(make_loader(data.train, 64)))
seconds = time.perf_counter() - t0
print("BENCH-RESULT " + json.dumps({"seconds": seconds, "pairs": len(data.train)}))
"""

TRAIN_FROM_CACHE = """
import json, resource, sys, time
import torch
from seq2seq_lib.batching import make_loader
from seq2seq_lib.cache import load_cache
from seq2seq_lib.config import ModelConfig
from seq2seq_lib.builders import build_model
from seq2seq_lib.train import batch_loss
torch.manual_seed(0)
data = load_cache(sys.argv[1])
model = build_model(ModelConfig(emb_dim=64, hid_dim=128, n_layers=1, dropout=0.0),
                    len(data.src_vocab), len(data.trg_vocab))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
t0 = time.perf_counter()
for step, batch in enumerate(make_loader(data.train, 64), start=1):
    opt.zero_grad()
    loss, _ = batch_loss(model, batch)
    loss.backward()
    opt.step()
    if step == 50:
        break
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
file_mib = int(status["RssFile"].split()[0]) / 1024  # mapped file pages (the cache's, the libraries')
print("BENCH-RESULT " + json.dumps({"peak_mib": peak, "rss_file_mib": file_mib,
                                    "seconds": time.perf_counter() - t0}))
"""


# ---------------------------------------------------------------- the bench


def folder_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) / 2**20


def bench_size(n: int, workers: list[int], base: list, work: Path, text_max: int | None) -> list[dict]:
    src, trg = write_corpus(base, n, work)
    rows = []
    for w in workers:
        out = work / f"cache-{n}-{w}"
        proc, wall, peak, kind = run_measured(
            [sys.executable, "-m", "seq2seq_lib", "preprocess", "--src", str(src), "--trg", str(trg),
             "--out", str(out), "--workers", str(w), "--quiet"])
        rate = float(re.search(r"\(([\d,]+) pairs/s", proc.stdout).group(1).replace(",", ""))
        rows.append({"pairs": n, "workers": w, "pairs_per_s": rate, "wall_s": wall,
                     "peak_mib": peak, "memory": kind, "cache_mib": folder_mib(out)})
        print(f"  preprocess {n:,} pairs, {w} worker(s): {rate:,.0f} pairs/s, "
              f"{wall:.1f} s wall, peak {kind} {peak:.0f} MiB", flush=True)
    cache = work / f"cache-{n}-{workers[0]}"
    first = child_result(run_measured([sys.executable, "-c", FIRST_BATCH_CACHE, str(cache)])[0])
    train = child_result(run_measured([sys.executable, "-c", TRAIN_FROM_CACHE, str(cache)])[0])
    text = None
    if text_max is None or n <= text_max:
        text = child_result(run_measured([sys.executable, "-c", FIRST_BATCH_TEXT, str(src), str(trg)])[0])
    for row in rows:
        row.update(first_batch_cache_s=first["seconds"], train_peak_mib=train["peak_mib"],
                   first_batch_text_s=text["seconds"] if text else None)
    from_text = f"{text['seconds']:.1f} s" if text else "skipped"
    print(f"  first batch: cache {first['seconds']:.2f} s, text files {from_text}; "
          f"training from the cache: peak RSS {train['peak_mib']:.0f} MiB", flush=True)
    for name in (src, trg):
        name.unlink()
    return rows


def table(rows: list[dict]) -> str:
    one = {r["pairs"]: r["pairs_per_s"] for r in rows if r["workers"] == 1}
    lines = ["| pairs | workers | preprocess pairs/s | speed-up | wall s | peak memory MiB | cache MiB "
             "| first batch from cache s | first batch from text s | training from cache peak RSS MiB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        speedup = f"{r['pairs_per_s'] / one[r['pairs']]:.2f}x" if r["pairs"] in one else "-"
        text = f"{r['first_batch_text_s']:.1f}" if r["first_batch_text_s"] is not None else "skipped"
        lines.append(f"| {r['pairs']:,} | {r['workers']} | {r['pairs_per_s']:,.0f} | {speedup} "
                     f"| {r['wall_s']:.1f} | {r['peak_mib']:.0f} ({r['memory']}) | {r['cache_mib']:.1f} "
                     f"| {r['first_batch_cache_s']:.2f} | {text} | {r['train_peak_mib']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000],
                        help="corpus sizes in pairs (default 100000 1000000)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="tokenizer process counts to compare (default 1 2)")
    parser.add_argument("--text-max", type=int, metavar="N",
                        help="measure the first batch from the text files only up to N pairs")
    parser.add_argument("--workdir", metavar="DIR", help="where the temporary corpus and caches go")
    args = parser.parse_args(argv)
    base = base_pairs()
    print(f"base pairs: {len(base)}; sizes {args.sizes}; workers {args.workers}; "
          f"{os.cpu_count()} CPUs", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-cache-", dir=args.workdir) as tmp:
        for n in args.sizes:
            rows += bench_size(n, args.workers, base, Path(tmp), args.text_max)
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
