"""Exercises that check themselves: one ``check_…`` function per notebook, and the answers.

Each checker runs the learner's function and the library's reference on a few small, nasty
cases (padding, a sentence of length 1, ties, an empty vocabulary) and prints, in Chinese, the
first case that fails with what was expected and what came back, or one short line when all
pass. It returns True or False and never raises: a function that still raises
``NotImplementedError`` (the unsolved exercise as the notebooks show it) gets a hint, any other
error is reported with its type and message.

A notebook's exercise cell defines one function (``my_build_vocab``, ...; see
:data:`EXERCISES`) and the next cell calls the checker: ``check_build_vocab(my_build_vocab)``.
:func:`stub_source` gives the unsolved cell, :func:`answer_source` a self-contained reference
solution with the same function name, so a test can swap one for the other and expect a pass.
The checkers save and restore PyTorch's random state, so running one changes nothing later.
"""

from __future__ import annotations

import ast
import inspect
import math
import re
import textwrap
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from sacrebleu.metrics import BLEU
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from .attention import masked_softmax
from .decode import greedy_decode
from .models import Encoded, Encoder
from .vocab import Vocab

__all__ = [
    "EXERCISES", "Exercise", "answer_source", "bleu_counts", "bleu_from_counts", "bleu_from_scratch",
    "brevity_penalty", "check_beam_step",
    "check_bleu", "check_build_vocab", "check_greedy_decode", "check_gru_step",
    "check_masked_loss", "check_masked_softmax", "check_pad_batch", "exercise_for_cell",
    "get_exercise", "sacrebleu_on_tokens", "stub_source",
]

# ---------------------------------------------------------------------------------------------
# The machinery: cases, comparison, messages
# ---------------------------------------------------------------------------------------------


@dataclass
class _Case:
    """One check: its Chinese name, how to call a solution on fresh inputs, and what it tests."""

    name: str
    run: Callable[[Callable], Any]  # run(fn) calls fn on fresh copies of the inputs
    inputs: str  # the inputs, compactly, for the failure message
    point: str = ""  # the rule the case is about, shown when it fails
    expect: Callable[[], Any] | None = None  # the expected value, when not run(reference)
    extra: Callable[[Any], str | None] | None = None  # a further check on the learner's result


