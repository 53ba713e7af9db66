"""The scale path: preprocessing novel text, the sampler at 10M examples, training from a cache
with one and with two processes.

    python bench/bench_scale.py sampler                      # the sampler alone (cheap: NumPy)
    python bench/bench_scale.py preprocess --sizes 200000 1000000 --workers 1 2
    python bench/bench_scale.py ddp [--before OLD_TREE]
    python bench/bench_scale.py all                          # all three (long: a quiet machine)

- ``preprocess``: synthetic *novel* pairs (random sequences of the Chinese words and English
  words of the HSK sentences, so that no sentence repeats; ``--zh-text chars``: random Chinese
  characters, whose vocabulary grows with the corpus, see :func:`write_novel`), written to
  aligned files and preprocessed
  by ``python -m seq2seq_lib preprocess`` with N workers: wall time, pairs/s as the command
  reports it, peak memory of the process tree (PSS, see ``bench_cache.run_measured``), cache
  size, the time from ``load_cache`` to the first training batch, and the peak RSS of 50 training
  steps from the cache (``bench_cache``'s small model) with the part of it that is mapped files
  at the end (the cache's pages the batches read, and the libraries').
- ``sampler``: the epoch-start cost of :class:`~seq2seq_lib.batching.TokenBucketSampler` on
  synthetic lengths (``--indices``, default 10M): building it, and each epoch's plan plus its
  step token counts, for a batch size and a token budget, one and two processes (median of 3
  epochs); and, in a pass of its own, the peak memory of building it and of planning an epoch,
  and what it then holds (``tracemalloc``).
- ``ddp``: ``--steps`` training steps from a cache of ``--ddp-pairs`` novel pairs (a small
  model, batches of 64): two gloo
  processes (``torchrun --nproc_per_node=2``) against one process accumulating 2 batches (the
  same global batches): target tokens per second, and collectives per step (our own
  ``all_reduce`` calls, and DDP's gradient-bucket all-reduces counted by a comm hook).
  ``--before OLD_TREE``: the same for another copy of the library (e.g. ``git archive`` of an
  earlier commit, on a cache it writes itself), two processes only.

Targets (issue 19): preprocessing memory flat (the largest size within 1.2x of the smallest);
2 workers at least 1.7x one worker; the sampler's epoch start under 1 s at 10M; one collective
per step (DDP's) instead of two.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_cache import FIRST_BATCH_CACHE, TRAIN_FROM_CACHE, child_result, folder_mib, run_measured  # noqa: E402
from measure import cpu_model  # noqa: E402

# ---------------------------------------------------------------- novel text


def alphabets() -> tuple[list[str], list[str], list[str]]:
    """The Chinese characters, the Chinese words of two or more characters (as jieba splits
    them) and the English words of the HSK sentences."""
    from seq2seq_lib import load_hsk
    from seq2seq_lib.tokenize import tokenize_zh

    pairs = load_hsk().pairs
    chars = sorted({c for zh, _ in pairs for c in zh if "\u4e00" <= c <= "\u9fff"})
    zh_words = sorted({w for zh, _ in pairs for w in tokenize_zh(zh) if len(w) >= 2
                       and all("\u4e00" <= c <= "\u9fff" for c in w)})
    words = sorted({w.strip(".,!?\"'").lower() for _, en in pairs for w in en.split()} - {""})
    return chars, zh_words, words


def write_novel(n: int, folder: Path, seed: int = 0, block: int = 100_000,
                zh_text: str = "words") -> tuple[Path, Path]:
    """``n`` random pairs, streamed to two files a block at a time: memory does not grow with
    ``n``, and the sentences do not repeat.

    ``zh_text="words"``: 3-11 Chinese words of the HSK sentences (about 2.2 characters each),
    so that jieba finds mostly those words again and the number of token types stays bounded,
    as in real text (a few thousand new types per 100k pairs, fewer and fewer);
    ``"chars"``: 6-24 random characters, which jieba's HMM joins into ever-new "words" (about
    4.6 new types per pair: 930k types at 200k pairs), so that memory grows with the corpus
    through its vocabulary. English: 4-16 words either way.
    """
    if zh_text not in ("words", "chars"):
        raise ValueError(f"zh_text={zh_text!r}: use 'words' or 'chars'")
    chars, zh_words, words = alphabets()
    units, zh_range = (zh_words, (3, 12)) if zh_text == "words" else (chars, (6, 25))
    rng = np.random.default_rng(seed)
    zh_path, en_path = folder / f"novel-{n}.zh", folder / f"novel-{n}.en"
    punct = np.array(list("。？！"))
    with zh_path.open("w", encoding="utf-8") as zh, en_path.open("w", encoding="utf-8") as en:
        for start in range(0, n, block):
            m = min(block, n - start)
            zh_lens, en_lens = rng.integers(*zh_range, m), rng.integers(4, 17, m)
            c = np.array(units)[rng.integers(0, len(units), int(zh_lens.sum()))]
            w = np.array(words)[rng.integers(0, len(words), int(en_lens.sum()))]
            zh_cuts, en_cuts = np.cumsum(zh_lens)[:-1], np.cumsum(en_lens)[:-1]
            ends = punct[rng.integers(0, 3, m)]
            zh.write("".join("".join(s) + e + "\n"
                             for s, e in zip(np.split(c, zh_cuts), ends)))
            en.write("".join(" ".join(s).capitalize() + ".\n" for s in np.split(w, en_cuts)))
    return zh_path, en_path


def bench_preprocess(sizes: list[int], workers: list[int], work: Path,
                     zh_text: str = "words") -> list[dict]:
    rows = []
    for n in sizes:
        src, trg = write_novel(n, work, zh_text=zh_text)
        for w in workers:
            out = work / f"cache-{n}-{w}"
            proc, wall, peak, kind = run_measured(
                [sys.executable, "-m", "seq2seq_lib", "preprocess", "--src", str(src), "--trg",
                 str(trg), "--out", str(out), "--workers", str(w), "--quiet"])
            rate = float(re.search(r"\(([\d,]+) pairs/s", proc.stdout).group(1).replace(",", ""))
            first = child_result(run_measured([sys.executable, "-c", FIRST_BATCH_CACHE,
                                               str(out)])[0])
            rows.append({"pairs": n, "zh_text": zh_text, "workers": w, "pairs_per_s": rate, "wall_s": wall,
                         "peak_mib": peak, "memory": kind, "cache_mib": folder_mib(out),
                         "first_batch_s": first["seconds"]})
            print(f"  preprocess {n:,} novel pairs, {w} worker(s): {rate:,.0f} pairs/s, {wall:.1f} s "
                  f"wall, peak {kind} {peak:.0f} MiB, cache {folder_mib(out):.1f} MiB, first "
                  f"batch {first['seconds']:.2f} s", flush=True)
        # training from this size's cache (the first worker count's): 50 steps of a small model
        train = child_result(run_measured([sys.executable, "-c", TRAIN_FROM_CACHE,
                                           str(work / f"cache-{n}-{workers[0]}")])[0])
        for row in rows[-len(workers):]:
            row["train_peak_mib"] = train["peak_mib"]
            row["train_file_mib"] = train["rss_file_mib"]
        print(f"  training from the {n:,}-pair cache: peak RSS {train['peak_mib']:.0f} MiB, "
              f"{train['rss_file_mib']:.0f} MiB of it mapped files at the end (50 steps of a "
              "small model, batches of 64)", flush=True)
        for name in (src, trg):
            name.unlink()
    return rows


# ---------------------------------------------------------------- the sampler


def bench_sampler(n: int) -> list[dict]:
    from seq2seq_lib.batching import TokenBucketSampler

    rng = np.random.default_rng(0)
    src = np.minimum(rng.poisson(14, n) + 3, 62)  # lengths with <sos>/<eos>, as max_len 60 keeps
    trg = np.minimum(rng.poisson(16, n) + 3, 62)
    rows = []
    for budget in ({"batch_size": 64}, {"max_tokens": 4096}):
        for world in (1, 2):
            t0 = time.perf_counter()
            sampler = TokenBucketSampler(src, trg, seed=0, num_replicas=world, rank=world - 1,
                                         **budget)
            build = time.perf_counter() - t0
            epochs = []
            for epoch in range(3):
                t0 = time.perf_counter()
                sampler.set_epoch(epoch)
                sampler.step_tokens()
                next(iter(sampler))
                epochs.append(time.perf_counter() - t0)
            name = ", ".join(f"{k}={v}" for k, v in budget.items())
            memory = sampler_memory(src, trg, world, budget)
            rows.append({"indices": n, "budget": name, "processes": world, "build_s": build,
                         "epoch_start_s": statistics.median(epochs),
                         "batches": sampler.n_batches(), **memory})
            print(f"  sampler, {n:,} indices, {name}, {world} process(es): built in {build:.2f} s, "
                  f"epoch start {statistics.median(epochs):.2f} s ({sampler.n_batches():,} "
                  f"batches); peak {memory['build_peak_mib']:.0f} MiB to build, "
                  f"{memory['plan_peak_mib']:.0f} to plan, holds {memory['held_mib']:.0f}",
                  flush=True)
    return rows


def sampler_memory(src: np.ndarray, trg: np.ndarray, world: int, budget: dict) -> dict:
    """What building a sampler and planning an epoch allocate at their peak, and what it holds
    then (``tracemalloc``, which NumPy reports its arrays to; the length arrays themselves not
    counted), in MiB."""
    import tracemalloc

    from seq2seq_lib.batching import TokenBucketSampler

    tracemalloc.start()
    try:
        sampler = TokenBucketSampler(src, trg, seed=0, num_replicas=world, rank=world - 1,
                                     **budget)
        build_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        sampler.step_tokens()
        held, plan_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {"build_peak_mib": build_peak / 2**20, "plan_peak_mib": plan_peak / 2**20,
            "held_mib": held / 2**20}


# ---------------------------------------------------------------- one process against two

DDP_CHILD = r"""
import json, os, sys
import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
import seq2seq_lib.trainer.loop as loop
from seq2seq_lib.cache import load_cache
from seq2seq_lib.config import ModelConfig, TrainConfig
from seq2seq_lib.parallel import init_distributed, shutdown_distributed
from seq2seq_lib.recipe import train_model

