"""Notebook 04's exercises: one GRU step by hand."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..models import Encoder
from .harness import Exercise, _Case, _case, _check, _fmt, _fresh, register

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
        _case("第一步：零初始状态，批量 1，偏置为 0", "h' = (1 − z) ⊙ n + z ⊙ h，h = 0 时只剩 "
              "(1 − z) ⊙ n；权重里门的顺序是 r、z、n。", names,
              (torch.randn(1, 3), torch.zeros(1, 4), *_gru_weights(3, 4, bias_scale=0.0))),
        _case("非零状态，批量 3，偏置为 0", "门的顺序是 r、z、n：chunk(3) 的第一块是重置门 r。",
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


register(Exercise("gru_step", "04", "my_gru_step", check_gru_step, answer_gru_step, "import torch"))