def _fresh(value: Any) -> Any:
    """A copy the learner may modify in place without changing the next run's inputs."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone().requires_grad_(value.requires_grad)
    if isinstance(value, list):
        return [_fresh(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_fresh(v) for v in value)
    return value


def _case(name: str, point: str, names: Sequence[str], args: Sequence[Any], **kw: Any) -> _Case:
    """A case that calls ``fn(*args)`` (on copies), showing the arguments by name."""
    shown = ", ".join(f"{n}={_fmt(a)}" for n, a in zip(names, args))
    return _Case(name, lambda fn: fn(*_fresh(tuple(args))), shown, point, **kw)


def _fmt(x: Any, limit: int = 260) -> str:
    """A compact, one-line view of a value: tensors with shape, dtype and (rounded) values."""
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu()
        if t.is_floating_point():
            t = t.double().round(decimals=4)
        if t.dim() == 0:
            text = f"tensor({t.item()})"
        else:
            body = t.tolist() if t.numel() <= 24 else str(t.flatten()[:6].tolist())[:-1] + ", …]"
            text = f"tensor{list(t.shape)} {str(x.dtype).replace('torch.', '')} {body}"
    elif isinstance(x, float):
        text = repr(round(x, 4))
    elif isinstance(x, tuple):
        text = "(" + ", ".join(_fmt(v, limit) for v in x) + ")"
    elif isinstance(x, list) and any(isinstance(v, torch.Tensor) for v in x):
        text = "[" + ", ".join(_fmt(v, limit) for v in x) + "]"
    else:
        text = repr(x)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _compare(expected: Any, got: Any, atol: float = 1e-5) -> str | None:
    """None when ``got`` matches ``expected``, otherwise what differs, in Chinese."""
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"应返回 torch.Tensor，得到的是 {type(got).__name__}"
        if tuple(got.shape) != tuple(expected.shape):
            return f"形状应为 {list(expected.shape)}，得到 {list(got.shape)}"
        e, g = expected.detach().cpu(), got.detach().cpu()
        if e.is_floating_point():
            if not g.is_floating_point():
                return f"应是浮点张量，得到 {g.dtype}"
            e, g = e.double(), g.double()
            if bool(g.isnan().any()) and not bool(e.isnan().any()):
                return "结果里有 nan"
            if torch.allclose(g, e, rtol=0.0, atol=atol, equal_nan=True):
                return None
            wrong = ~torch.isclose(g, e, rtol=0.0, atol=atol, equal_nan=True)
            gap = float((g - e)[wrong].abs().max())
            return f"有 {int(wrong.sum())} 个位置不同，最大相差 {gap:.3g}"
        if g.dtype != e.dtype:
            return f"dtype 应为 {e.dtype}，得到 {g.dtype}"
        return None if torch.equal(g, e) else f"有 {int((g != e).sum())} 个位置的值不同"
    if isinstance(expected, tuple):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            return f"应返回 {len(expected)} 个值（一个 tuple），得到 {_fmt(got, 60)}"
        for i, (e, g) in enumerate(zip(expected, got), 1):
            problem = _compare(e, g, atol)
            if problem:
                return f"第 {i} 个返回值：{problem}"
        return None
    if isinstance(expected, float):
        try:
            value = float(got)
        except (TypeError, ValueError):
            return f"应返回一个数，得到的是 {type(got).__name__}"
        if math.isnan(value) or abs(value - expected) > atol:
            return f"数值不同（允许的误差是 {atol:g}）"
        return None
    if isinstance(expected, list):
        if not isinstance(got, (list, tuple)):
            return f"应返回一个 list，得到的是 {type(got).__name__}"
        return None if list(got) == expected else "结果不同"
    return None if got == expected else "结果不同"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    message = message if len(message) <= 200 else message[:199] + "…"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _report(index: int, total: int, case: _Case, problem: str, lines: Sequence[str] = ()) -> None:
    out = [f"✗ 用例 {index}/{total}「{case.name}」没有通过：{problem}", f"  输入：{case.inputs}"]
    out += [f"  {line}" for line in lines]
    if case.point:
        out.append(f"  要点：{case.point}")
    print("\n".join(out))


def _check(fn: Callable, hint: str, make_cases: Callable[[], list[_Case]],
           reference: Callable | None = None, atol: float = 1e-5) -> bool:
    """Run ``fn`` case by case against ``reference``; print the first failure or one ✓ line."""
    name = getattr(fn, "__name__", "你的函数")
    if not callable(fn):
        print(f"✗ 检查需要一个函数，得到的是 {type(fn).__name__}")
        return False
    with torch.random.fork_rng(devices=[]):  # the learner's random state stays as it was
        torch.manual_seed(0)
        cases = make_cases()
        for i, case in enumerate(cases, 1):
            expected = case.expect() if case.expect else case.run(reference)
            try:
                got = case.run(fn)
            except NotImplementedError:
                print(f"✗ {name} 还没有实现（它抛出了 NotImplementedError）。\n  要做的：{hint}")
                return False
            except Exception as exc:  # the learner's bug, reported without a traceback
                _report(i, len(cases), case, f"运行时出错 {_one_line(exc)}")
                return False
            try:
                problem = _compare(expected, got, atol) or (case.extra(got) if case.extra else None)
            except Exception as exc:
                problem = f"返回值无法检查（{_one_line(exc)}）"
            if problem:
                _report(i, len(cases), case, problem, [f"期望：{_fmt(expected)}", f"得到：{_fmt(got)}"])
                return False
    print(f"✓ 全部 {len(cases)} 个用例通过")
    return True


# ---------------------------------------------------------------------------------------------
# 02 · build a vocabulary
# ---------------------------------------------------------------------------------------------


def answer_build_vocab(tokenized: list[list[str]], min_freq: int = 1,
                       max_size: int | None = None) -> list[str]:
    """The vocabulary as a token list (``itos``): the four specials first, then the kept tokens.

    :param tokenized: the training sentences, each a list of tokens.
    :param min_freq: keep a token only if it occurs at least this often.
    :param max_size: the most entries in the list, the four specials included (None: no limit).
    :return: ``["<unk>", "<pad>", "<sos>", "<eos>", most frequent token, ...]``; tokens with the
        same frequency are in alphabetical (Python string) order; a special token found in the
        data is not listed twice.
    """
    specials = ["<unk>", "<pad>", "<sos>", "<eos>"]
    counts = Counter(tok for sent in tokenized for tok in sent if tok not in specials)
    kept = [tok for tok, freq in counts.items() if freq >= min_freq]
    kept.sort(key=lambda tok: (-counts[tok], tok))  # most frequent first, ties alphabetical
    if max_size is not None:
        kept = kept[: max_size - len(specials)]  # max_size counts the specials too
    return specials + kept


def _build_vocab_cases() -> list[_Case]:
    names = ("tokenized", "min_freq", "max_size")
    freq = [["x", "x", "y", "z"], ["x", "y", "z", "w"], ["x", "y"], ["x"]]  # x 4, y 3, z 2, w 1
    return [
        _case("基本情况：频次各不相同", "按频次从高到低排列，前面是 4 个特殊符号。", names,
              ([["我", "爱", "你"], ["我", "爱"], ["我"]], 1, None)),
        _case("min_freq=2：只出现一次的词被去掉", "出现次数 < min_freq 的词不进词表。", names,
              ([["the", "cat", "sat"], ["the", "cat"], ["the", "dog"]], 2, None)),
        _case("频次相同时按字母序排列", "同频的词按字符串顺序（sorted）排列，和 Vocab.build "
              "一样；Counter.most_common 按第一次出现的顺序，不符合要求。", names,
              ([["b", "c", "a"], ["c", "a", "b"], ["d"]], 1, None)),
        _case("max_size 包含 4 个特殊符号", "max_size=6 时只剩 2 个普通词的位置。", names,
              (freq, 1, 6)),
        _case("max_size 在同频的词中间截断", "先按（频次，字母序）排好，再截断。", names,
              ([["dog", "cat", "bird"], ["dog", "cat", "bird"]], 1, 5)),
        _case("数据里出现了特殊符号", "<unk> <eos> 等已经在最前面，不能再出现一次。", names,
              ([["<unk>", "hello"], ["<eos>", "hello", "<pad>"]], 1, None)),
        _case("min_freq 比所有词的频次都大：只剩特殊符号", "没有词够频次时，词表就是 4 个特殊符号。",
              names, (freq, 5, None)),
        _case("空语料", "没有句子时，词表就是 4 个特殊符号。", names, ([], 1, None)),
        _case("max_size=4：只剩特殊符号", "4 个位置全被特殊符号占了。", names, (freq, 2, 4)),
    ]


def check_build_vocab(fn: Callable) -> bool:
    """Check ``fn(tokenized, min_freq, max_size) -> list[str]`` against :meth:`Vocab.build`."""
    hint = ("统计词频（跳过 4 个特殊符号），保留出现次数 ≥ min_freq 的词，按频次从高到低、同频按"
            "字母序排序，截到 max_size（含特殊符号），最前面放 <unk> <pad> <sos> <eos>。")
    return _check(fn, hint, _build_vocab_cases,
                  lambda tokenized, min_freq, max_size: Vocab.build(tokenized, min_freq, max_size).itos)


# ---------------------------------------------------------------------------------------------
# 03 · pad a batch and build its mask
# ---------------------------------------------------------------------------------------------


def answer_pad_batch(seqs: list[torch.Tensor], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad 1-D id tensors into one time-major batch and mark where the real tokens are.

    :param seqs: one 1-D id tensor per sentence; the lengths may differ.
    :param pad_id: the id written into the empty positions.
    :return: ``padded`` [max_len, batch] (the dtype of the inputs) and ``mask`` [max_len, batch]
        (bool, True at real tokens, False at padding); column b holds sentence b.
    """
    max_len, batch = max(len(s) for s in seqs), len(seqs)
    padded = torch.full((max_len, batch), pad_id, dtype=seqs[0].dtype)  # [max_len, batch]
    mask = torch.zeros(max_len, batch, dtype=torch.bool)  # [max_len, batch]
    for b, s in enumerate(seqs):
        padded[: len(s), b] = s  # sentence b goes down column b
        mask[: len(s), b] = True
    return padded, mask


