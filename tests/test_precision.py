"""Number formats: no float64 on the device path (Apple's MPS has none), the precision choice,
dtypes that agree under autocast, and the fp16 gradient scaler kept across a resume.

Tests marked ``cuda`` train on a real GPU and skip (with the reason) where there is none.
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import ATTN_MODEL, TINY_MODEL, tiny_setup, train_tiny
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from seq2seq_lib import (
    ModelConfig,
    Translator,
    beam_search,
    evaluate_loss,
    fit,
    greedy_decode,
    load_checkpoint,
)
from seq2seq_lib import device as device_mod
from seq2seq_lib.batching import collate
from seq2seq_lib.device import PrecisionChoice, resolve_precision
from seq2seq_lib.train import batch_loss

CPU = torch.device("cpu")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


class Float64Guard(TorchDispatchMode):
    """Fails on the first operator that returns a float64 tensor (MPS cannot hold one)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.dtype == torch.float64:
                raise AssertionError(f"{func} created a float64 tensor on {t.device}")
        return out


class DtypeRecorder(TorchDispatchMode):
    """The floating dtypes each operator returned."""

    def __init__(self):
        super().__init__()
        self.seen: dict[str, set[torch.dtype]] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.is_floating_point():
                self.seen.setdefault(func.overloadpacket.__name__, set()).add(t.dtype)
        return out


def test_the_guard_catches_float64():
    """The guard can fail: the old running-loss sum (``loss.double()``) is caught."""
    with pytest.raises(AssertionError, match="float64"), Float64Guard():
        torch.zeros(()).double()


@pytest.mark.parametrize("model_cfg", [TINY_MODEL, ATTN_MODEL], ids=["gru", "attention"])
@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_training_evaluation_and_decoding_create_no_float64(tiny_data, model_cfg, precision):
    data_cfg, data = tiny_data
    model, train_loader, valid_loader, cfg, info = tiny_setup(data_cfg, data, epochs=2,
                                                             model_cfg=model_cfg)
    cfg.precision = precision
    b = collate([data.train[i] for i in range(5)])
    with Float64Guard():
        result = fit(model, train_loader, valid_loader, cfg, info, progress=False)
        evaluate_loss(model, valid_loader)
        greedy_decode(model, b.src, b.src_lens)
        beam_search(model, b.src, b.src_lens, beam_size=3)
        tr = Translator(model, data.src_vocab, data.trg_vocab, data_cfg, model_cfg,
                        precision=precision)
        tr.translate_batch(["我喜欢学习。", "你好吗？"], beam_size=2)
    assert len(result.history) == 2 and math.isfinite(result.best_valid_loss)


def test_the_trainer_with_every_option_creates_no_float64(tiny_data, tmp_path):
    """Validation every 2 steps with greedy BLEU as the metric, the plateau schedule, last and
    best checkpoints, and a resume from the last one: still no float64 on the device path."""
    from seq2seq_lib.recipe import GreedyBleu
    from seq2seq_lib.trainer import Trainer

    data_cfg, data = tiny_data
    bleu = GreedyBleu.from_data(data, sample=10)
    with Float64Guard():
        for resume in (False, True):
            model, train_loader, valid_loader, cfg, info = tiny_setup(
                data_cfg, data, epochs=2 + resume, model_cfg=ATTN_MODEL,
                checkpoint_path=tmp_path / "m.pt")
            cfg.last_checkpoint_path = str(tmp_path / "m.last.pt")
            cfg.valid_every, cfg.lr_schedule, cfg.patience = 2, "plateau", 5
            cfg.valid_bleu_sample, cfg.best_metric = 10, "bleu"
            trainer = Trainer(model, train_loader, valid_loader, cfg, info, progress=False,
                              valid_bleu=bleu)
            if resume:
                trainer.resume(tmp_path / "m.last.pt")
            result = trainer.fit()
    assert result.steps == 9 and all("valid_bleu" in r for r in result.history)


