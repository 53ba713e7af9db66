"""Turn the measurements of one bench run into the table of ``bench/RESULTS.md``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from measure import DecodeSpeed, Machine, Quality, Reference, Roofline, TrainSpeed

from seq2seq_lib.metrics import PairedBootstrap


@dataclass
class Run:
    """Everything one ``bench.py`` run measured."""

    command: str
    date: str
    quick: bool
    device: str
    machine: Machine
    load_start: tuple[float, ...]
    load_end: tuple[float, ...]
    wall_s: float
    rooflines: dict[str, Roofline]  # fp32, bf16: the best of start and end of the run
    train: dict[str, TrainSpeed]  # fp32, auto, lesson-style (and gpu-* rows)
    decode: dict[str, DecodeSpeed]  # fp32, auto
    quality: dict[str, Quality]  # gru-auto, demo-fp32, demo-auto
    guard: dict[str, PairedBootstrap]  # demo auto vs fp32: greedy, beam5
    reference: Reference | None
    notes: list[str] = field(default_factory=list)


def fmt(x: float, digits: int = 0) -> str:
    return f"{x:,.{digits}f}"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _mfu(speed: TrainSpeed, run: Run) -> float:
    return speed.gflops / run.rooflines["bf16" if speed.precision == "bf16" else "fp32"].best


def rows(run: Run) -> list[tuple[str, str, str, str]]:
    """(row, measurement, value, target) for the table."""
    out: list[tuple[str, str, str, str]] = []
    fp32, bf16 = run.rooflines["fp32"], run.rooflines["bf16"]
    for key, r in (("1a", fp32), ("1b", bf16)):
        sizes = ", ".join(f"{n}: {fmt(g, 1)}" for n, g in r.by_size.items())
        out.append((key, f"{r.dtype} matmul roofline, best of start and end of the run",
                    f"**{fmt(r.best, 1)} GFLOP/s** (n = {sizes})", ""))
    ratio = bf16.best / fp32.best
    detected = run.machine.cpu_bf16
    out.append(("1c", "bf16 detection: what `seq2seq_lib.device` detects vs the measured "
                "bf16 ÷ fp32 matmul ratio",
                f"detected: **{detected or 'no native bf16'}**; measured ratio **{ratio:.1f}×**",
                "agree (native ⇔ ratio > 1.5): " + verdict((detected is not None) == (ratio > 1.5))))
    ref = run.reference
    for key, name in (("2a", "fp32"), ("2b", "auto"), ("2c", "lesson-style")):
        t = run.train[name]
        label = {"fp32": "training, library defaults in fp32",
                 "auto": "training, library defaults (`precision=auto`)",
                 "lesson-style": "training, lesson-style in fp32: step-by-step decoder, teacher "
                                 "forcing 0.5, plain batches of 32"}[name]
        mfu = _mfu(t, run)
        target = ""
        if t.precision == "fp32" and name != "lesson-style":
            target = f"MFU ≥ 60 % of fp32: {verdict(mfu >= 0.6)}"
        if name == "auto" and ref is not None:
            x = t.tokens_per_s / ref.train_trg_tokens_per_s
            target = f"≥ 6× the lesson's code: **{x:.1f}×** {verdict(x >= 6)}"
        out.append((key, f"{label} → runs **{t.precision}**",
                    f"**{fmt(t.tokens_per_s)} target tokens/s**, {fmt(t.seconds, 2)} s/epoch "
                    f"({t.batches} batches of {t.batch_size}), {fmt(t.gflops, 1)} GFLOP/s, "
                    f"**MFU {mfu:.0%}** of {t.precision}", target))
    if ref is not None:
        out.append(("2d", f"training, the lesson's own code (`{ref.command}`)",
                    f"**{fmt(ref.train_trg_tokens_per_s)} target tokens/s**", ""))
    for name in ("gpu-fp32", "gpu-auto"):
        if name in run.train:
            t = run.train[name]
            out.append(("2g", f"GPU training, library defaults, {t.precision}",
                        f"{fmt(t.tokens_per_s)} target tokens/s, {fmt(t.seconds, 2)} s/epoch, "
                        f"max_memory_allocated {fmt(t.cuda_peak_mib or 0)} MiB", ""))
    for key, name in (("3a", "fp32"), ("3b", "auto")):
        d = run.decode[name]
        n = d.sentences
        useful = d.useful_flops / d.batched_s / 1e9
        roof = run.rooflines["bf16" if d.precision == "bf16" else "fp32"].best
        target = ""
        if name == "auto" and ref is not None:
            x = n / d.batched_s / ref.translate_sents_per_s
            target = f"≥ 30× the lesson's code: **{x:.1f}×** {verdict(x >= 30)}"
        out.append((key, f"decoding the test split, runs **{d.precision}**: batched greedy / "
                    "one sentence at a time / beam 5 batched",
                    f"**{fmt(n / d.batched_s)}** / {fmt(n / d.single_s, 1)} / "
                    f"{fmt(n / d.beam5_s, 1)} sentences/s; batched greedy at {fmt(useful, 1)} "
                    f"useful GFLOP/s ({useful / roof:.0%} of the {d.precision} roofline)", target))
    if ref is not None:
        out.append(("3c", "decoding, the lesson's own code (one sentence at a time, no eval())",
                    f"**{fmt(ref.translate_sents_per_s, 1)} sentences/s**", ""))
    for key, name, label in (("4a", "gru-auto", "plain GRU, lesson sizes, jieba words"),
                             ("4b", "demo-fp32", "the `make demo` model in fp32"),
                             ("4c", "demo-auto", "the `make demo` model, `precision=auto`")):
        q = run.quality[name]
        target = ""
        if name == "demo-auto":
            target = ("≥ 9 BLEU in about half of 221 s: "
                      + verdict(max(q.bleu_greedy, q.bleu_beam5) >= 9 and q.train_wall_s <= 130))
        out.append((key, f"test BLEU, {label} → **{q.precision}**, {q.epochs} epochs (best "
                    f"{q.best_epoch}, valid loss {q.valid_loss:.3f})",
                    f"greedy **{q.bleu_greedy:.2f}**, beam 5 **{q.bleu_beam5:.2f}** "
                    f"(cased: {q.bleu_greedy_cased:.2f} / {q.bleu_beam5_cased:.2f}); training "
                    f"wall time {fmt(q.train_wall_s)} s", target))
    for key, name in (("4d", "greedy"), ("4e", "beam5")):
        g = run.guard[name]
        out.append((key, f"quality guard, {name}: demo `auto` − demo fp32, paired bootstrap "
                    f"({g.samples} resamplings)", f"**{g.delta:+.2f} BLEU**, 95 % interval "
                    f"{g.low:+.2f} … {g.high:+.2f}",
                    "no loss beyond the noise (interval reaches 0 or above): "
                    + verdict(g.high >= 0)))
    t, d = run.train["auto"], run.decode["auto"]
    out.append(("5", "peak RSS: training (auto) / decoding",
                f"{fmt(t.peak_rss_mib)} / {fmt(d.peak_rss_mib)} MiB", ""))
    return out


def markdown(run: Run) -> str:
    m = run.machine
    busy = run.load_start[0] > 0.5 * (m.logical_cpus or 1)
    quick = "; **--quick smoke run: on a small sample, not comparable**" if run.quick else ""
    lines = [
        "# Benchmark results", "",
        f"Command: `{run.command}` (`make bench` runs `bench/bench.py`; the lesson's code is "
        "measured only when `--reference FILE` names it).",
        f"Measured {run.date} in {fmt(run.wall_s)} s{quick}.", "",
        f"- CPU: {m.cpu}, {m.physical_cores or '?'} physical cores / {m.logical_cpus} logical "
        f"CPUs; torch uses {m.torch_threads} threads ({m.torch_interop_threads} inter-op); "
        f"native bf16 detected: {m.cpu_bf16 or 'none'}",
        f"- GPU: {m.gpu or 'none'}; rows 2-5 run on `{run.device}`",
        f"- torch {m.torch}, Python {m.python}, {m.system}",
        f"- load average (1, 5, 15 min) at start {tuple(round(x, 2) for x in run.load_start)}, "
        f"at end {tuple(round(x, 2) for x in run.load_end)} (this run's own load): "
        + ("**a busy machine at the start: the speeds are low and noisy**" if busy
           else "nothing else was running at the start"),
        "", "| row | measurement | value | target |", "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows(run)],
        "",
        f"BLEU: sacreBLEU on the {run.quality['gru-auto'].sentences} test sentences, signature "
        f"`{run.quality['gru-auto'].signature}`; 'cased' is the same with `case:mixed`.",
        "",
        "How each number is measured (details in `bench/measure.py`):", "",
        "- Every row after the rooflines runs in its own Python process, so memory peaks do not "
        "mix. `auto` is `TrainConfig.precision`'s default: bf16 autocast where the device "
        "computes it natively, fp32 elsewhere; each row names what actually ran.",
        "- Training: `fit` for one warm-up epoch, then the fastest of the next epochs; tokens "
        "are non-pad target tokens. FLOPs count the GRU and output-layer matrix products at real "
        "tokens, × 3 for forward + backward; MFU = FLOP/s ÷ the roofline of the row's precision.",
        "- Training epoch times in seconds, warm-up first: "
        + "; ".join(f"{k} {[round(x, 2) for x in t.all_seconds]}" for k, t in run.train.items()),
        "- Decoding: `Translator.translate_batch` over the whole test split, "
        "`Translator.translate` per sentence, and beam 5; best of 3 / 2 / 2 runs after a "
        "warm-up, tokenization included, with the model of row 4a.",
        "- Quality guard: the demo recipe trained twice with seed 0, in fp32 and in `auto`; the "
        "difference of their test BLEU with a paired-bootstrap interval "
        "(`seq2seq_lib.metrics.paired_bootstrap`).",
        *[f"- {note}" for note in run.notes],
        "",
    ]
    return "\n".join(lines)


def as_dict(run: Run) -> dict[str, Any]:
    """A JSON-friendly view (without the per-sentence outputs)."""
    from dataclasses import asdict

    data = asdict(run)
    for q in data["quality"].values():
        for key in ("references", "greedy", "beam5"):
            q.pop(key)
    return data
