"""What ``bench.py`` measures: one function per measurement, each returning a small dataclass.

Each function runs in a fresh worker process (see ``bench.py``), so memory peaks do not mix.

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

The count is that of the lesson's model (no attention): it is used for the rows at the lesson's
size. MFU = FLOP/s ÷ the matmul roofline *of the precision the row runs in* (fp32 or bf16).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

QUICK_LIMIT = 600  # pairs sampled from the corpus in --quick mode


# ---------------------------------------------------------------- machine


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


@dataclass
class Machine:
    cpu: str
    logical_cpus: int | None
    physical_cores: int | None
    torch_threads: int
    torch_interop_threads: int
    torch: str
    python: str
    system: str
    gpu: str | None
    cpu_bf16: str | None  # what seq2seq_lib.device detects: AMX, AVX512-BF16, Arm BF16 or None


def machine() -> Machine:
    from seq2seq_lib.device import cpu_bf16_instructions

    return Machine(cpu_model(), os.cpu_count(), physical_cores(), torch.get_num_threads(),
                   torch.get_num_interop_threads(), torch.__version__,
                   platform.python_version(), f"{platform.system()} {platform.machine()}",
                   torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                   cpu_bf16_instructions())


# ---------------------------------------------------------------- FLOPs and memory


def gru_flops_per_token(in_dim: int, hid_dim: int, n_layers: int) -> int:
    """Forward FLOPs of a stacked unidirectional GRU for one token (see the module docstring)."""
    return 6 * hid_dim * (in_dim + hid_dim) + (n_layers - 1) * 6 * hid_dim * (2 * hid_dim)


def training_flops(src_tokens: int, trg_tokens: int, emb_dim: int, hid_dim: int, n_layers: int,
                   trg_vocab: int) -> int:
    """Forward + backward FLOPs of one pass over ``src_tokens``/``trg_tokens`` real tokens."""
    gru = gru_flops_per_token(emb_dim, hid_dim, n_layers)
    return 3 * (src_tokens * gru + trg_tokens * (gru + 2 * hid_dim * trg_vocab))


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


# ---------------------------------------------------------------- 1. rooflines


@dataclass
class Roofline:
    """Best matmul GFLOP/s of one dtype on square matrices (after one untimed product)."""

    dtype: str
    by_size: dict[str, float]

    @property
    def best(self) -> float:
        return max(self.by_size.values())


def roofline(dtype: str, sizes: tuple[int, ...], repeats: int) -> Roofline:
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    out = {}
    for n in sizes:
        a, b = torch.randn(n, n, dtype=torch_dtype), torch.randn(n, n, dtype=torch_dtype)
        c = torch.empty(n, n, dtype=torch_dtype)
        torch.matmul(a, b, out=c)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.matmul(a, b, out=c)
            best = min(best, time.perf_counter() - t0)
        out[str(n)] = 2 * n**3 / best / 1e9
    return Roofline(dtype, out)


# ---------------------------------------------------------------- workers' helpers


def _data(quick: bool, cfg=None):
    from seq2seq_lib import DataConfig, prepare_data

    cfg = cfg or DataConfig()
    cfg = replace(cfg, limit=QUICK_LIMIT) if quick else cfg
    return cfg, prepare_data(cfg)


def _device(name: str) -> torch.device:
    from seq2seq_lib import choose_device

    return choose_device(name, verbose=False)


# ---------------------------------------------------------------- 2. training speed


@dataclass
class TrainSpeed:
    """Fastest measured epoch of ``fit`` at the lesson's model size."""

    mode: str  # "default" (library defaults) or "lesson-style"
    precision: str  # what ran: fp32, bf16, fp16
    batch_size: int
    seconds: float
    tokens_per_s: float
    gflops: float
    batches: int
    all_seconds: list[float]
    peak_rss_mib: float
    cuda_peak_mib: float | None = None
    compiled: str | None = None  # with compile=True: "compiled (N graphs)" or "fell back ..."


def compile_available() -> bool:
    """Whether this version's ``TrainConfig`` has the ``compile`` opt-in."""
    from seq2seq_lib import TrainConfig

    return "compile" in {f.name for f in dataclasses.fields(TrainConfig)}


class _Tee(io.TextIOBase):
    """A text stream that writes through to ``stream`` and keeps a copy."""

    def __init__(self, stream: Any):
        self.stream, self.copy = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.copy.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