def _reference_pad_batch(seqs: list[torch.Tensor], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    padded = pad_sequence(seqs, padding_value=pad_id)  # [max_len, batch], as collate does
    lens = torch.tensor([len(s) for s in seqs])  # [batch]
    return padded, torch.arange(padded.shape[0]).unsqueeze(1) < lens  # mask: [max_len, batch]


def _pad_batch_cases() -> list[_Case]:
    def ids(*rows: list[int]) -> list[torch.Tensor]:
        return [torch.tensor(r) for r in rows]

    names = ("seqs", "pad_id")
    return [
        _case("三句长度不同，最长的在最后", "max_len 是最长一句的长度，不是第一句的。", names,
              (ids([2, 5, 6, 3], [2, 7, 3], [2, 8, 9, 10, 4, 3]), 1)),
        _case("有一句只有一个词", "长度 1 的句子只占第一行，其余是 pad_id，mask 为 False。", names,
              (ids([2, 5, 6, 3], [7], [2, 8, 3]), 1)),
        _case("所有句子一样长（不需要补齐）", "没有补齐时 mask 全是 True。", names,
              (ids([2, 5, 3], [2, 6, 3], [2, 7, 3], [2, 8, 3]), 1)),
        _case("批次里只有一句", "形状是 [len, 1]，时间在第一维。", names, (ids([2, 5, 6, 7, 3]), 1)),
        _case("pad_id 不是 1（用 0 补齐）", "补齐用参数 pad_id，不要写死成 1。", names,
              (ids([2, 5, 3], [2, 6, 7, 8, 3]), 0)),
        _case("每句都只有一个词", "max_len = 1：形状 [1, batch]。", names, (ids([5], [6], [7]), 1)),
    ]


def check_pad_batch(fn: Callable) -> bool:
    """Check ``fn(seqs, pad_id) -> (padded [max_len, batch], mask [max_len, batch])``."""
    hint = ("建一个 [max_len, batch] 的张量，先全部填 pad_id，再把第 b 句写进第 b 列；"
            "mask 形状相同（bool），真实词的位置为 True。")
    return _check(fn, hint, _pad_batch_cases, _reference_pad_batch)


# ---------------------------------------------------------------------------------------------
# 04 · one GRU step by hand
# ---------------------------------------------------------------------------------------------


def answer_gru_step(x: torch.Tensor, h: torch.Tensor, weight_ih: torch.Tensor,
                    weight_hh: torch.Tensor, bias_ih: torch.Tensor,
                    bias_hh: torch.Tensor) -> torch.Tensor:
    """One GRU step written out; the weights are an ``nn.GRU``'s (or ``nn.GRUCell``'s).

    :param x: [batch, input_dim] the input at this step; :param h: [batch, hid_dim] the state.
    :param weight_ih: [3 * hid_dim, input_dim]; :param weight_hh: [3 * hid_dim, hid_dim];
    :param bias_ih: [3 * hid_dim]; :param bias_hh: [3 * hid_dim]. PyTorch stacks the three
        blocks in the order reset (r), update (z), new (n).
    :return: the new state [batch, hid_dim].
    """
    gi = x @ weight_ih.T + bias_ih  # [batch, 3 * hid_dim]
    gh = h @ weight_hh.T + bias_hh  # [batch, 3 * hid_dim]
    i_r, i_z, i_n = gi.chunk(3, dim=1)  # each [batch, hid_dim]
    h_r, h_z, h_n = gh.chunk(3, dim=1)
    r = torch.sigmoid(i_r + h_r)  # reset gate: how much of the old state the candidate sees
    z = torch.sigmoid(i_z + h_z)  # update gate: how much of the old state is kept
    n = torch.tanh(i_n + r * h_n)  # candidate state; r scales W_hn h + b_hn, bias included
    return (1 - z) * n + z * h  # [batch, hid_dim]


def _torch_gru_step(x: torch.Tensor, h: torch.Tensor, weight_ih: torch.Tensor,
                    weight_hh: torch.Tensor, bias_ih: torch.Tensor,
                    bias_hh: torch.Tensor) -> torch.Tensor:
    """The same step computed by ``nn.GRUCell`` with these weights (the reference)."""
    cell = nn.GRUCell(x.shape[1], h.shape[1])
    with torch.no_grad():
        for param, value in zip((cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh),
                                (weight_ih, weight_hh, bias_ih, bias_hh)):
            param.copy_(value)
        return cell(x, h)


def _gru_weights(input_dim: int, hid_dim: int, bias_scale: float = 0.5) -> tuple[torch.Tensor, ...]:
    scale = hid_dim ** -0.5
    weights = (torch.randn(3 * hid_dim, input_dim) * scale, torch.randn(3 * hid_dim, hid_dim) * scale)
    if bias_scale == 0.0:
        return (*weights, torch.zeros(3 * hid_dim), torch.zeros(3 * hid_dim))
    return (*weights, torch.randn(3 * hid_dim) * bias_scale, torch.randn(3 * hid_dim) * bias_scale)


def _gru_step_cases() -> list[_Case]:
    names = ("x", "h", "weight_ih", "weight_hh", "bias_ih", "bias_hh")
    cases = [
        _case("第一步：零初始状态，批次 1，偏置为 0", "h' = (1 − z) ⊙ n + z ⊙ h，h = 0 时只剩 "
              "(1 − z) ⊙ n；权重里门的顺序是 r、z、n。", names,
              (torch.randn(1, 3), torch.zeros(1, 4), *_gru_weights(3, 4, bias_scale=0.0))),
        _case("非零状态，批次 3，偏置为 0", "门的顺序是 r、z、n：chunk(3) 的第一块是重置门 r。",
              names, (torch.randn(3, 3), torch.randn(3, 4), *_gru_weights(3, 4, bias_scale=0.0))),
        _case("偏置较大", "n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))：r 也乘在 b_hn 上。",
              names, (torch.randn(2, 3), torch.randn(2, 4), *_gru_weights(3, 4, bias_scale=2.0))),
        _case("隐藏维度为 1", "形状照常：h 是 [batch, 1]。", names,
              (torch.randn(2, 2), torch.randn(2, 1), *_gru_weights(2, 1))),
    ]
    # the course's own Encoder: one step of its GRU (layer 0) on two embedded words
    encoder = Encoder(vocab_size=10, emb_dim=5, hid_dim=6, n_layers=1, dropout=0.0)
    rnn = encoder.rnn
    with torch.no_grad():
        x = encoder.embedding(torch.tensor([2, 7]))  # [batch=2, emb_dim]
        h = torch.randn(2, 6)
        after = rnn(x.unsqueeze(0), h.unsqueeze(0))[1][0]  # [batch, hid_dim]
    weights = tuple(p.detach().clone() for p in
                    (rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0))
    cases.append(_case("课程 Encoder 的 GRU（第 0 层）走一步", "和 encoder.rnn 的结果一致。",
                       names, (x, h, *weights), expect=lambda: after))
    # four steps in a row, fed back, equal nn.GRU over the whole sequence
    gru = nn.GRU(3, 4)
    seq, h0 = torch.randn(4, 2, 3), torch.randn(2, 4)  # seq: [steps, batch, input_dim]
    with torch.no_grad():
        last = gru(seq, h0.unsqueeze(0))[1][0]  # [batch, hid_dim]
    weights = tuple(p.detach().clone() for p in gru.parameters())  # w_ih, w_hh, b_ih, b_hh

    def four_steps(fn: Callable) -> torch.Tensor:
        h = h0.clone()
        for t in range(seq.shape[0]):
            h = fn(seq[t].clone(), h, *_fresh(weights))
        return h

    cases.append(_Case("连续 4 步（把新状态喂回去）", four_steps,
                       f"x 依次为 seq[0..3]，seq={_fmt(seq)}，h0={_fmt(h0)}",
                       "逐步调用 4 次的结果等于 nn.GRU 跑完整个序列的最终状态。",
                       expect=lambda: last))
    return cases


def check_gru_step(fn: Callable) -> bool:
    """Check ``fn(x, h, weight_ih, weight_hh, bias_ih, bias_hh) -> h_new`` against PyTorch.

    Why one GRU step rather than the encoder's forward: notebook 04 shows the ``Encoder``'s own
    source beside the shapes, and its ``forward`` is plumbing (embedding, packing) a learner
    would copy from the cell above. What neither the notebook nor the library writes out is the
    recurrence itself, hidden inside ``nn.GRU``: the reset and update gates and the candidate
    state. Writing one step from the GRU's own weights and matching PyTorch to 1e-5 shows what
    the context vector is made of, and PyTorch's gate order (r, z, n) in the weight matrices is
    a real trap when reading or porting weights. One case uses the course's ``Encoder`` itself.
    """
    hint = ("把 weight_ih、weight_hh 和两个偏置按 r、z、n 的顺序各切成三块（chunk(3)）："
            "r = σ(W_ir x + b_ir + W_hr h + b_hr)，z = σ(…)，n = tanh(W_in x + b_in + "
            "r ⊙ (W_hn h + b_hn))，h' = (1 − z) ⊙ n + z ⊙ h。")
    return _check(fn, hint, _gru_step_cases, _torch_gru_step)


# ---------------------------------------------------------------------------------------------
# 05 · the masked loss
# ---------------------------------------------------------------------------------------------


def answer_masked_loss(logits: torch.Tensor, trg: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Mean cross-entropy over the real (non-pad) target tokens.

    :param logits: [trg_len - 1, batch, vocab]; row t is the prediction for ``trg[t + 1]``.
    :param trg: [trg_len, batch], starting with ``<sos>``, padded with ``pad_id``.
    :return: a 0-dim tensor that ``.backward()`` can start from (the same value as
        ``nn.functional.cross_entropy(logits.flatten(0, 1), trg[1:].flatten(),
        ignore_index=pad_id)``).
    """
    target = trg[1:]  # [trg_len - 1, batch]: the word each row of logits should predict
    log_probs = logits.log_softmax(dim=-1)  # [trg_len - 1, batch, vocab], numerically stable
    nll = -log_probs.gather(-1, target.unsqueeze(-1)).squeeze(-1)  # [trg_len - 1, batch]
    mask = target != pad_id  # [trg_len - 1, batch], True at real words
    return nll[mask].mean()  # mean over real words, not over sentences


def _reference_masked_loss(logits: torch.Tensor, trg: torch.Tensor, pad_id: int) -> torch.Tensor:
    """The library's loss (``train.batch_loss``): cross-entropy against ``trg[1:]``, pad ignored."""
    return nn.functional.cross_entropy(logits.flatten(0, 1).float(), trg[1:].flatten(),
                                       ignore_index=pad_id)


def _loss_extra(got: torch.Tensor) -> str | None:
    if got.dim() != 0:
        return f"应返回 0 维张量（一个数），得到形状 {list(got.shape)}"
    if not got.requires_grad:
        return "返回值断开了计算图（不要用 .item()、float() 或 torch.tensor(...)），无法 backward()"
    return None


def _masked_loss_cases() -> list[_Case]:
    def case(name: str, point: str, trg: list[list[int]], vocab: int = 8, pad_id: int = 1,
             scale: float = 1.0) -> _Case:
        trg_t = torch.tensor(trg)  # [trg_len, batch]
        logits = (torch.randn(trg_t.shape[0] - 1, trg_t.shape[1], vocab) * scale).requires_grad_()
        return _case(name, point, ("logits", "trg", "pad_id"), (logits, trg_t, pad_id),
                     extra=_loss_extra)

    return [
        case("没有补齐，批次 1", "logits 的第 t 行预测 trg[t + 1]：目标是 trg[1:]。",
             [[2], [5], [6], [3]]),
        case("第二句较短，有补齐", "目标是 pad_id 的位置不算进损失；分母是真实词的个数。",
             [[2, 2], [5, 7], [6, 3], [4, 1], [3, 1]]),
        case("两句长短差很多：按词平均", "平均的分母是真实词的个数，不是先对每句求平均再平均。",
             [[2, 2], [5, 3], [6, 1], [7, 1], [4, 1], [5, 1], [3, 1]]),
        case("最短的目标：只有 <sos> <eos>（trg_len = 2）", "logits 只有一行，对应 <eos>。",
             [[2, 2, 2], [3, 3, 3]]),
        case("目标里有 <unk>（id 0）", "<unk> 是真实的词，要算进损失；只有 pad_id 不算。",
             [[2, 2], [0, 5], [3, 0], [1, 3]]),
        case("logits 很大（数值稳定性）", "log(softmax(x)) 会下溢成 log(0) = -inf；用 log_softmax。",
             [[2, 2], [5, 6], [3, 3]], scale=200.0),
    ]


def check_masked_loss(fn: Callable) -> bool:
    """Check ``fn(logits [trg_len-1, batch, vocab], trg [trg_len, batch], pad_id) -> loss``.

    The reference is the library's loss: mean cross-entropy against ``trg[1:]`` over the
    non-pad positions. The lesson's bug scored the rows one step too far (against ``trg[t+2]``).
    """
    hint = ("logits 的第 t 行预测 trg[t + 1]，所以目标是 trg[1:]；对每个位置取正确词的 −log 概率"
            "（用 log_softmax），只在目标不等于 pad_id 的位置上求平均，返回 0 维张量。")
    return _check(fn, hint, _masked_loss_cases, _reference_masked_loss, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# 06 · the greedy loop
# ---------------------------------------------------------------------------------------------


class _ScriptedDecoder(nn.Module):
    """A decoder that says sentence b's script word by word, as long as it is fed its own words.

    The hidden state [1, batch, 2] holds (which script, which step). If the word fed in is not
    the script's previous word, the decoder answers ``<unk>``; in training mode ("dropout on") it
    picks the next id instead, so forgetting ``model.eval()`` changes the output.
    """

    has_attention = False

    def __init__(self, scripts: list[list[int]], vocab_size: int):
        super().__init__()
        self.scripts = scripts
        self.vocab_size = vocab_size

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor, enc: Encoded
                ) -> tuple[torch.Tensor, torch.Tensor, None]:
        if inputs.dim() != 2 or inputs.shape[0] != 1:  # what the learner sees: in Chinese
            raise ValueError(f"每一步解码器的输入应是 [1, batch]（inp.unsqueeze(0)），"
                             f"得到的形状是 {list(inputs.shape)}")
        logits = torch.zeros(inputs.shape[1], self.vocab_size)  # [batch, vocab]
        for b, fed in enumerate(inputs[0].tolist()):
            row, step = (int(v) for v in hidden[0, b])
            script = self.scripts[row]
            previous = Vocab.sos_id if step == 0 else script[min(step, len(script)) - 1]
            word = script[step] if step < len(script) else Vocab.eos_id
            word = word if fed == previous else Vocab.unk_id
            if self.training:
                word = (word + 1) % self.vocab_size
            logits[b, word] = 4.0
            logits[b, (word + 2) % self.vocab_size] = 1.0  # a runner-up, as real models have
        return logits.unsqueeze(0), hidden + torch.tensor([0.0, 1.0]), None

    def project(self, states: torch.Tensor) -> torch.Tensor:
        return states  # the states already are logits


class _ScriptedModel(nn.Module):
    """A stand-in for :class:`~seq2seq_lib.models.Seq2Seq`: ``src[0, b]`` picks sentence b's
    script; the same ``encode`` / ``decoder`` / ``decoder.project`` interface."""

    def __init__(self, scripts: list[list[int]], vocab_size: int = 12):
        super().__init__()
        self.decoder = _ScriptedDecoder(scripts, vocab_size)

    def encode(self, src: torch.Tensor, src_lens: torch.Tensor) -> Encoded:
        batch = src.shape[1]
        hidden = torch.stack([src[0].float(), torch.zeros(batch)], dim=-1).unsqueeze(0)
        return Encoded(torch.zeros(src.shape[0], batch, 2), hidden, (src != Vocab.pad_id).t())


def answer_greedy_decode(model: nn.Module, src: torch.Tensor, src_lens: torch.Tensor,
                         max_len: int = 50, sos_id: int = 2, eos_id: int = 3) -> list[list[int]]:
    """Greedy decoding of a batch: at every step, feed back the most probable word.

    :param model: a ``Seq2Seq`` (``encode``, ``decoder``, ``decoder.project``).
    :param src: [src_len, batch]; :param src_lens: [batch].
    :param max_len: the most output words per sentence (``<eos>`` not counted).
    :return: per sentence, the chosen ids without ``<sos>`` and ``<eos>``.
    """
    model.eval()  # dropout off while decoding
    batch = src.shape[1]
    with torch.no_grad():
        enc = model.encode(src, src_lens)
        hidden = enc.hidden  # [n_layers, batch, hid_dim]
        inp = torch.full((batch,), sos_id, dtype=torch.long, device=src.device)  # [batch]
        outputs: list[list[int]] = [[] for _ in range(batch)]
        finished = [False] * batch
        for _ in range(max_len):
            state, hidden, _ = model.decoder(inp.unsqueeze(0), hidden, enc)  # [1, batch, hid]
            inp = model.decoder.project(state[0]).argmax(-1)  # [batch], fed back next step
            for b, word in enumerate(inp.tolist()):
                if word == eos_id:
                    finished[b] = True
                elif not finished[b]:  # words after a sentence's <eos> are not kept
                    outputs[b].append(word)
            if all(finished):
                break
    return outputs


def _reference_greedy(model: nn.Module, src: torch.Tensor, src_lens: torch.Tensor,
                      max_len: int, sos_id: int, eos_id: int) -> list[list[int]]:
    return [h.ids for h in greedy_decode(model, src, src_lens, max_len, sos_id, eos_id)]


def _id_lists(got: Any) -> list[list[int]] | Any:
    """The learner's result as lists of ints, when it is lists (or tensors) of ids."""
    try:
        return [[int(i) for i in sent] for sent in got]
    except (TypeError, ValueError):
        return got


def _greedy_cases() -> list[_Case]:
    def case(name: str, point: str, scripts: list[list[int]], max_len: int,
             training: bool = False) -> _Case:
        def run(fn: Callable) -> Any:
            model = _ScriptedModel(scripts)
            model.train(training)
            src = torch.tensor([list(range(len(scripts))), [3] * len(scripts)])  # [2, batch]
            lens = torch.full((len(scripts),), 2, dtype=torch.long)
            return _id_lists(fn(model, src, lens, max_len, Vocab.sos_id, Vocab.eos_id))

        shown = f"模型每句的脚本（<eos> = 3）：{scripts}，max_len={max_len}"
        return _Case(name, run, shown + ("，模型处于训练模式" if training else ""), point)

    three = [[5, 6, 3, 9, 9, 9], [3, 8, 8, 8], [7, 8, 9, 10, 3, 5]]
    return [
        case("一句话，第 4 步输出 <eos>", "<sos> 开始，每步把自己选的词喂回去；<eos> 不放进结果。",
             [[5, 6, 7, 3]], 10),
        case("三句话在不同的步结束（一句第 1 步就结束）", "每句在自己的 <eos> 处结束，之后模型"
             "再说什么都不要；全部结束才停。", three, 10),
        case("一直不输出 <eos>：到 max_len 截断", "最多 max_len 个词。",
             [[5, 6, 7, 8, 9, 10, 11, 4]], 4),
        case("max_len = 1", "每句最多 1 个词。", three, 1),
        case("模型处于训练模式", "解码前要 model.eval()，否则 dropout 开着，结果会变。", three, 10,
             training=True),
    ]


def check_greedy_decode(fn: Callable) -> bool:
    """Check ``fn(model, src, src_lens, max_len, sos_id, eos_id) -> list[list[int]]`` against
    :func:`~seq2seq_lib.decode.greedy_decode`, on a tiny scripted model whose sentences end at
    different steps (and which answers ``<unk>`` when it is not fed its own previous word)."""
    hint = ("先 model.eval()，再 enc = model.encode(src, src_lens)；从 <sos> 开始，每一步用 "
            "model.decoder(inp.unsqueeze(0), hidden, enc) 和 model.decoder.project(...) 得到 "
            "logits，取 argmax 喂回去；每句在自己的 <eos> 处结束，最多 max_len 个词。")
    return _check(fn, hint, _greedy_cases, _reference_greedy)


# ---------------------------------------------------------------------------------------------
# 06 · BLEU from scratch
# ---------------------------------------------------------------------------------------------


def bleu_from_scratch(hyps: list[list[str]], refs: list[list[str]]) -> float:
    """Corpus BLEU (0-100) of tokenized hypotheses, one reference each, without smoothing.

    ``BLEU = BP · exp((log p1 + log p2 + log p3 + log p4) / 4)``, where ``p_n`` is the clipped
    n-gram precision summed over the whole corpus (matches / hypothesis n-grams) and the brevity
    penalty ``BP = exp(1 - r / c)`` when the hypotheses' total length c is below the references'
    r (else 1). If some order has no match at all, BLEU is 0.
    """
    return bleu_from_counts(*bleu_counts(hyps, refs))


def bleu_counts(hyps: list[list[str]], refs: list[list[str]]
                ) -> tuple[list[int], list[int], int, int]:
    """What corpus BLEU is computed from: clipped n-gram matches and hypothesis n-grams for
    n = 1..4, summed over the corpus, and the total lengths c (hypotheses) and r (references)."""
    matches, totals = [0] * 4, [0] * 4
    for hyp, ref in zip(hyps, refs):
        for n in range(1, 5):
            hyp_ngrams = Counter(tuple(hyp[i : i + n]) for i in range(len(hyp) - n + 1))
            ref_ngrams = Counter(tuple(ref[i : i + n]) for i in range(len(ref) - n + 1))
            # clipping: an n-gram is credited at most as often as the reference has it
            matches[n - 1] += sum(min(count, ref_ngrams[g]) for g, count in hyp_ngrams.items())
            totals[n - 1] += sum(hyp_ngrams.values())
    return matches, totals, sum(len(h) for h in hyps), sum(len(ref) for ref in refs)


def brevity_penalty(c: int, r: int) -> float:
    """1 when the hypotheses are at least as long as the references (c ≥ r), else exp(1 - r / c)."""
    return 1.0 if c >= r else (math.exp(1 - r / c) if c else 0.0)


def bleu_from_counts(matches: list[int], totals: list[int], c: int, r: int) -> float:
    """BLEU from :func:`bleu_counts`: 100 · BP · geometric mean of p_1..p_4, 0 when some order
    has no match (no smoothing)."""
    if min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals)) / 4
    return 100 * brevity_penalty(c, r) * math.exp(log_precision)