cache, steps, accumulate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
counts = {"all_reduce": 0, "ddp_buckets": 0}
in_hook = False
real_all_reduce = dist.all_reduce
def counting_all_reduce(*a, **kw):
    counts["all_reduce"] += not in_hook  # the library's own, not DDP's
    return real_all_reduce(*a, **kw)
dist.all_reduce = counting_all_reduce

def counting_hook(state, bucket):
    global in_hook
    counts["ddp_buckets"] += 1
    in_hook = True
    try:
        return allreduce_hook(state, bucket)
    finally:
        in_hook = False

class CountingDDP(loop.DistributedDataParallel):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.register_comm_hook(None, counting_hook)
loop.DistributedDataParallel = CountingDDP

ctx, device = init_distributed("cpu")
data = load_cache(cache)
fields = TrainConfig.__dataclass_fields__
extra = {"accumulate": accumulate} if "accumulate" in fields else {}
cfg = TrainConfig(epochs=1, batch_size=64, lr=1e-3, device="cpu", precision="fp32", **extra)
marks, speed = {}, {}
def on_step(trainer):
    if trainer.state.step in (5, steps):
        marks[trainer.state.step] = (dict(counts), __import__("time").perf_counter())
    return trainer.state.step >= steps
def on_validation(trainer):
    speed.update(tokens_per_s=trainer.record["tokens_per_s"])