@contextlib.contextmanager
def _compile_messages() -> Iterator[list[str]]:
    """The lines about compiling that ``print``, ``warnings`` or ``logging`` emit inside the
    block (printed lines and warnings still reach the terminal); filled in when it ends."""
    import logging

    found: list[str] = []
    out, err, logged = _Tee(sys.stdout), _Tee(sys.stderr), io.StringIO()
    handler = logging.StreamHandler(logged)  # a copy only: the loggers' own handlers print
    loggers = [logging.getLogger(), logging.getLogger("torch")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            yield found
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    for w in caught:
        print(f"{w.category.__name__}: {w.message}", file=sys.stderr)
    text = out.copy.getvalue() + err.copy.getvalue() + logged.getvalue()
    lines = text.splitlines() + [str(w.message) for w in caught
                                 if not issubclass(w.category, (DeprecationWarning, FutureWarning))]
    found.extend(dict.fromkeys(ln.strip() for ln in lines if "compil" in ln.lower()))


def _compiled_verdict(messages: list[str]) -> str:
    """What compile=True did: the fallback line if one was seen, else dynamo's count of the
    graphs it compiled."""
    graphs = 0
    with contextlib.suppress(ImportError, KeyError, AttributeError):
        from torch._dynamo.utils import counters

        graphs = int(counters["stats"]["unique_graphs"])
    said = ("eager", "fall", "fail", "uncompiled", "not available", "no c++")
    fallback = [m for m in messages if any(w in m.lower() for w in said)]
    if fallback:
        return f"fell back to eager: «{fallback[0]}»"
    if graphs:
        return f"compiled ({graphs} graph{'s' if graphs != 1 else ''})"
    return "no graph was compiled" + (f": «{messages[0]}»" if messages else "")


def train_speed(mode: str, precision: str, measure: int, quick: bool, device: str,
                batch_size: int = 64, compile: bool = False) -> TrainSpeed:
    """``fit`` for 1 warm-up + ``measure`` epochs; the fastest measured epoch is reported.

    ``default``: teacher forcing 1.0 (one fused decoder call), length buckets of
    ``batch_size``; ``lesson-style``: teacher forcing 0.5 (a step-by-step decoder), plain
    unshuffled batches of 32, as the lesson trains. ``compile``: ``TrainConfig.compile=True``
    (the version must have it, see :func:`compile_available`); the result says whether a graph
    was compiled or training fell back to eager.
    """
    from seq2seq_lib import ModelConfig, TrainConfig, fit, set_seed
    from seq2seq_lib.batching import make_loader
    from seq2seq_lib.recipe import new_model

    if compile and not compile_available():
        raise ValueError("compile=True: this version's TrainConfig has no compile setting")
    _, data = _data(quick)
    dev = _device(device)
    model_cfg = ModelConfig()
    model = new_model(data, model_cfg, seed=0)
    set_seed(0)
    extra = {"compile": True} if compile else {}
    if mode == "lesson-style":
        cfg = TrainConfig(epochs=1 + measure, batch_size=32, teacher_forcing_ratio=0.5,
                          bucket=False, precision=precision, **extra)
        train_loader = make_loader(data.train, 32, bucket=False, shuffle=False)
    else:
        cfg = TrainConfig(epochs=1 + measure, batch_size=batch_size, precision=precision,
                          **extra)
        train_loader = make_loader(data.train, cfg.batch_size, bucket=cfg.bucket, seed=cfg.seed)
    valid_loader = make_loader(data.valid, 256, bucket=False, shuffle=False)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    with _compile_messages() if compile else contextlib.nullcontext([]) as messages:
        result = fit(model, train_loader, valid_loader, cfg, progress=False, device=dev)
    measured = result.history[1:] or result.history
    best = min(measured, key=lambda r: r["seconds"])
    flops = training_flops(sum(len(s) for s in data.train.src), data.train.n_target_tokens(),
                           model_cfg.emb_dim, model_cfg.hid_dim, model_cfg.n_layers,
                           len(data.trg_vocab))
    return TrainSpeed(mode, result.precision, cfg.batch_size, best["seconds"],
                      best["tokens_per_s"], flops / best["seconds"] / 1e9, len(train_loader),
                      [r["seconds"] for r in result.history], peak_rss_mib(),
                      torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None,
                      _compiled_verdict(messages) if compile else None)


# ---------------------------------------------------------------- 2. where training spends


@dataclass
class Profile:
    """The operators of one training epoch by self CPU time (``torch.profiler``)."""

    precision: str  # what ran
    steps: int
    self_cpu_s: float  # all operators' self CPU time together
    top: list[tuple[str, float, float, int]]  # (operator, self CPU s, share, calls)


def profile_train(precision: str, quick: bool, device: str, top: int = 8) -> Profile:
    """The default training row (``fit``, batches of 64): one warm-up epoch, then the second
    epoch's optimizer steps under ``torch.profiler`` (its validation is not profiled)."""
    from torch.profiler import ProfilerActivity, profile

    from seq2seq_lib import ModelConfig, TrainConfig, fit, set_seed
    from seq2seq_lib.batching import make_loader
    from seq2seq_lib.recipe import new_model

    _, data = _data(quick)
    dev = _device(device)
    model = new_model(data, ModelConfig(), seed=0)
    set_seed(0)
    cfg = TrainConfig(epochs=2, precision=precision)
    train_loader = make_loader(data.train, cfg.batch_size, bucket=cfg.bucket, seed=cfg.seed)
    valid_loader = make_loader(data.valid, 256, bucket=False, shuffle=False)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    prof = profile(activities=activities)
    steps = 0

    def start(trainer) -> None:  # on_epoch: the warm-up epoch is over
        if trainer.state.epoch == 1:
            prof.start()

    def stop(trainer) -> None:  # on_step: the profiled epoch's last optimizer step is done
        nonlocal steps
        if trainer.state.epoch == 2:
            steps += 1
            if trainer.state.batch >= trainer.order.n_batches(2):
                prof.stop()

    result = fit(model, train_loader, valid_loader, cfg, progress=False, device=dev,
                 hooks={"on_epoch": [start], "on_step": [stop]})
    from profile_train import top_ops  # bench/ is on the path (its own script's table)

    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    return Profile(result.precision, steps, total / 1e6,
                   [(name, ms / 1e3, share, calls) for name, ms, share, calls in top_ops(prof, top)])


# ---------------------------------------------------------------- 4. quality


@dataclass
class Quality:
    """A training recipe run to the end: best checkpoint, test BLEU and the outputs."""

    recipe: str  # "gru" (the lesson's sizes, jieba words) or "demo" (what make demo trains)
    precision: str
    epochs: int
    best_epoch: int
    valid_loss: float
    train_wall_s: float
    sentences: int
    bleu_greedy: float
    bleu_beam5: float
    bleu_greedy_cased: float
    bleu_beam5_cased: float
    signature: str
    peak_rss_mib: float
    references: list[str] = field(repr=False)
    greedy: list[str] = field(repr=False)
    beam5: list[str] = field(repr=False)
    seed: int = 0  # TrainConfig.seed (the split's seed stays the data's: the same test set)


def quality(recipe: str, precision: str, quick: bool, device: str, epochs: int,
            checkpoint: str, sentences_file: str | None = None, seed: int = 0) -> Quality:
    """Train ``recipe`` with training seed ``seed`` and score the test split, greedy and beam 5.

    ``gru``: the library default at the lesson's sizes for ``epochs`` epochs; ``demo``:
    ``seq2seq_lib.config.demo_configs()`` with its own epoch count (what ``make demo`` trains).
    """
    from seq2seq_lib import ModelConfig, TrainConfig
    from seq2seq_lib.config import demo_configs
    from seq2seq_lib.metrics import bleu_signature, corpus_bleu
    from seq2seq_lib.recipe import train_model
    from seq2seq_lib.translator import Translator

    if recipe == "demo":
        data_cfg, model_cfg, cfg = demo_configs()
        epochs = 1 if quick else cfg.epochs
    else:
        data_cfg, model_cfg, cfg = None, ModelConfig(), TrainConfig()
    data_cfg, data = _data(quick, data_cfg)
    cfg = replace(cfg, epochs=epochs, checkpoint_path=checkpoint, precision=precision, seed=seed)
    dev = _device(device)
    model, result = train_model(data, data_cfg, model_cfg, cfg, progress=False, device=dev)
    translator = Translator(model, data.src_vocab, data.trg_vocab, data_cfg, model_cfg, dev,
                            data.truecaser, cfg.precision)
    pairs = data.splits.test
    if sentences_file:  # the decoding worker times the same test sentences
        Path(sentences_file).write_text(json.dumps([zh for zh, _ in pairs], ensure_ascii=False),
                                        encoding="utf-8")
    refs = [en for _, en in pairs]
    greedy, greedy_hyps = translator.bleu(pairs)
    beam, beam_hyps = translator.bleu(pairs, beam_size=5)
    return Quality(recipe, result.precision, len(result.history), result.best_epoch,
                   result.best_valid_loss, result.seconds, len(pairs), greedy.score, beam.score,
                   corpus_bleu(greedy_hyps, refs).score, corpus_bleu(beam_hyps, refs).score,
                   bleu_signature(data_cfg.lowercase), peak_rss_mib(), refs, greedy_hyps,
                   beam_hyps, seed)


# ---------------------------------------------------------------- 6. attention memory


class LargestTensor(TorchDispatchMode):
    """The most bytes of any tensor an operator returned."""

    def __init__(self):
        super().__init__()
        self.nbytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.nbytes = max(self.nbytes, t.numel() * t.element_size())
        return out


@dataclass
class AttentionMemory:
    """One training forward + backward of the demo-sized attention model, in a fresh process."""

    variant: str  # "one piece" (before) or "chunked" (after: the library's default)
    batch: int
    length: int  # source and target length
    peak_rss_growth_mib: float  # growth of the peak resident memory over the first step
    largest_tensor_mib: float
    seconds: float  # the second step (the allocator warmed up)


def attention_memory(variant: str, batch: int, length: int) -> AttentionMemory:
    """The demo model's additive attention (attention dim 512) at ``batch`` × ``length``:
    ``one piece`` materialises [batch, trg_len, src_len, attn_dim] at once; ``chunked`` runs it
    in chunks of target steps (``max_chunk_elements``, the library's default)."""
    from seq2seq_lib import ModelConfig, build_model

    torch.manual_seed(0)
    cfg = ModelConfig(emb_dim=256, hid_dim=512, n_layers=1, dropout=0.5, bidirectional=True,
                      attention="bahdanau")
    vocab = 3000
    model = build_model(cfg, vocab, vocab)
    if variant == "one piece":
        model.decoder.attention.max_chunk_elements = 2**62
    elif variant != "chunked":
        raise ValueError(f"variant must be 'one piece' or 'chunked', got {variant!r}")
    src = torch.randint(4, vocab, (length, batch))  # [src_len, batch]
    trg = torch.randint(4, vocab, (length, batch))  # [trg_len, batch]
    lens = torch.full((batch,), length)

    def step() -> None:
        logits = model(src, lens, trg)  # [trg_len - 1, batch, vocab]
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), trg[1:].flatten()).backward()

    before = peak_rss_mib()  # the model and the batch are there; no step has run yet
    step()
    grown = peak_rss_mib() - before
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    step()  # the timed step runs second, once the allocator has warmed up
    seconds = time.perf_counter() - start
    with LargestTensor() as seen:
        step()
    return AttentionMemory(variant, batch, length, grown, seen.nbytes / 2**20, seconds)