def sacrebleu_on_tokens(hyps: list[list[str]], refs: list[list[str]],
                        smooth_method: str = "none") -> float:
    """sacreBLEU's corpus score of already tokenized sentences, one reference each.

    The tokens are joined with spaces and scored with ``tokenize="none"`` (sacreBLEU splits on
    whitespace again), so both sides see the same tokens as :func:`bleu_from_scratch`; tokens
    must not contain spaces. ``smooth_method="none"`` is the textbook formula; sacreBLEU's
    default ``"exp"`` gives the same number whenever every order has at least one match.
    """
    bleu = BLEU(tokenize="none", smooth_method=smooth_method)
    return bleu.corpus_score([" ".join(h) for h in hyps], [[" ".join(r) for r in refs]]).score


def _bleu_cases() -> list[_Case]:
    names = ("hyps", "refs")
    mat = "the cat sat on the mat by the door".split()
    dog = "a small dog ran across the green park today".split()
    short = "the cat sat on the mat".split()
    return [
        _case("译文与参考完全相同", "完全相同时 BLEU = 100。", names, ([mat, dog], [mat, dog])),
        _case("语料级 BLEU，不是逐句平均", "先把所有句子的匹配数、总数、长度加起来，最后算一次。",
              names, ([mat, dog[:5] + ["yesterday", "and", "then", "more"]], [mat, dog])),
        _case("有一句全是重复的词：计数要截断", "一个 n-gram 最多算它在参考里出现的次数。", names,
              ([mat, ["the"] * 6], [mat, "the dog is on the mat".split()])),
        _case("译文比参考短：简短惩罚", "c < r 时乘以 exp(1 − r / c)，c、r 是整个语料的总长度。",
              names, ([short, dog[:6]], [mat, dog])),
        _case("译文比参考长：没有惩罚", "c ≥ r 时简短惩罚是 1。", names,
              ([mat + ["again"], dog + ["and", "then"]], [mat, dog])),
        _case("没有任何 4-gram 匹配：BLEU 为 0", "不做平滑：某一阶的匹配数为 0 时几何平均是 0。",
              names, ([["the", "cat", "sat", "by", "the", "mat", "on", "door"]], [mat])),
        _case("有一句不到 4 个词", "长度为 2 的句子没有 3-gram 和 4-gram，不要算出负数个。", names,
              ([mat, ["small", "dog"]], [mat, "a small dog".split()])),
        _case("有一句译文是空的", "空译文没有 n-gram，长度 0，只影响简短惩罚。", names,
              ([mat, dog, []], [mat, dog, ["hello"]])),
    ]


