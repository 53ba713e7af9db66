"""Turn the measurements of one bench run into the table of ``bench/RESULTS.md``, and hold them
to issue 21's targets: each target is a ratio of two figures of the same run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from measure import (
    AttentionMemory,
    DecodeSpeed,
    Machine,
    Profile,
    Quality,
    Reference,
    Roofline,
    TrainSpeed,
)

from seq2seq_lib.metrics import PairedBootstrap

MFU_TARGETS = {"fp32": 0.6, "bf16": 0.5}  # training: share of the roofline of what ran
TRAIN_VS_LESSON = 10  # training tokens/s ÷ the lesson's code's (the better of rows 2a / 2b)
BEAM_VS_GREEDY = 0.5  # beam 5's sentences/s ÷ batched greedy's, in fp32 and in bf16

Row = tuple[str, str, str, str]  # (row, measurement, value, target)


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
    train: dict[str, TrainSpeed]  # fp32, auto, lesson-style, *-compile (and gpu-* rows)
    decode: dict[str, DecodeSpeed]  # fp32, auto
    quality: dict[str, Quality]  # gru-auto, demo-fp32, demo-auto (seed 0 of guard_runs)
    guard: dict[str, PairedBootstrap]  # demo auto vs fp32, mean over the seeds: greedy, beam5
    reference: Reference | None
    compile_available: bool = False  # whether this version's TrainConfig has ``compile``
    guard_runs: dict[str, list[Quality]] = field(default_factory=dict)  # fp32, auto: by seed
    profiles: dict[str, Profile] = field(default_factory=dict)  # fp32 (and bf16)
    attention: list[AttentionMemory] = field(default_factory=list)  # one piece, chunked
    notes: list[str] = field(default_factory=list)


def fmt(x: float, digits: int = 0) -> str:
    return f"{x:,.{digits}f}"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _mfu(speed: TrainSpeed, run: Run) -> float:
    return speed.gflops / run.rooflines["bf16" if speed.precision == "bf16" else "fp32"].best


def _mfu_target(t: TrainSpeed, run: Run) -> str:
    goal = MFU_TARGETS.get(t.precision)
    if goal is None:
        return f"no MFU target for {t.precision}"
    mfu = _mfu(t, run)
    return (f"MFU ≥ {goal * 100:.0f} % of the {t.precision} roofline: **{mfu:.0%}** "
            + verdict(mfu >= goal))


def _training(t: TrainSpeed, run: Run) -> str:
    return (f"**{fmt(t.tokens_per_s)} target tokens/s**, {fmt(t.seconds, 2)} s/epoch "
            f"({t.batches} batches of {t.batch_size}), {fmt(t.gflops, 1)} GFLOP/s, "
            f"**MFU {_mfu(t, run):.0%}** of {t.precision}")


def roofline_rows(run: Run) -> list[Row]:
    """Rows 1a-1c: the matmul rooflines and the bf16 detection."""
    out: list[Row] = []
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
    return out


def training_rows(run: Run) -> list[Row]:
    """Rows 2a-2g: training throughput; the MFU targets and the one against the lesson."""
    out: list[Row] = []
    labels = {"fp32": "training, library defaults in fp32",
              "auto": "training, library defaults (`precision=auto`)",
              "lesson-style": "training, lesson-style in fp32: step-by-step decoder, teacher "
                              "forcing 0.5, plain batches of 32"}
    for key, name in (("2a", "fp32"), ("2b", "auto"), ("2c", "lesson-style")):
        t = run.train[name]
        target = "" if name == "lesson-style" else _mfu_target(t, run)
        if name == "auto" and t.precision == "fp32":
            target += "; no native bf16 here: the bf16 target is not measured"
        out.append((key, f"{labels[name]} → runs **{t.precision}**", _training(t, run), target))
    ref = run.reference
    goal = f"training ≥ {TRAIN_VS_LESSON}× the lesson's tokens/s (the better of 2a / 2b)"
    if ref is None:
        out.append(("2d", "training, the lesson's own code", "not measured: no "
                    "`--reference FILE`", f"{goal}: not measured"))
    else:
        x = max(run.train["fp32"].tokens_per_s,
                run.train["auto"].tokens_per_s) / ref.train_trg_tokens_per_s
        out.append(("2d", f"training, the lesson's own code (`{ref.command}`)",
                    f"**{fmt(ref.train_trg_tokens_per_s)} target tokens/s**",
                    f"{goal}: **{x:.1f}×** {verdict(x >= TRAIN_VS_LESSON)}"))
    for key, name, label in (("2e", "fp32-compile", "library defaults in fp32"),
                             ("2f", "auto-compile", "library defaults (`precision=auto`)")):
        what = f"training, {label} with `compile=True`"
        if not run.compile_available:
            out.append((key, what, "not available in this version", ""))
            continue
        t = run.train[name]
        out.append((key, f"{what} → runs **{t.precision}**; {t.compiled}", _training(t, run),
                    ""))
    for name in ("gpu-fp32", "gpu-auto"):
        if name in run.train:
            t = run.train[name]
            out.append(("2g", f"GPU training, library defaults, {t.precision}",
                        f"{fmt(t.tokens_per_s)} target tokens/s, {fmt(t.seconds, 2)} s/epoch, "
                        f"max_memory_allocated {fmt(t.cuda_peak_mib or 0)} MiB", ""))
    return out


def decoding_rows(run: Run) -> list[Row]:
    """Rows 3a-3c: decoding throughput; beam 5 against greedy in each precision."""
    out: list[Row] = []
    for key, name in (("3a", "fp32"), ("3b", "auto")):
        d = run.decode[name]
        n = d.sentences
        useful = d.useful_flops / d.batched_s / 1e9
        roof = run.rooflines["bf16" if d.precision == "bf16" else "fp32"].best
        share = d.batched_s / d.beam5_s  # beam 5's sentences/s ÷ greedy's
        out.append((key, f"decoding the test split, runs **{d.precision}**: batched greedy / "
                    "one sentence at a time / beam 5 batched",
                    f"**{fmt(n / d.batched_s)}** / {fmt(n / d.single_s, 1)} / "
                    f"**{fmt(n / d.beam5_s, 1)}** sentences/s; batched greedy at "
                    f"{fmt(useful, 1)} useful GFLOP/s ({useful / roof:.0%} of the "
                    f"{d.precision} roofline)",
                    f"beam 5 ≥ {BEAM_VS_GREEDY * 100:.0f} % of greedy's sentences/s: "
                    f"**{share:.0%}** "
                    + verdict(share >= BEAM_VS_GREEDY)))
    if run.reference is not None:
        out.append(("3c", "decoding, the lesson's own code (one sentence at a time, no eval())",
                    f"**{fmt(run.reference.translate_sents_per_s, 1)} sentences/s**", ""))
    return out


def _per_seed(runs: list[Quality], name: str) -> str:
    return " / ".join(f"{getattr(q, f'bleu_{name}'):.2f}" for q in runs)


def quality_rows(run: Run) -> list[Row]:
    """Rows 4a-4e: test BLEU, and the quality guard of mixed precision over the seeds."""
    out: list[Row] = []
    for key, name, label in (("4a", "gru-auto", "plain GRU, lesson sizes, jieba words"),
                             ("4b", "demo-fp32", "the `make demo` model in fp32"),
                             ("4c", "demo-auto", "the `make demo` model, `precision=auto`")):
        q = run.quality[name]
        seed = "" if name == "gru-auto" else f", seed {q.seed}"
        out.append((key, f"test BLEU, {label} → **{q.precision}**, {q.epochs} epochs (best "
                    f"{q.best_epoch}, valid loss {q.valid_loss:.3f}){seed}",
                    f"greedy **{q.bleu_greedy:.2f}**, beam 5 **{q.bleu_beam5:.2f}** "
                    f"(cased: {q.bleu_greedy_cased:.2f} / {q.bleu_beam5_cased:.2f}); training "
                    f"wall time {fmt(q.train_wall_s)} s", ""))
    fp32, auto = run.guard_runs["fp32"], run.guard_runs["auto"]
    seeds = ", ".join(str(q.seed) for q in fp32)
    for key, name, label in (("4d", "greedy", "greedy"), ("4e", "beam5", "beam 5")):
        g = run.guard[name]
        noise = ("holds 0: no difference these sentences and seeds can show"
                 if g.low <= 0 <= g.high else "excludes 0")
        out.append((key, f"quality guard, {label}: demo `auto` − demo fp32, mean over seeds "
                    f"{seeds}, paired bootstrap ({g.samples} resamplings)",
                    f"**{g.delta:+.2f} BLEU**, 95 % interval {g.low:+.2f} … {g.high:+.2f} "
                    f"({noise}); per seed: fp32 {_per_seed(fp32, name)}, {auto[0].precision} "
                    f"{_per_seed(auto, name)}", ""))
    return out


def memory_rows(run: Run) -> list[Row]:
    """Rows 5 and 6: peak resident memory; additive attention before and after chunking."""
    t, d = run.train["auto"], run.decode["auto"]
    out: list[Row] = [("5", "peak RSS: training (auto) / decoding",
                       f"{fmt(t.peak_rss_mib)} / {fmt(d.peak_rss_mib)} MiB", "")]
    if run.attention:
        before, after = run.attention
        less = before.peak_rss_growth_mib / max(after.peak_rss_growth_mib, 1e-9)
        out.append(("6", f"additive attention, one training forward + backward of the demo "
                    f"model at batch {before.batch}, lengths {before.length}, attention dim "
                    "512: in one piece (before) / in chunks of target steps (after)",
                    f"peak RSS growth **{fmt(before.peak_rss_growth_mib)}** / "
                    f"**{fmt(after.peak_rss_growth_mib)} MiB** ({less:.1f}× less); largest "
                    f"tensor {fmt(before.largest_tensor_mib)} / {fmt(after.largest_tensor_mib)} "
                    f"MiB; {before.seconds:.2f} / {after.seconds:.2f} s per step", ""))
    return out


def rows(run: Run) -> list[Row]:
    """(row, measurement, value, target) for the table."""
    return [*roofline_rows(run), *training_rows(run), *decoding_rows(run), *quality_rows(run),
            *memory_rows(run)]


def profile_section(run: Run) -> list[str]:
    """The top operators of one training epoch, fp32 and bf16 side by side."""
    if not run.profiles:
        return []
    profs = list(run.profiles.values())
    steps = "; ".join(f"{p.precision}: {p.steps} steps, {p.self_cpu_s:.1f} s of self CPU time"
                      for p in profs)
    lines = ["## Where one training epoch spends its time", "",
             "The default training row (2a / 2b) under `torch.profiler`, the epoch after a "
             f"warm-up epoch ({steps}); the operators with the most self CPU time and their "
             "share of all of it.", "",
             "| # | " + " | ".join(f"{p.precision} operator | self s | share" for p in profs)
             + " |", "|---|" + "---|---:|---:|" * len(profs)]
    for i in range(max(len(p.top) for p in profs)):
        cells = [f"`{p.top[i][0]}` | {p.top[i][1]:.2f} | {p.top[i][2]:.1%}" if i < len(p.top)
                 else " | | " for p in profs]
        lines.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    return [*lines, ""]


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
        f"- GPU: {m.gpu or 'none'}; rows 2-6 run on `{run.device}`",
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
        *profile_section(run),
        "How each number is measured (details in `bench/measure.py`):", "",
        "- The targets are issue 21's, each a ratio of two figures of this run: training MFU "
        "against this run's roofline of the precision that ran (≥ 60 % fp32, ≥ 50 % bf16), "
        "training against the lesson's code run in the same bench (≥ 10×), beam 5 against "
        "greedy on the same sentences and model (≥ 50 %, fp32 and bf16).",
        "- Every row after the rooflines runs in its own Python process, so memory peaks do not "
        "mix. `auto` is `TrainConfig.precision`'s default: bf16 autocast where the device "
        "computes it natively, fp32 elsewhere; each row names what actually ran.",
        "- Training: `fit` for one warm-up epoch, then the fastest of the next epochs; tokens "
        "are non-pad target tokens. FLOPs count the GRU and output-layer matrix products at real "
        "tokens, × 3 for forward + backward; MFU = FLOP/s ÷ the roofline of the row's precision. "
        "Row 2d's ratio takes the faster of rows 2a and 2b.",
        "- `compile=True` (rows 2e / 2f): `TrainConfig.compile` where this version has it; the "
        "row says whether graphs were compiled (dynamo's count) or training fell back to eager "
        "(the line it printed). The compiling happens in the warm-up epoch.",
        "- Training epoch times in seconds, warm-up first: "
        + "; ".join(f"{k} {[round(x, 2) for x in t.all_seconds]}" for k, t in run.train.items()),
        "- Profile: `torch.profiler` (CPU activities) over the optimizer steps of the second "
        "epoch of the default row, in fp32 and in `auto`; validation is not profiled. An "
        "operator's self time leaves out the operators it calls.",
        "- Decoding: `Translator.translate_batch` over the whole test split, "
        "`Translator.translate` per sentence, and beam 5; best of 3 / 2 / 2 runs after a "
        "warm-up, tokenization included, with the model of row 4a.",
        "- Quality guard: the demo recipe trained in fp32 and in `auto` with each training seed "
        "(the split stays the same); rows 4b / 4c are seed 0's runs. The interval comes from a "
        "paired bootstrap that draws the test sentences once per resampling and averages the "
        "seeds' differences on that draw (`seq2seq_lib.metrics.paired_bootstrap_mean`).",
        "- Attention memory (row 6): `measure.attention_memory`, each variant in a fresh "
        "process (also `bench/bench_decode.py --only memory`): the growth of the peak resident "
        "memory over the first forward + backward, and the largest tensor an operator returned.",
        *[f"- {note}" for note in run.notes],
        "",
    ]
    return "\n".join(lines)


def as_dict(run: Run) -> dict[str, Any]:
    """A JSON-friendly view (without the per-sentence outputs)."""
    from dataclasses import asdict

    data = asdict(run)
    for q in [*data["quality"].values(), *(q for r in data["guard_runs"].values() for q in r)]:
        for key in ("references", "greedy", "beam5"):
            q.pop(key)
    return data