def test_auto_is_bf16_exactly_where_the_cpu_computes_it(monkeypatch):
    device_mod.cpu_bf16_instructions.cache_clear()
    monkeypatch.setattr(device_mod, "cpu_bf16_instructions", lambda: "AVX512-BF16")
    choice = resolve_precision("auto", CPU)
    assert (choice.name, choice.dtype, choice.scaler) == ("bf16", torch.bfloat16, False)
    assert "AVX512-BF16" in str(choice)
    monkeypatch.setattr(device_mod, "cpu_bf16_instructions", lambda: None)
    choice = resolve_precision("auto", CPU)
    assert choice.name == "fp32" and "no native bf16" in choice.reason
    with pytest.raises(ValueError, match="no native bf16"):
        resolve_precision("bf16", CPU)
    with pytest.raises(ValueError, match="fp16' needs a CUDA or MPS GPU"):
        resolve_precision("fp16", CPU)
    amp = resolve_precision("amp", CPU)  # --amp where it cannot apply: fp32 and says why
    assert amp.name == "fp32" and "no native bf16" in amp.reason


def test_cuda_choice_bf16_on_ampere_fp16_with_scaler_on_older_gpus(monkeypatch):
    gpu = torch.device("cuda")
    monkeypatch.setattr(device_mod, "cuda_bf16_native", lambda device: True)
    assert resolve_precision("auto", gpu).name == "bf16"
    assert resolve_precision("amp", gpu).name == "bf16"
    monkeypatch.setattr(device_mod, "cuda_bf16_native", lambda device: False)  # e.g. a T4
    assert resolve_precision("auto", gpu).name == "fp32"
    amp = resolve_precision("amp", gpu)
    assert (amp.name, amp.scaler) == ("fp16", True)
    with pytest.raises(ValueError, match="no native bf16"):
        resolve_precision("bf16", gpu)


def test_the_detected_cpu_instructions_match_the_cpu_flags():
    """On Linux the kernel lists the CPU's flags; the detection agrees with them."""
    try:
        flags = open("/proc/cpuinfo", encoding="utf-8").read()
    except OSError:
        pytest.skip("no /proc/cpuinfo on this system")
    device_mod.cpu_bf16_instructions.cache_clear()
    found = device_mod.cpu_bf16_instructions()
    if "amx_bf16" in flags:
        assert found == "AMX"
    elif "avx512_bf16" in flags:
        assert found == "AVX512-BF16"
    elif " bf16" not in flags:
        assert found is None


def _step_dtypes(model, batch, device, dtype):
    recorder = DtypeRecorder()
    model.to(device)
    with recorder:
        with torch.autocast(device.type, dtype=dtype):
            loss, _ = batch_loss(model, batch.to(device))
        loss.backward()
    return loss, recorder.seen


MATMULS = {"mm", "addmm", "bmm", "_cudnn_rnn", "_thnn_fused_gru_cell", "linear"}


@pytest.mark.parametrize("device", [
    pytest.param(CPU, id="cpu"),
    pytest.param(torch.device("cuda"), id="cuda", marks=[pytest.mark.cuda, needs_cuda]),
])
@pytest.mark.parametrize("model_cfg", [TINY_MODEL, ATTN_MODEL], ids=["gru", "attention"])
def test_gru_attention_and_projection_agree_under_bf16(tiny_data, device, model_cfg):
    """Every matrix product of a bf16 step runs in bf16 (no silent fp16); the loss and the
    softmax stay float32."""
    from seq2seq_lib import build_model

    _, data = tiny_data
    model = build_model(model_cfg, len(data.src_vocab), len(data.trg_vocab))
    batch = collate([data.train[i] for i in range(6)])
    loss, seen = _step_dtypes(model, batch, device, torch.bfloat16)
    assert loss.dtype == torch.float32
    assert not any(torch.float16 in dtypes for dtypes in seen.values()), seen
    products = {op: dtypes for op, dtypes in seen.items() if op in MATMULS}
    assert products and all(dtypes == {torch.bfloat16} for dtypes in products.values()), products
    if "_softmax" in seen:
        assert seen["_softmax"] == {torch.float32}