def check_bleu(fn: Callable) -> bool:
    """Check ``fn(hyps, refs) -> float`` (0-100, token lists, one reference per hypothesis)
    against sacreBLEU (``tokenize="none"``, ``smooth_method="none"``) within 0.01."""
    hint = ("对 n = 1..4，把整个语料里截断后的 n-gram 匹配数和译文 n-gram 总数分别加起来；"
            "BLEU = 100 · BP · exp(Σ log pₙ / 4)，简短惩罚 BP = exp(1 − r/c)（c < r 时，否则 1）；"
            "某一阶没有匹配时返回 0。")
    return _check(fn, hint, _bleu_cases, sacrebleu_on_tokens, atol=0.01)


# ---------------------------------------------------------------------------------------------
# 07 · masked softmax
# ---------------------------------------------------------------------------------------------


def answer_masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the source positions that gives padding exactly zero weight.

    :param scores: [batch, steps, src_len] attention scores.
    :param mask: [batch, src_len], True at real source words.
    :return: weights [batch, steps, src_len]; every row sums to 1.
    """
    mask = mask.unsqueeze(1)  # [batch, 1, src_len]: the same mask for every decoder step
    scores = scores.masked_fill(~mask, float("-inf"))  # padding can never get weight
    return torch.softmax(scores, dim=-1)  # exp(-inf) = 0; softmax subtracts the max first


def _padding_gets_zero(mask: torch.Tensor) -> Callable[[torch.Tensor], str | None]:
    def extra(got: torch.Tensor) -> str | None:
        pad = ~mask.unsqueeze(1).expand_as(got)
        leak = got.detach()[pad].abs()
        if leak.numel() and bool((leak != 0).any()):
            return f"补齐位置的权重应正好是 0，最大的是 {float(leak.max()):.3g}"
        return None

    return extra


def _masked_softmax_cases() -> list[_Case]:
    def case(name: str, point: str, scores: torch.Tensor, lens: list[int]) -> _Case:
        mask = torch.arange(scores.shape[-1]) < torch.tensor(lens).unsqueeze(1)  # [batch, src_len]
        return _case(name, point, ("scores", "mask"), (scores, mask), extra=_padding_gets_zero(mask))

    big = torch.tensor([[[0.0, 0.0, 1000.0]], [[1.0, 2.0, 3.0]]])  # padding holds the top score
    return [
        case("没有补齐", "就是普通的 softmax，每行和为 1。", torch.randn(2, 1, 3), [3, 3]),
        case("第二句有补齐", "补齐位置（mask 为 False）的权重正好是 0，其余位置的和为 1。",
             torch.randn(2, 2, 4), [4, 2]),
        case("有一句只有一个词（长度 1）", "只有一个真实位置时，它的权重是 1。",
             torch.randn(2, 2, 3), [3, 1]),
        case("补齐位置的分数最大", "要在 softmax 之前屏蔽（设成 -inf）；先 softmax 再清零、"
             "或把 exp 乘上 mask，在这里都会得到 nan 或错值。",
             big, [2, 3]),
        case("分数很大（数值稳定性）", "不要自己算 exp：torch.softmax 会先减去最大值。",
             torch.randn(2, 1, 4) * 500, [4, 3]),
        case("batch = steps = src_len = 3", "mask 是 [batch, src_len]，要 unsqueeze(1) 变成 "
             "[batch, 1, src_len]；方向错了也不会报错。", torch.randn(3, 3, 3), [3, 1, 2]),
    ]


def check_masked_softmax(fn: Callable) -> bool:
    """Check ``fn(scores [batch, steps, src_len], mask [batch, src_len]) -> weights`` against
    :func:`~seq2seq_lib.attention.masked_softmax`; padded positions must be exactly 0."""
    hint = ("把 mask 变成 [batch, 1, src_len]，用 masked_fill 把补齐位置（mask 为 False）的分数"
            "设成 -inf，再在最后一维上做 torch.softmax。")
    return _check(fn, hint, _masked_softmax_cases, masked_softmax)


# ---------------------------------------------------------------------------------------------
# 08 · one beam-search step with the GNMT length penalty
# ---------------------------------------------------------------------------------------------


def answer_beam_step(scores: torch.Tensor, log_probs: torch.Tensor, lengths: torch.Tensor,
                     finished: torch.Tensor, k: int, alpha: float
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One beam-search step: the k best one-word extensions, ranked with the length penalty.

    :param scores: [beam] summed log-probabilities of the prefixes in the beam.
    :param log_probs: [beam, vocab] log-probabilities of the next word. For a finished prefix
        (one that already ended with ``<eos>``) the caller passes 0 at ``<eos>`` and -inf
        elsewhere, so it has exactly one candidate, with its score unchanged.
    :param lengths: [beam] words in each prefix, ``<eos>`` included.
    :param finished: [beam] bool; a finished prefix's length does not grow.
    :param k: how many candidates to keep; :param alpha: the GNMT length-penalty exponent.
    :return: ``new_scores`` [k] (summed log-probabilities, *not* divided by the penalty),
        ``beam_index`` [k] and ``token`` [k] (long), best first. Candidates are ranked by
        ``new_score / ((5 + new_length) / 6) ** alpha``; equal values go to the smaller beam
        index, then the smaller token id (``torch.topk`` does not promise that order).
    """
    beam, vocab = log_probs.shape
    cand = scores.unsqueeze(1) + log_probs  # [beam, vocab] summed log-probs of the extensions
    new_lengths = lengths + (~finished).long()  # [beam]: live prefixes grow by one word
    penalty = ((5.0 + new_lengths) / 6.0) ** alpha  # [beam], the GNMT length penalty
    ranked = (cand / penalty.unsqueeze(1)).flatten()  # [beam * vocab], index = b * vocab + w
    best = torch.sort(ranked, descending=True, stable=True).indices[:k]  # ties: lower index
    return cand.flatten()[best], best // vocab, best % vocab


