"""Speed, memory and quality of ``seq2seq_lib`` on the HSK corpus, in one run: ``make bench``.

    python bench/bench.py                  # the full run (about 10 minutes on a quiet 2-core CPU)
    python bench/bench.py --quick          # a smoke run on a small sample: checks, not numbers
    python bench/bench.py --epochs 4 --out /some/where/RESULTS.md

It prints one table and writes it, with the machine and the command, to ``bench/RESULTS.md``.

1. Roofline: the best fp32 ``torch.matmul`` GFLOP/s on large square matrices, measured at the
   start and again at the end of this run.
2. Training throughput at the lesson's model size (emb 256, hid 512, 2 layers, dropout 0.5):
   (a) the library default (teacher forcing 1.0, so one fused decoder call; length-bucketed
   batches of 64) and (b) a lesson-style run of the same library (teacher forcing 0.5, so a
   step-by-step decoder; plain unshuffled batches of 32). Each runs ``fit`` for one warm-up
   epoch and then ``--measure-epochs`` epochs, and reports the fastest measured epoch.
3. Decoding throughput over the test split: batched greedy, greedy one sentence at a time,
   and beam search (beam 5) when the library has it.
4. Quality: sacreBLEU on the test split, greedy and beam 5, with the training wall time: (a) the
   plain GRU at the lesson's sizes after ``--epochs`` epochs, (b) the model ``make demo`` trains
   (``demo_configs()``: characters, bidirectional encoder, attention; its own epoch count).
5. Memory: peak resident memory of training and of decoding; every measurement runs in its own
   subprocess, so the peaks do not mix. On a GPU also ``torch.cuda.max_memory_allocated``.
6. GPU only: fp32 against bf16 autocast (``TrainConfig.precision``) training throughput.

FLOPs and MFU (model FLOP utilisation)
--------------------------------------
Only the matrix products of the model are counted, and only at real (non-pad) tokens; the
embedding lookups, element-wise gate arithmetic, softmax and the optimizer are free. A GRU layer
with input size I and hidden size H computes three gates, each an input product and a hidden
product, so one token costs ``2 * 3H * I + 2 * 3H * H`` FLOPs per layer (2 FLOPs per
multiply-add). With E = emb_dim, H = hid_dim, L = n_layers and V = the English vocabulary:

    gru(E, H, L)  = 6H(E + H) + (L - 1) * 6H(H + H)
    forward       = src_tokens * gru(E, H, L)              # encoder, <sos>/<eos> included
                  + trg_tokens * (gru(E, H, L) + 2HV)      # decoder and output projection
    training      = 3 * forward                            # backward = 2 x forward

``src_tokens`` is the number of source ids (``src_lens``), ``trg_tokens`` the number of
non-pad target ids after ``<sos>`` (the decoder reads as many as it predicts). Both are
constant per epoch, so FLOP/s = 3 * forward / seconds per epoch, and MFU = FLOP/s / roofline.
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

RESULT_MARK = "BENCH-RESULT "
QUICK_LIMIT = 600  # pairs sampled from the corpus in --quick mode
HERE = Path(__file__).resolve().parent


# ---------------------------------------------------------------- machine and FLOP counting


def cpu_model() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo; elsewhere whatever platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def physical_cores() -> int | None:
    """Distinct (socket, core) pairs in /proc/cpuinfo, or None where that file does not exist."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    cores, phys = set(), "0"
    for line in text.splitlines():
        if line.startswith("physical id"):
            phys = line.split(":", 1)[1].strip()
        elif line.startswith("core id"):
            cores.add((phys, line.split(":", 1)[1].strip()))
    return len(cores) or None