def test_the_fp16_gradient_scaler_is_saved_and_restored(tiny_data, tmp_path, monkeypatch):
    """One scaler for the whole run, written with the checkpoint and loaded on resume. (fp16
    autocast runs on this CPU for the test; real runs use it on CUDA GPUs only.)"""
    import seq2seq_lib.trainer.loop as trainer_mod

    monkeypatch.setattr(trainer_mod, "resolve_precision",
                        lambda requested, device: PrecisionChoice("fp16", "test"))
    created = []
    real_scaler = torch.amp.GradScaler

    def counting_scaler(*args, **kwargs):
        created.append(real_scaler(*args, **kwargs))
        return created[-1]

    monkeypatch.setattr(torch.amp, "GradScaler", counting_scaler)
    data_cfg, data = tiny_data
    path = tmp_path / "fp16.pt"
    _, first, *_ = train_tiny(data_cfg, data, epochs=3, checkpoint_path=path)
    assert len(created) == 1  # not one per epoch
    saved = load_checkpoint(path)["scaler_state"]
    assert saved["scale"] > 0 and saved["_growth_tracker"] >= 0
    _, resumed, *_ = train_tiny(data_cfg, data, epochs=4, checkpoint_path=path, resume_from=path)
    assert len(created) == 2
    # the resumed scaler started from the saved state (same scale, unless it grew/shrank since)
    assert created[1].get_scale() in (saved["scale"], saved["scale"] * 2, saved["scale"] / 2)
    assert [int(r["epoch"]) for r in resumed.history] == [1, 2, 3, 4]


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_mixed_precision_trains_like_fp32(tiny_data, precision):
    """A few epochs on the GPU in each precision end near the fp32 run's losses."""
    from seq2seq_lib.device import cuda_bf16_native

    if precision == "bf16" and not cuda_bf16_native(torch.device("cuda")):
        pytest.skip("this GPU has no native bf16")
    data_cfg, data = tiny_data
    losses = {}
    for name in ("fp32", precision):
        model, train_loader, valid_loader, cfg, info = tiny_setup(data_cfg, data, epochs=8)
        cfg.device, cfg.precision = "cuda", name
        result = fit(model, train_loader, valid_loader, cfg, info, progress=False)
        assert result.precision == name
        losses[name] = [r["train_loss"] for r in result.history]
    assert losses[precision][-1] < losses[precision][0] * 0.7  # it learns
    for a, b in zip(losses["fp32"], losses[precision]):
        assert math.isclose(a, b, rel_tol=0.1), losses


class OpInputs(TorchDispatchMode):
    """The floating dtypes each operator received (its tensor arguments)."""

    def __init__(self):
        super().__init__()
        self.seen: dict[str, set[torch.dtype]] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        for t in tree_flatten((args, kwargs or {}))[0]:
            if isinstance(t, torch.Tensor) and t.is_floating_point():
                self.seen.setdefault(func.overloadpacket.__name__, set()).add(t.dtype)
        return func(*args, **(kwargs or {}))


def _record_inside_grus(model: torch.nn.Module) -> tuple[OpInputs, list[set[torch.dtype]]]:
    """A recorder of every operator inside the model's ``nn.GRU`` calls, and for each call the
    dtypes of the tensors it was given and gave back."""
    recorder, calls = OpInputs(), []

    def tensors_dtypes(value) -> set[torch.dtype]:
        flat = tree_flatten(value)[0]
        flat += [x.data for x in flat if isinstance(x, torch.nn.utils.rnn.PackedSequence)]
        return {x.dtype for x in flat if isinstance(x, torch.Tensor) and x.is_floating_point()}

    def enter(module, args):
        calls.append(tensors_dtypes(args))
        recorder.__enter__()

    def leave(module, args, output):
        recorder.__exit__(None, None, None)
        calls[-1] |= tensors_dtypes(output)

    for module in model.modules():
        if isinstance(module, torch.nn.GRU):
            module.register_forward_pre_hook(enter)
            module.register_forward_hook(leave)
    return recorder, calls


BIDI_ATTN_MODEL = ModelConfig(emb_dim=16, hid_dim=24, n_layers=2, dropout=0.1, bidirectional=True,
                              attention="general")