def _beam_step_cases() -> list[_Case]:
    names = ("scores", "log_probs", "lengths", "finished", "k", "alpha")
    eos, inf = Vocab.eos_id, float("-inf")

    def done_row(vocab: int) -> torch.Tensor:  # what the caller feeds a finished prefix
        row = torch.full((vocab,), inf)
        row[eos] = 0.0
        return row

    def logp(beam: int, vocab: int) -> torch.Tensor:
        return torch.randn(beam, vocab).log_softmax(-1)

    ties = torch.log(torch.tensor([[0.1, 0.4, 0.1, 0.4], [0.1, 0.4, 0.1, 0.4]]))  # [2, 4]
    # a short finished hypothesis (score -3.0, 2 words) against a long live one (5 words)
    mixed = torch.stack([done_row(6), torch.log(torch.tensor([.02, .02, .02, .02, .6, .32]))])
    mixed_args = (torch.tensor([-3.0, -2.8]), mixed, torch.tensor([2, 5]),
                  torch.tensor([True, False]))
    random_args = (torch.tensor([-1.2, -2.0, -4.5, -3.1]),
                   torch.cat([logp(3, 7), done_row(7).unsqueeze(0)]),
                   torch.tensor([4, 4, 4, 3]), torch.tensor([False, False, False, True]))
    first = torch.tensor([0.0, inf])
    return [
        _case("第一步：只有第 0 束是活的", "其余束的分数是 -inf，只从第 0 束扩展。", names,
              (first, logp(2, 5), torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.bool),
               2, 0.0)),
        _case("三束都活着，α = 0", "把 [beam, vocab] 展平后取前 k；束序号 = 下标 // vocab，"
              "词 = 下标 % vocab。", names,
              (torch.tensor([-1.0, -0.5, -2.0]), logp(3, 6), torch.full((3,), 3),
               torch.zeros(3, dtype=torch.bool), 4, 0.0)),
        _case("分数相同（平局）", "平局时束序号小的在前，束相同时词 id 小的在前；torch.topk 不保证"
              "这个顺序，用 torch.sort(..., descending=True, stable=True)。", names,
              (torch.tensor([-1.0, -1.0]), ties, torch.tensor([2, 2]),
               torch.zeros(2, dtype=torch.bool), 4, 0.0)),
        _case("短的已结束假设 vs 长的活假设，α = 0", "α = 0 时按对数概率之和排序，短句占便宜。",
              names, (*mixed_args, 2, 0.0)),
        _case("同样的束，α = 1：长度惩罚", "排序用 分数 / ((5 + 长度) / 6) ** α；活假设的长度 + 1，"
              "已结束的不变；返回的仍是未除以惩罚的分数。", names, (*mixed_args, 2, 1.0)),
        _case("α = 0.6，混合的束", "返回的 new_scores 是对数概率之和，不要除以长度惩罚。", names,
              (*random_args, 5, 0.6)),
    ]