def machine_info() -> dict[str, Any]:
    return {
        "cpu": cpu_model(), "logical_cpus": os.cpu_count(), "physical_cores": physical_cores(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "torch": torch.__version__, "python": platform.python_version(),
        "system": f"{platform.system()} {platform.machine()}",
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def gru_flops_per_token(in_dim: int, hid_dim: int, n_layers: int) -> int:
    """Forward FLOPs of a stacked unidirectional GRU for one token (see the module docstring)."""
    first = 6 * hid_dim * (in_dim + hid_dim)
    return first + (n_layers - 1) * 6 * hid_dim * (2 * hid_dim)


def training_flops(src_tokens: int, trg_tokens: int, emb_dim: int, hid_dim: int, n_layers: int,
                   trg_vocab: int) -> int:
    """Forward + backward FLOPs of one pass over ``src_tokens``/``trg_tokens`` real tokens."""
    gru = gru_flops_per_token(emb_dim, hid_dim, n_layers)
    forward = src_tokens * gru + trg_tokens * (gru + 2 * hid_dim * trg_vocab)
    return 3 * forward


def roofline(sizes: tuple[int, ...], repeats: int) -> dict[str, float]:
    """Best fp32 matmul GFLOP/s for each square size (after one untimed product)."""
    out = {}
    for n in sizes:
        a, b, c = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
        torch.matmul(a, b, out=c)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.matmul(a, b, out=c)
            best = min(best, time.perf_counter() - t0)
        out[str(n)] = 2 * n**3 / best / 1e9
    return out


# ---------------------------------------------------------------- memory


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def current_rss_mib() -> float | None:
    """This process's resident memory now, where psutil or /proc can tell."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        pass
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2**10
    except OSError:
        pass
    return None


# ---------------------------------------------------------------- what the library offers


def attention_available() -> str | None:
    """None if ``ModelConfig(attention="bahdanau")`` builds, else why not."""
    from seq2seq_lib import ModelConfig, build_model

    try:
        build_model(ModelConfig(emb_dim=8, hid_dim=8, n_layers=1, attention="bahdanau"), 10, 10)
    except Exception as exc:  # any failure means: not there yet
        return f"not available yet ({type(exc).__name__})"
    return None


def beam_available() -> str | None:
    """None if ``decode.beam_search`` exists and ``Translator`` takes ``beam_size``."""
    from seq2seq_lib import decode
    from seq2seq_lib.translator import Translator

    if not hasattr(decode, "beam_search"):
        return "not available yet"
    for method in (Translator.bleu, Translator.translate_batch):
        if "beam_size" not in inspect.signature(method).parameters:
            return "not available yet (Translator has no beam_size)"
    return None


# ---------------------------------------------------------------- workers (one subprocess each)


def _data(quick: bool, cfg=None):
    from dataclasses import replace

    from seq2seq_lib import DataConfig, prepare_data

    cfg = cfg or DataConfig()
    cfg = replace(cfg, limit=QUICK_LIMIT) if quick else cfg
    return cfg, prepare_data(cfg)


def _device(name: str) -> torch.device:
    from seq2seq_lib import choose_device

    return choose_device(name, verbose=False)


def worker_train_speed(spec: dict[str, Any]) -> dict[str, Any]:
    """``fit`` for 1 warm-up + ``measure`` epochs; the fastest measured epoch is reported."""
    from seq2seq_lib import ModelConfig, TrainConfig, build_model, fit, make_loader, set_seed

    data_cfg, data = _data(spec["quick"])
    device = _device(spec["device"])
    model_cfg = ModelConfig()
    set_seed(0)
    model = build_model(model_cfg, len(data.src_vocab), len(data.trg_vocab))
    if spec["mode"] == "lesson":
        cfg = TrainConfig(epochs=1 + spec["measure"], batch_size=32, teacher_forcing_ratio=0.5,
                          bucket=False, precision="amp" if spec["amp"] else "fp32")
        train_loader = make_loader(data.train, 32, bucket=False, shuffle=False)
    else:
        cfg = TrainConfig(epochs=1 + spec["measure"], precision="amp" if spec["amp"] else "fp32")
        train_loader = make_loader(data.train, cfg.batch_size, bucket=cfg.bucket, seed=cfg.seed)
    valid_loader = make_loader(data.valid, 256, bucket=False, shuffle=False)
    rss_before = current_rss_mib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    result = fit(model, train_loader, valid_loader, cfg, progress=False, device=device)
    measured = result.history[1:] or result.history
    best = min(measured, key=lambda r: r["seconds"])
    flops = training_flops(sum(len(s) for s in data.train.src), data.train.n_target_tokens(),
                           model_cfg.emb_dim, model_cfg.hid_dim, model_cfg.n_layers,
                           len(data.trg_vocab))
    return {
        "seconds": best["seconds"], "tokens_per_s": best["tokens_per_s"],
        "all_seconds": [r["seconds"] for r in result.history], "flops_per_epoch": flops,
        "gflops": flops / best["seconds"] / 1e9, "batches": len(train_loader),
        "rss_before_mib": rss_before, "peak_rss_mib": peak_rss_mib(),
        "cuda_peak_mib": (torch.cuda.max_memory_allocated(device) / 2**20
                          if device.type == "cuda" else None),
    }


def worker_quality(spec: dict[str, Any]) -> dict[str, Any]:
    """Train, save the best checkpoint, score BLEU.

    ``preset`` "lesson": the library default (the lesson's sizes) for ``epochs``; "demo": what
    ``make demo`` trains (``seq2seq_lib.config.demo_configs``), with its own epoch count.
    """
    from seq2seq_lib import ModelConfig, TrainConfig, Translator
    from seq2seq_lib.config import demo_configs
    from seq2seq_lib.metrics import bleu_signature
    from seq2seq_lib.recipe import train_model

    if spec["preset"] == "demo":
        data_cfg, model_cfg, cfg = demo_configs()
        epochs = 1 if spec["quick"] else cfg.epochs
    else:
        data_cfg, model_cfg, cfg, epochs = None, ModelConfig(), TrainConfig(), spec["epochs"]
    data_cfg, data = _data(spec["quick"], data_cfg)
    device = _device(spec["device"])
    cfg = replace(cfg, epochs=epochs, checkpoint_path=spec["checkpoint"])  # seed 0, as before
    model, result = train_model(data, data_cfg, model_cfg, cfg, progress=False, device=device)
    translator = Translator(model, data.src_vocab, data.trg_vocab, data_cfg, model_cfg, device,
                            data.truecaser, cfg.precision)
    pairs = data.splits.test
    if spec.get("sentences"):  # the decoding worker times the same test sentences
        Path(spec["sentences"]).write_text(json.dumps([zh for zh, _ in pairs], ensure_ascii=False),
                                           encoding="utf-8")
    greedy, _ = translator.bleu(pairs)
    out: dict[str, Any] = {
        "train_wall_s": result.seconds, "epochs": len(result.history),
        "best_epoch": result.best_epoch, "valid_loss": result.best_valid_loss,
        "bleu_greedy": greedy.score, "sentences": len(pairs),
        "signature": bleu_signature(data_cfg.lowercase), "peak_rss_mib": peak_rss_mib(),
    }
    if spec["beam"]:
        beam, _ = translator.bleu(pairs, beam_size=5)
        out["bleu_beam5"] = beam.score
    return out


def worker_decode(spec: dict[str, Any]) -> dict[str, Any]:
    """Sentences/s of batched greedy, one-at-a-time greedy and batched beam-5 decoding."""
    from seq2seq_lib import Translator
    from seq2seq_lib.course import best_time

    sentences = json.loads(Path(spec["sentences"]).read_text(encoding="utf-8"))
    translator = Translator.from_checkpoint(spec["checkpoint"], device=spec["device"])
    translator.translate_batch(sentences[:16])  # warm-up: jieba's dictionary, allocator
    translator.translate(sentences[0])
    rss_before = current_rss_mib()

    n = len(sentences)
    out: dict[str, Any] = {"sentences": n, "rss_before_mib": rss_before}
    out["batched_s"], _ = best_time(lambda: translator.translate_batch(sentences), 3)
    out["single_s"], _ = best_time(lambda: [translator.translate(s) for s in sentences], 2)
    if spec["beam"]:
        out["beam5_s"], _ = best_time(lambda: translator.translate_batch(sentences, beam_size=5),
                                      2)
    out["peak_rss_mib"] = peak_rss_mib()
    # the matrix products greedy decoding cannot avoid: the encoder over every source id, the
    # decoder and output layer once per output word and once for <eos> (forward only)
    cfg = translator.model_cfg
    gru = gru_flops_per_token(cfg.emb_dim, cfg.hid_dim, cfg.n_layers)
    src_ids = sum(len(translator.src_tokens(s)) + 2 for s in sentences)
    out_ids = sum(len(h.ids) + 1 for h in translator.hypotheses(sentences))
    out["useful_flops"] = (src_ids * gru
                           + out_ids * (gru + 2 * cfg.hid_dim * len(translator.trg_vocab)))
    out["mean_output_words"] = out_ids / n - 1
    return out


WORKERS = {"train-speed": worker_train_speed, "quality": worker_quality, "decode": worker_decode}


def run_worker(name: str, spec: dict[str, Any], threads: int | None) -> dict[str, Any]:
    """Run one worker in a fresh Python process and return what it measured."""
    spec = {**spec, "threads": threads}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--spec",
           json.dumps(spec)]
    label = f"{name} {json.dumps({k: v for k, v in spec.items() if k in ('mode', 'preset', 'amp')})}"
    print(f"  running {label} ...", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the {name} worker failed (exit status {proc.returncode})")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_MARK)]
    result = json.loads(lines[-1][len(RESULT_MARK):])
    print(f"    done in {time.perf_counter() - t0:.0f} s", flush=True)
    return result


def worker_main(name: str, spec_json: str) -> None:
    spec = json.loads(spec_json)
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    result = WORKERS[name](spec)
    print(RESULT_MARK + json.dumps(result), flush=True)


# ---------------------------------------------------------------- the report


def fmt(x: float, digits: int = 0) -> str:
    return f"{x:,.{digits}f}"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def build_rows(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(row, measurement, value, target) for the table."""
    peak = r["roofline_gflops"]
    rows: list[tuple[str, str, str, str]] = []
    sizes = ", ".join(f"{n}: {fmt(g, 1)}" for n, g in r["roofline"].items())
    rows.append(("1", "fp32 matmul roofline, best of start and end of the run",
                 f"**{fmt(peak, 1)} GFLOP/s** (n = {sizes})", ""))
    default, lesson = r["train_default"], r["train_lesson"]
    for key, label, tr in (("2a", "training, library default: fused decoder, teacher forcing "
                            "1.0, length buckets of 64", default),
                           ("2b", "training, lesson-style: step-by-step decoder, teacher forcing "
                            "0.5, plain batches of 32", lesson)):
        mfu = tr["gflops"] / peak
        target = f"MFU ≥ 60 %: {verdict(mfu >= 0.6)}" if key == "2a" else ""
        rows.append((key, label, f"**{fmt(tr['tokens_per_s'])} target tokens/s**, "
                     f"{fmt(tr['seconds'], 2)} s/epoch ({tr['batches']} batches), "
                     f"{fmt(tr['gflops'], 1)} GFLOP/s, **MFU {mfu:.0%}**", target))
    ratio = default["tokens_per_s"] / lesson["tokens_per_s"]
    ceiling = peak / lesson["gflops"]  # the default path at 100 % MFU
    rows.append(("2c", "training speed-up, default ÷ lesson-style", f"**{ratio:.1f}×** "
                 f"(at most {ceiling:.1f}× even at 100 % MFU, as lesson-style runs at "
                 f"{lesson['gflops'] / peak:.0%})", f"≥ 4×: {verdict(ratio >= 4)}"))
    dec = r["decode"]
    n = dec["sentences"]
    useful = dec["useful_flops"]
    rows.append(("3a", "decoding, batched greedy (batches of 128)",
                 f"{fmt(n / dec['batched_s'])} sentences/s, {fmt(useful / dec['batched_s'] / 1e9, 1)}"
                 f" useful GFLOP/s ({useful / dec['batched_s'] / 1e9 / peak:.0%} of the roofline)",
                 ""))
    rows.append(("3b", "decoding, greedy one sentence at a time",
                 f"{fmt(n / dec['single_s'], 1)} sentences/s "
                 f"({fmt(1e3 * dec['single_s'] / n, 1)} ms per sentence, "
                 f"{dec['mean_output_words']:.1f} output words on average)", ""))
    speedup = dec["single_s"] / dec["batched_s"]
    ceiling = dec["single_s"] / (useful / peak / 1e9)  # batched decoding at 100 % of roofline
    rows.append(("3c", "decoding speed-up, batched ÷ one at a time",
                 f"**{speedup:.1f}×** (at most {ceiling:.0f}× even at 100 % of the roofline)",
                 f"≥ 30×: {verdict(speedup >= 30)}"))
    rows.append(("3d", "decoding, beam search (beam 5, batched)",
                 f"{fmt(n / dec['beam5_s'], 1)} sentences/s" if "beam5_s" in dec
                 else r["beam_status"], ""))
    for key, q, label in (("4a", r["quality_gru"], "plain GRU, lesson sizes, jieba words"),
                          ("4b", r.get("quality_attention"), "the `make demo` model: characters, "
                           "bidirectional GRU + Bahdanau attention")):
        if q is None:
            rows.append((key, f"test BLEU, {label}", r["attention_status"], ""))
            continue
        beam = (f", beam 5 **{q['bleu_beam5']:.2f}**" if "bleu_beam5" in q
                else f", beam 5 {r['beam_status']}")
        rows.append((key, f"test BLEU, {label}, {q['epochs']} epoch{'s' if q['epochs'] != 1 else ''} (best epoch "
                     f"{q['best_epoch']})", f"greedy **{q['bleu_greedy']:.2f}**{beam}; "
                     f"training wall time {fmt(q['train_wall_s'])} s",
                     "" if key == "4a" else "≥ 9 BLEU within 300 s: " + verdict(
                         max(q["bleu_greedy"], q.get("bleu_beam5", 0)) >= 9
                         and q["train_wall_s"] <= 300)))
    rows.append(("5a", "peak RSS, training (default / lesson-style)",
                 f"{fmt(default['peak_rss_mib'])} / {fmt(lesson['peak_rss_mib'])} MiB "
                 f"(before fit: {fmt(default['rss_before_mib'] or 0)} / "
                 f"{fmt(lesson['rss_before_mib'] or 0)} MiB)", ""))
    rows.append(("5b", "peak RSS, decoding (batched, single, beam)",
                 f"{fmt(dec['peak_rss_mib'])} MiB (model loaded and warm: "
                 f"{fmt(dec['rss_before_mib'] or 0)} MiB)", ""))
    gpu = r.get("gpu")
    if gpu is None:
        rows.append(("6a", "GPU training fp32", "no GPU", ""))
        rows.append(("6b", "GPU training bf16 autocast", "no GPU", ""))
    else:
        for key, name, g in (("6a", "fp32", gpu["fp32"]), ("6b", "bf16 autocast", gpu["amp"])):
            rows.append((key, f"GPU training {name}, library default",
                         f"{fmt(g['tokens_per_s'])} target tokens/s, {fmt(g['seconds'], 2)} "
                         f"s/epoch, max_memory_allocated {fmt(g['cuda_peak_mib'])} MiB", ""))
    return rows


def render(r: dict[str, Any], rows: list[tuple[str, str, str, str]]) -> str:
    m = r["machine"]
    load0, load1 = r["load_start"], r["load_end"]
    # only the start says whether others were busy: at the end the load is this run's own
    busy = load0[0] > 0.5 * (m["logical_cpus"] or 1)
    cores = m["physical_cores"] or "?"
    lines = [
        "# Benchmark results", "",
        f"Command: `{r['command']}` (`make bench` runs `bench/bench.py` with its defaults).",
        f"Measured {r['date']} in {fmt(r['wall_s'])} s{'; **--quick smoke run: on a small sample, not comparable**' if r['quick'] else ''}.",
        "",
        f"- CPU: {m['cpu']}, {cores} physical cores / {m['logical_cpus']} logical CPUs; "
        f"torch uses {m['torch_threads']} threads ({m['torch_interop_threads']} inter-op)",
        f"- GPU: {m['gpu'] or 'none'}; rows 2-5 run on `{r['device']}`",
        f"- torch {m['torch']}, Python {m['python']}, {m['system']}",
        f"- load average (1, 5, 15 min) at start {tuple(round(x, 2) for x in load0)}, "
        f"at end {tuple(round(x, 2) for x in load1)} (this run's own load): "
        + ("**a shared, busy machine at the start: other jobs competed for the cores, the "
           "speeds are low and noisy**" if busy else "nothing else was running at the start"),
        "",
        "| row | measurement | value | target |",
        "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
        "",
        f"BLEU: sacreBLEU on the {r['quality_gru']['sentences']} test sentences, "
        f"signature `{r['quality_gru']['signature']}`.",
        "",
        "How each number is measured (details in the docstring of `bench/bench.py`):",
        "",
        "- Every row after the roofline runs in its own Python process, so memory peaks do not mix.",
        "- Training: `fit` for one warm-up epoch, then the fastest of the next "
        f"{r['measure_epochs']} epoch(s); tokens are non-pad target tokens. FLOPs count only the "
        "GRU and output-layer matrix products at real tokens, times 3 for forward + backward; "
        "MFU = FLOP/s ÷ the roofline of row 1.",
        "- Training epoch times in seconds, warm-up first: default "
        f"{[round(x, 2) for x in r['train_default']['all_seconds']]}, lesson-style "
        f"{[round(x, 2) for x in r['train_lesson']['all_seconds']]}.",
        "- Decoding: `Translator.translate_batch` over the whole test split (batched), "
        "`Translator.translate` per sentence (one at a time); best of 3 / 2 / 2 repeats after a "
        "warm-up, tokenization included. The model is the one row 4a trained.",
        "- Quality: 4a is the library default (`TrainConfig()`, `make_loader(train, 64)`) for the "
        "given epochs, 4b the settings of `make demo` (`seq2seq_lib.config.demo_configs()`); "
        "best checkpoint by validation loss; wall time includes validation and checkpoint "
        "writes. The decoding rows use the model of row 4a.",
        "- Peak RSS: `resource.getrusage(RUSAGE_SELF).ru_maxrss` of each process (Python, torch, "
        "jieba and the data included); in brackets the resident memory just before the timed part.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=8, help="training epochs for the BLEU rows (8)")
    p.add_argument("--measure-epochs", type=int, default=2,
                   help="timed training epochs after the warm-up epoch (2)")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: {QUICK_LIMIT} sampled pairs, 1 epoch, small matrices")
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
    epochs = 1 if args.quick else args.epochs
    measure = 1 if args.quick else args.measure_epochs
    r: dict[str, Any] = {
        "command": " ".join(["python bench/bench.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": args.quick, "device": args.device, "measure_epochs": measure,
        "machine": machine_info(), "load_start": os.getloadavg(),
        "attention_status": attention_available(), "beam_status": beam_available(),
    }
    print("1. roofline", flush=True)
    sizes, repeats = ((1024, 2048), 1) if args.quick else ((2048, 4096), 3)
    first = roofline(sizes, repeats)
    base = {"quick": args.quick, "device": args.device, "amp": False, "measure": measure}
    print("2. training throughput", flush=True)
    r["train_default"] = run_worker("train-speed", {**base, "mode": "default"}, args.threads)
    r["train_lesson"] = run_worker("train-speed", {**base, "mode": "lesson"}, args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        print("4. quality", flush=True)
        beam = r["beam_status"] is None
        ckpt, sentences = str(Path(tmp) / "gru.pt"), str(Path(tmp) / "test.json")
        r["quality_gru"] = run_worker("quality", {**base, "preset": "lesson", "epochs": epochs,
                                                  "checkpoint": ckpt, "beam": beam,
                                                  "sentences": sentences}, args.threads)
        if r["attention_status"] is None:
            r["quality_attention"] = run_worker(
                "quality", {**base, "preset": "demo",
                            "checkpoint": str(Path(tmp) / "attention.pt"), "beam": beam},
                args.threads)
        print("3. decoding throughput", flush=True)
        r["decode"] = run_worker("decode", {**base, "checkpoint": ckpt, "beam": beam,
                                            "sentences": sentences}, args.threads)
    if torch.cuda.is_available():
        print("6. GPU fp32 and bf16", flush=True)
        gpu = {**base, "device": "cuda", "mode": "default"}
        r["gpu"] = {"fp32": run_worker("train-speed", gpu, args.threads),
                    "amp": run_worker("train-speed", {**gpu, "amp": True}, args.threads)}
    print("1. roofline again (the best of both counts: a busy moment should not lower it)",
          flush=True)
    again = roofline(sizes, repeats)
    r["roofline"] = {n: max(first[n], again[n]) for n in first}
    r["roofline_gflops"] = max(r["roofline"].values())
    r["load_end"] = os.getloadavg()
    r["wall_s"] = time.perf_counter() - started
    report = render(r, build_rows(r))
    print("\n" + report)
    Path(args.out).write_text(report, encoding="utf-8")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