# ---------------------------------------------------------------- 3. decoding speed


@dataclass
class DecodeSpeed:
    """Sentences/s of batched greedy, one-at-a-time greedy and batched beam-5 decoding."""

    precision: str
    sentences: int
    batched_s: float
    single_s: float
    beam5_s: float
    useful_flops: float  # matrix products greedy decoding cannot avoid (forward only)
    mean_output_words: float
    peak_rss_mib: float


def decode_speed(checkpoint: str, sentences_file: str, precision: str, device: str
                 ) -> DecodeSpeed:
    from seq2seq_lib import Translator
    from seq2seq_lib.device import best_time

    sentences = json.loads(Path(sentences_file).read_text(encoding="utf-8"))
    translator = Translator.from_checkpoint(checkpoint, device=device, precision=precision)
    translator.translate_batch(sentences[:16])  # warm-up: jieba's dictionary, allocator
    translator.translate(sentences[0])
    batched_s, _ = best_time(lambda: translator.translate_batch(sentences), 3)
    single_s, _ = best_time(lambda: [translator.translate(s) for s in sentences], 2)
    beam5_s, _ = best_time(lambda: translator.translate_batch(sentences, beam_size=5), 2)
    cfg = translator.model_cfg
    gru = gru_flops_per_token(cfg.emb_dim, cfg.hid_dim, cfg.n_layers)
    src_ids = sum(len(translator.src_tokens(s)) + 2 for s in sentences)
    out_ids = sum(len(h.ids) + 1 for h in translator.hypotheses(sentences))
    useful = src_ids * gru + out_ids * (gru + 2 * cfg.hid_dim * len(translator.trg_vocab))
    return DecodeSpeed(translator.precision.name, len(sentences), batched_s, single_s, beam5_s,
                       useful, out_ids / len(sentences) - 1, peak_rss_mib())


# ---------------------------------------------------------------- the lesson's own code


@dataclass
class Reference:
    """The original lesson's code, run side by side (its own JSON line)."""

    command: str
    train_trg_tokens_per_s: float
    translate_sents_per_s: float
    raw: dict[str, Any]


def reference(script: str, epochs: int, quick: bool) -> Reference:
    """Run the lesson's code (``--reference FILE``) on the HSK corpus; parse its last line."""
    cmd = [sys.executable, script, "--corpus", "hsk", "--epochs", str(epochs)]
    if quick:
        cmd += ["--limit", str(QUICK_LIMIT)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the lesson's code failed (exit {proc.returncode}):\n"
                           f"{proc.stderr[-2000:]}")
    raw = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1])
    shown = " ".join(["python", Path(script).name, *cmd[2:]])
    return Reference(shown, raw["train_trg_tokens_per_s"], raw["translate_sents_per_s"], raw)