def check_beam_step(fn: Callable) -> bool:
    """Check ``fn(scores, log_probs, lengths, finished, k, alpha) -> (new_scores, beam_index,
    token)``; see :func:`answer_beam_step` for the contract, tie rule included.

    Finished hypotheses stay in the beam here (the caller forces their next word to ``<eos>``
    at no cost), the simplest layout in which one step compares hypotheses of different lengths.
    :func:`~seq2seq_lib.decode.beam_search` keeps them in a separate list instead; its live
    prefixes all have the same length, so there the penalty only ranks finished hypotheses.
    """
    hint = ("cand = scores[:, None] + log_probs（[beam, vocab]）；新长度 = lengths + 1（已结束的"
            "不变）；按 cand / ((5 + 新长度) / 6) ** alpha 从大到小排序（平局按下标），取前 k 个；"
            "束序号 = 下标 // vocab，词 = 下标 % vocab，返回未除以惩罚的 cand。")
    return _check(fn, hint, _beam_step_cases, answer_beam_step)


# ---------------------------------------------------------------------------------------------
# The registry, answers and stubs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exercise:
    """One self-checking exercise.

    ``function``: the name the notebook's exercise cell defines; ``check``: its checker;
    ``answer``: the reference solution (its source, renamed to ``function``, is the answer a
    notebook can show); ``imports``: what that source needs to run on its own; ``helpers``: the
    functions the answer calls, shown after it (the library uses the same ones).
    """

    name: str
    notebook: str
    function: str
    check: Callable[[Callable], bool]
    answer: Callable
    imports: str
    helpers: tuple[Callable, ...] = ()