model_cfg = ModelConfig(emb_dim=64, hid_dim=128, n_layers=1, dropout=0.0)
train_model(data, data.data_config(), model_cfg, cfg, dist=ctx, device=device, progress=False,
            hooks={"on_step": [on_step], "on_validation": [on_validation]})
if ctx.is_main:
    (c0, t0), (c1, t1) = marks[5], marks[steps]
    per = {k: (c1[k] - c0[k]) / (steps - 5) for k in counts}
    print("BENCH-RESULT " + json.dumps({**per, **speed, "steps": steps}))
shutdown_distributed(ctx)
"""


def run_child(code_root: Path, cache: Path, steps: int, processes: int, accumulate: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code_root), "OMP_NUM_THREADS": "1"}
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                 f"--nproc_per_node={processes}"] if processes > 1 else [sys.executable])
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(DDP_CHILD)
    try:
        proc = subprocess.run([*launcher, fh.name, str(cache), str(steps), str(accumulate)],
                              capture_output=True, text=True, env=env, check=False)
    finally:
        os.unlink(fh.name)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return child_result(proc)


def preprocess_with(code_root: Path, src: Path, trg: Path, out: Path) -> Path:
    env = {**os.environ, "PYTHONPATH": str(code_root), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "seq2seq_lib", "preprocess", "--src", str(src), "--trg",
                    str(trg), "--out", str(out), "--quiet"], env=env, check=True,
                   capture_output=True, cwd=code_root)  # -m puts the folder first on the path
    return out


def bench_ddp(work: Path, pairs: int, steps: int, before: Path | None,
              cache: Path | None) -> list[dict]:
    """One process x 2 batches against 2 processes x 1 (a cache of ``pairs`` novel pairs,
    unless ``cache``); with ``before``, that copy of the library on its own cache of them."""
    src, trg = write_novel(pairs, work, seed=1)
    caches = {"now": cache or preprocess_with(ROOT, src, trg, work / "ddp-now")}
    runs = [("now", ROOT, 1, 2), ("now", ROOT, 2, 1)]
    if before is not None:
        caches["before"] = preprocess_with(before, src, trg, work / "ddp-before")
        runs.append(("before", before, 2, 1))
    rows = []
    for label, code, processes, accumulate in runs:
        r = run_child(code, caches[label], steps, processes, accumulate)
        rows.append({"code": label, "processes": processes, "accumulate": accumulate, **r})
        print(f"  {label}: {processes} process(es) x {accumulate} batch(es) of 64: "
              f"{r.get('tokens_per_s', float('nan')):,.0f} tokens/s, per step "
              f"{r['all_reduce']:.2f} all_reduce calls + {r['ddp_buckets']:.2f} DDP bucket "
              "all-reduces", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=("sampler", "preprocess", "ddp", "all"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--zh-text", choices=("words", "chars"), default="words",
                        help="preprocess: Chinese made of HSK words (a bounded vocabulary, as "
                             "real text) or of random characters (ever-new jieba words)")
    parser.add_argument("--indices", type=int, default=10_000_000)
    parser.add_argument("--cache", type=Path, help="ddp: a cache to train from (default: one "
                                                   "of --ddp-pairs novel pairs)")
    parser.add_argument("--ddp-pairs", type=int, default=50_000)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--before", type=Path, help="ddp: another copy of the library")
    parser.add_argument("--workdir", metavar="DIR")
    parser.add_argument("--json", type=Path, help="also write the results here (the parts "
                                                   "run now replace theirs, the rest is kept)")
    parser.add_argument("--markdown", type=Path, help="render every part in --json as tables")
    args = parser.parse_args(argv)
    if args.markdown and not args.json:
        parser.error("--markdown renders the --json file: give both")
    results: dict[str, list[dict]] = {}
    print(f"{os.cpu_count()} CPUs", flush=True)
    if args.part in ("sampler", "all"):
        results["sampler"] = bench_sampler(args.indices)
    with tempfile.TemporaryDirectory(prefix="bench-scale-", dir=args.workdir) as tmp:
        if args.part in ("preprocess", "all"):
            results["preprocess"] = bench_preprocess(args.sizes, args.workers, Path(tmp),
                                                     args.zh_text)
        if args.part in ("ddp", "all"):
            results["ddp"] = bench_ddp(Path(tmp), args.ddp_pairs, args.steps, args.before,
                                       args.cache)
    if args.json:
        saved = json.loads(args.json.read_text(encoding="utf-8")) if args.json.exists() else {}
        when = {part: {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                       "machine": f"{cpu_model()}, {os.cpu_count()} CPUs"} for part in results}
        saved.update(results)
        saved["measured"] = {**saved.get("measured", {}), **when}
        args.json.write_text(json.dumps(saved, indent=1), encoding="utf-8")
        if args.markdown:
            args.markdown.write_text(render(saved), encoding="utf-8")


def render(saved: dict) -> str:
    """Markdown tables of the parts in ``saved`` (``--json``'s file), each with the issue's
    target and whether it is met."""
    measured = saved.get("measured", {})
    out = ["# The scale path: measured", "",
           "Written by `python bench/bench_scale.py PART --json bench/SCALE.json --markdown "
           "bench/SCALE.md` (each part when it ran; see the module docstring for the commands).",
           ""]

    def heading(title: str, part: str) -> None:
        meta = measured.get(part)
        out.extend([f"## {title}", ""] + ([f"{meta['date']}, {meta['machine']}.", ""]
                                          if meta else []))

    if saved.get("preprocess"):
        rows = saved["preprocess"]
        heading("Preprocessing novel text", "preprocess")
        out += ["| pairs | workers | pairs/s | wall s | peak MiB | cache MiB | first batch s "
                "| training peak RSS MiB (mapped files at the end) |",
                "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            out.append(f"| {r['pairs']:,} | {r['workers']} | {r['pairs_per_s']:,.0f} | "
                       f"{r['wall_s']:.1f} | {r['peak_mib']:.0f} ({r['memory']}) | "
                       f"{r['cache_mib']:.1f} | {r['first_batch_s']:.2f} | "
                       f"{r.get('train_peak_mib', float('nan')):.0f}"
                       + (f" ({r['train_file_mib']:.0f})" if "train_file_mib" in r else "") + " |")
        sizes = sorted({r["pairs"] for r in rows})
        out.append("")
        for w in sorted({r["workers"] for r in rows}):
            peaks = {r["pairs"]: r["peak_mib"] for r in rows if r["workers"] == w}
            if len(peaks) > 1:
                ratio = peaks[sizes[-1]] / peaks[sizes[0]]
                out.append(f"- Peak memory, {w} worker(s): {sizes[-1]:,} pairs / {sizes[0]:,} = "
                           f"{ratio:.2f}x (target within 1.2x: {_met(ratio <= 1.2)}).")
        for n in sizes:
            rate = {r["workers"]: r["pairs_per_s"] for r in rows if r["pairs"] == n}
            if 1 in rate and 2 in rate:
                ratio = rate[2] / rate[1]
                out.append(f"- {n:,} pairs: 2 workers / 1 worker = {ratio:.2f}x "
                           f"(target at least 1.7x: {_met(ratio >= 1.7)}).")
        train = {r["pairs"]: r.get("train_peak_mib") for r in rows if r.get("train_peak_mib")}
        if len(train) > 1:
            ratio = train[sizes[-1]] / train[sizes[0]]
            out.append(f"- Training from the cache, peak RSS: {sizes[-1]:,} / {sizes[0]:,} pairs "
                       f"= {ratio:.2f}x (target flat, read as within 1.2x like preprocessing: "
                       f"{_met(ratio <= 1.2)}).")
        out.append("")
    if saved.get("sampler"):
        heading("The sampler at scale", "sampler")
        out += ["| indices | batches of | processes | built in s | epoch start s | batches "
                "| peak MiB: build, plan | holds MiB |", "|---|---|---|---|---|---|---|---|"]
        for r in saved["sampler"]:
            memory = (f"{r['build_peak_mib']:.0f}, {r['plan_peak_mib']:.0f} | {r['held_mib']:.0f}"
                      if "held_mib" in r else "not measured | not measured")
            out.append(f"| {r['indices']:,} | {r['budget']} | {r['processes']} | "
                       f"{r['build_s']:.2f} | {r['epoch_start_s']:.2f} | {r['batches']:,} | "
                       f"{memory} |")
        worst = max(r["epoch_start_s"] for r in saved["sampler"])
        out += ["", f"- Slowest epoch start {worst:.2f} s (target under 1 s: "
                    f"{_met(worst < 1.0)}).", ""]
    if saved.get("ddp"):
        heading("One process against two (gloo, the same global batches)", "ddp")
        out += ["| library | processes x batches | target tokens/s | library all_reduce per "
                "step | DDP bucket all-reduces per step |", "|---|---|---|---|---|"]
        for r in saved["ddp"]:
            out.append(f"| {r['code']} | {r['processes']} x {r['accumulate']} | "
                       f"{r.get('tokens_per_s', float('nan')):,.0f} | {r['all_reduce']:.2f} | "
                       f"{r['ddp_buckets']:.2f} |")
        out.append("")
    return "\n".join(out)


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


if __name__ == "__main__":
    main()