@pytest.mark.parametrize("model_cfg", [TINY_MODEL, ATTN_MODEL, BIDI_ATTN_MODEL],
                         ids=["gru", "attention", "bidirectional-2-layers"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_every_gru_runs_in_the_autocast_dtype_and_never_in_another(tiny_data, model_cfg, dtype,
                                                                   monkeypatch):
    """The path CUDA and MPS take, run here on the CPU: under bf16 autocast every GRU (encoder
    over packed rows, fused decoder, step-by-step decoder, greedy decoding) gets inputs, state
    and weights in bf16 and computes in bf16 only, never fp16 (CUDA's cuDNN autocast would pick
    fp16) nor float32. Under fp16 autocast (runs with a gradient scaler) the GRUs run in fp16."""
    from seq2seq_lib import build_model, recurrent

    monkeypatch.setattr(recurrent, "EXPLICIT_DEVICES", frozenset({"cpu"}))
    _, data = tiny_data
    model = build_model(model_cfg, len(data.src_vocab), len(data.trg_vocab))
    batch = collate([data.train[i] for i in range(6)])
    recorder, calls = _record_inside_grus(model)
    with torch.autocast("cpu", dtype=dtype):
        loss, _ = batch_loss(model, batch)  # fused decoder
        batch_loss(model, batch, teacher_forcing_ratio=0.0)  # one decoder step at a time
        greedy_decode(model, batch.src, batch.src_lens, max_len=4)
    loss.backward()
    assert len(calls) > 10 and all(call == {dtype} for call in calls), calls
    computed = {op: dtypes for op, dtypes in recorder.seen.items() if op != "_to_copy"}
    assert computed and all(dtypes == {dtype} for dtypes in computed.values()), computed
    assert all(p.dtype == torch.float32 and p.grad is not None and p.grad.dtype == torch.float32
               for p in model.parameters() if p.requires_grad)


def test_gpus_take_the_explicit_dtype_and_the_cpu_leaves_the_gru_to_autocast():
    """cuDNN's autocast wrapper would run a bf16 GRU in fp16: on CUDA (and MPS) the GRU runs in
    the autocast dtype itself; on the CPU autocast's own handling is kept (see the next test)."""
    from seq2seq_lib.recurrent import explicit_dtype

    for device in ("cuda", "mps"):
        assert explicit_dtype(device, torch.bfloat16) == torch.bfloat16
        assert explicit_dtype(device, torch.float16) == torch.float16
        assert explicit_dtype(device, None) is None
    assert explicit_dtype("cpu", torch.bfloat16) is None


@pytest.mark.parametrize("model_cfg", [TINY_MODEL, BIDI_ATTN_MODEL], ids=["gru", "bidirectional"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_on_the_cpu_every_gru_product_runs_in_the_autocast_dtype(tiny_data, model_cfg, dtype):
    """On the CPU autocast computes a GRU's matrix products in its own dtype (never the other
    half-precision one), keeping the state in float32."""
    from seq2seq_lib import build_model

    _, data = tiny_data
    model = build_model(model_cfg, len(data.src_vocab), len(data.trg_vocab))
    batch = collate([data.train[i] for i in range(6)])
    recorder, calls = _record_inside_grus(model)
    with torch.autocast("cpu", dtype=dtype):
        loss, _ = batch_loss(model, batch)
        greedy_decode(model, batch.src, batch.src_lens, max_len=4)
    loss.backward()
    other = torch.float16 if dtype == torch.bfloat16 else torch.bfloat16
    products = {op: recorder.seen[op] for op in ("addmm", "mm", "linear") if op in recorder.seen}
    assert products and all(dtype in d and other not in d for d in products.values()), products
    assert all(other not in d for d in recorder.seen.values()), recorder.seen


@pytest.mark.parametrize("model_cfg", [TINY_MODEL, BIDI_ATTN_MODEL], ids=["gru", "bidirectional"])
def test_fp32_results_are_bit_identical_to_plain_gru_calls(tiny_data, model_cfg):
    """Outside autocast the GRUs are the plain ``nn.GRU`` calls: same numbers, bit for bit."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from seq2seq_lib import build_model

    _, data = tiny_data
    torch.manual_seed(0)
    model = build_model(model_cfg, len(data.src_vocab), len(data.trg_vocab)).eval()
    batch = collate([data.train[i] for i in range(6)])
    enc = model.encode(batch.src, batch.src_lens)
    embedded = model.encoder.embedding(batch.src)
    packed = pack_padded_sequence(embedded, batch.src_lens, enforce_sorted=False)
    plain_out, plain_hidden = model.encoder.rnn(packed)
    assert torch.equal(enc.outputs, pad_packed_sequence(plain_out, total_length=len(batch.src))[0])
    if model.encoder.bridge is None:
        assert torch.equal(enc.hidden, plain_hidden)
    states, hidden, _ = model.decoder(batch.trg[:-1], enc.hidden, enc)
    plain_states, plain_hidden = model.decoder.rnn(model.decoder.embedding(batch.trg[:-1]),
                                                   enc.hidden)
    assert torch.equal(hidden, plain_hidden)
    if not model.decoder.has_attention:
        assert torch.equal(states, plain_states)