EXERCISES: dict[str, Exercise] = {ex.name: ex for ex in [
    Exercise("build_vocab", "02", "my_build_vocab", check_build_vocab, answer_build_vocab,
             "from collections import Counter"),
    Exercise("pad_batch", "03", "my_pad_batch", check_pad_batch, answer_pad_batch, "import torch"),
    Exercise("gru_step", "04", "my_gru_step", check_gru_step, answer_gru_step, "import torch"),
    Exercise("masked_loss", "05", "my_masked_loss", check_masked_loss, answer_masked_loss,
             "import torch"),
    Exercise("greedy_decode", "06", "my_greedy_decode", check_greedy_decode,
             answer_greedy_decode, "import torch\nfrom torch import nn"),
    Exercise("bleu", "06", "my_bleu", check_bleu, bleu_from_scratch,
             "import math\nfrom collections import Counter",
             (bleu_counts, brevity_penalty, bleu_from_counts)),
    Exercise("masked_softmax", "07", "my_masked_softmax", check_masked_softmax,
             answer_masked_softmax, "import torch"),
    Exercise("beam_step", "08", "my_beam_step", check_beam_step, answer_beam_step, "import torch"),
]}


def get_exercise(name: str) -> Exercise:
    """The exercise called ``name`` (``"build_vocab"``) or whose function is ``name``
    (``"my_build_vocab"``)."""
    for ex in EXERCISES.values():
        if name in (ex.name, ex.function):
            return ex
    known = ", ".join(f"{ex.name} ({ex.function})" for ex in EXERCISES.values())
    raise KeyError(f"no exercise {name!r}; the exercises are: {known}")


def _renamed_source(ex: Exercise) -> str:
    """The answer's source with the notebook's function name, its signature re-aligned."""
    source = textwrap.dedent(inspect.getsource(ex.answer))
    func = ast.parse(source).body[0]
    assert isinstance(func, ast.FunctionDef)
    lines = source.splitlines()
    shift = len(ex.function) - len(ex.answer.__name__)
    lines[func.lineno - 1] = lines[func.lineno - 1].replace(
        f"def {ex.answer.__name__}(", f"def {ex.function}(", 1)
    for i in range(func.lineno, func.body[0].lineno - 1):  # the signature's continuation lines
        lines[i] = " " * shift + lines[i] if shift > 0 else lines[i][-shift:]
    return "\n".join(lines) + "\n"


def answer_source(name: str) -> str:
    """Self-contained source of the reference solution, defining the notebook's function name.

    ``exec(answer_source("build_vocab"), ns)`` puts ``my_build_vocab`` into ``ns``.
    """
    ex = get_exercise(name)
    helpers = "".join(f"\n\n{textwrap.dedent(inspect.getsource(h))}" for h in ex.helpers)
    return f"{ex.imports}\n\n\n{_renamed_source(ex)}{helpers}"


def stub_source(name: str) -> str:
    """The unsolved exercise cell: the answer's signature and docstring, then
    ``raise NotImplementedError`` (the checker turns that into a hint, not an error)."""
    ex = get_exercise(name)
    source = _renamed_source(ex)
    func = ast.parse(source).body[0]
    assert isinstance(func, ast.FunctionDef) and ast.get_docstring(func) is not None
    head = source.splitlines()[: func.body[0].end_lineno]  # signature, decorators, docstring
    body = '    raise NotImplementedError("write this function, then run the check below")'
    return f"{ex.imports}\n\n\n" + "\n".join(head) + f"\n{body}\n"


def exercise_for_cell(source: str) -> Exercise | None:
    """The exercise whose function a notebook cell defines (``def my_build_vocab(``), or None.

    A test harness replaces such a cell's source with :func:`answer_source` and expects the
    next cell's check to pass.
    """
    for ex in EXERCISES.values():
        if re.search(rf"^\s*def {ex.function}\(", source, flags=re.MULTILINE):
            return ex
    return None

