"""Notebook 07's attention exercises: ``MyAdditiveAttention`` (Bahdanau's score, the masked
softmax, the context) and ``MyAttentionDecoder`` (the decoder step that uses it), checked with
the library's weights loaded into them against :class:`~seq2seq_lib.attention.AdditiveAttention`
and :class:`~seq2seq_lib.attention.AttentionDecoder`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..attention import AdditiveAttention, AttentionDecoder
from ..interface import Encoded
from .harness import Exercise, _Case, _check, register
from .modules import _load_weights, _unpack

# ---------------------------------------------------------------------------------------------
# The reference answers (MyAdditiveAttention, MyAttentionDecoder in the notebook)
# ---------------------------------------------------------------------------------------------


class AdditiveAttentionAnswer(nn.Module):
    """Additive (Bahdanau) attention: ``score(q, k) = v · tanh(W_q q + W_k k)``, a softmax over
    the real source words only, and the weighted sum of the keys. Keep the attribute names:
    the check loads the library's weights into ``w_query``, ``w_key`` and ``v``."""

    def __init__(self, query_dim: int, key_dim: int, attn_dim: int):
        """Create ``self.w_query`` (``nn.Linear(query_dim, attn_dim, bias=False)``),
        ``self.w_key`` (``nn.Linear(key_dim, attn_dim)``, with bias) and ``self.v``
        (``nn.Linear(attn_dim, 1, bias=False)``)."""
        super().__init__()
        self.w_query = nn.Linear(query_dim, attn_dim, bias=False)
        self.w_key = nn.Linear(key_dim, attn_dim)
        self.v = nn.Linear(attn_dim, 1, bias=False)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attend from every query to every key.

        :param query: [batch, steps, query_dim] (decoder states); :param keys: [batch, src_len,
            key_dim] (encoder outputs); :param mask: [batch, src_len], True at real words.
        :return: weights [batch, steps, src_len] (exactly 0 at padding, each row sums to 1) and
            context [batch, steps, key_dim] (the weighted sum of the keys).
        """
        q = self.w_query(query).unsqueeze(2)  # [batch, steps, 1, attn_dim]
        k = self.w_key(keys).unsqueeze(1)  # [batch, 1, src_len, attn_dim]
        scores = self.v(torch.tanh(q + k)).squeeze(-1)  # [batch, steps, src_len]
        scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))  # before the softmax
        weights = torch.softmax(scores, dim=-1)  # over the source words
        return weights, torch.bmm(weights, keys)  # context: [batch, steps, key_dim]


class AttentionDecoderAnswer(nn.Module):
    """The attention decoder (Luong's layout, Bahdanau's score): embedding → dropout → GRU, then
    every GRU state attends over the encoder outputs and is combined with its context:
    ``tanh(combine([context; state]))``, with dropout, is what ``project`` scores. Keep the
    names: ``embedding``, ``dropout``, ``rnn``, ``attention``, ``combine``, ``fc_out``."""

    has_attention = True  # the library's decoding code keeps the weights

    def __init__(self, vocab_size: int, emb_dim: int, hid_dim: int, n_layers: int,
                 dropout: float, enc_dim: int, pad_id: int = 1):
        """Create ``embedding``, ``dropout``, ``rnn`` (as in notebook 04's decoder),
        ``attention`` (additive: ``AdditiveAttention(hid_dim, enc_dim, hid_dim)``, yours or the
        library's), ``combine`` (``nn.Linear(enc_dim + hid_dim, hid_dim)``) and ``fc_out``."""
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb_dim, padding_idx=pad_id)
        self.dropout = nn.Dropout(dropout)
        self.rnn = nn.GRU(emb_dim, hid_dim, n_layers, dropout=dropout if n_layers > 1 else 0.0)
        self.attention = AdditiveAttention(hid_dim, enc_dim, hid_dim)
        self.combine = nn.Linear(enc_dim + hid_dim, hid_dim)
        self.fc_out = nn.Linear(hid_dim, vocab_size)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor, enc: Encoded
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Read target words (one step or many), attending over the source after the GRU.

        :param inputs: [steps, batch]; :param hidden: [n_layers, batch, hid_dim].
        :param enc: ``enc.outputs`` [src_len, batch, enc_dim], ``enc.mask`` [batch, src_len].
        :return: attentional states [steps, batch, hid_dim], the new hidden, and the weights
            [steps, batch, src_len].
        """
        embedded = self.dropout(self.embedding(inputs))  # [steps, batch, emb_dim]
        states, hidden = self.rnn(embedded, hidden)  # states: [steps, batch, hid_dim]
        query = states.transpose(0, 1)  # [batch, steps, hid_dim]
        keys = enc.outputs.transpose(0, 1)  # [batch, src_len, enc_dim]
        weights, context = self.attention(query, keys, enc.mask)  # [b, steps, src_len / enc_dim]
        combined = torch.tanh(self.combine(torch.cat([context, query], dim=-1)))  # [b, steps, hid]
        out = self.dropout(combined).transpose(0, 1)  # [steps, batch, hid_dim]
        return out, hidden, weights.transpose(0, 1)  # weights: [steps, batch, src_len]

    def project(self, states: torch.Tensor) -> torch.Tensor:
        """Logits over the target vocabulary: [..., hid_dim] → [..., vocab_size]."""
        return self.fc_out(states)


# ---------------------------------------------------------------------------------------------
# Cases and checkers
# ---------------------------------------------------------------------------------------------

ATTENTION_NAMES = "w_query、w_key、v"
DECODER_NAMES = "embedding、dropout、rnn、attention（其中 w_query、w_key、v）、combine、fc_out"


def _mask(lens: list[int], src_len: int) -> torch.Tensor:
    return torch.arange(src_len) < torch.tensor(lens).unsqueeze(1)  # [batch, src_len]


def _padding_is_zero(weights: Any, mask: torch.Tensor, src_axis_first: bool) -> str | None:
    """Exactly zero weight at padded positions (``mask`` [batch, src_len])."""
    if not isinstance(weights, torch.Tensor):
        return None
    pad = ~mask.unsqueeze(0 if src_axis_first else 1).expand_as(weights)
    leak = weights.detach()[pad].abs()
    if leak.numel() and bool((leak != 0).any()):
        return f"填充位置的权重应正好是 0，最大的是 {float(leak.max()):.3g}"
    return None


def _attention_case(name: str, point: str, dims: tuple[int, int, int], steps: int,
                    lens: list[int], scale: float = 1.0) -> _Case:
    torch.manual_seed(sum(dims) + steps)
    state = AdditiveAttention(*dims).state_dict()
    src_len, batch = max(lens), len(lens)
    query = torch.randn(batch, steps, dims[0]) * scale
    keys = torch.randn(batch, src_len, dims[1]) * scale
    mask = _mask(lens, src_len)

    def run(cls: Callable) -> dict[str, Any]:
        module = cls(*dims)
        _load_weights(module, state, ATTENTION_NAMES)
        with torch.no_grad():
            got = _unpack(module.eval()(query.clone(), keys.clone(), mask.clone()), 2,
                          "(weights, context)")
        return {"weights": got[0], "context": got[1]}

    shown = (f"query_dim, key_dim, attn_dim = {dims}；query 形状 {list(query.shape)}，keys 形状 "
             f"{list(keys.shape)}，每句的长度 {lens}（mask 形状 {list(mask.shape)}）")
    return _Case(name, run, shown, point,
                 extra=lambda got: _padding_is_zero(got.get("weights"), mask, False))


def _attention_cases() -> list[_Case]:
    return [
        _attention_case("没有填充，一步（steps=1）", "score = v · tanh(W_q q + W_k k)；softmax 在最后"
                        "一维（源句的词）上做。", (4, 4, 3), 1, [3, 3]),
        _attention_case("第二句有填充", "softmax 之前把 mask 为 False 的分数设成 -inf：填充位置的"
                        "权重正好是 0，其余的和为 1。", (4, 4, 3), 1, [4, 2]),
        _attention_case("多步一起（steps=3），有一句长度为 1", "query 的每一步都对所有源词打分："
                        "[batch, steps, src_len]；只有一个真实词时它的权重是 1。", (4, 4, 3), 3,
                        [3, 1, 2]),
        _attention_case("query、key、attn 的维度都不同", "w_query: query_dim → attn_dim，w_key: "
                        "key_dim → attn_dim；context 的维度是 key_dim。", (5, 6, 3), 2, [2, 4]),
        _attention_case("分数很大，填充的 keys 也很大", "先屏蔽再 softmax；先 softmax 再把填充清零，"
                        "每行的和就不是 1 了。", (4, 4, 3), 2, [4, 1], scale=30.0),
    ]


def check_additive_attention(cls: Callable) -> bool:
    """Check ``MyAdditiveAttention(query_dim, key_dim, attn_dim)`` against the library's
    :class:`~seq2seq_lib.attention.AdditiveAttention` (its weights loaded into yours)."""
    hint = ("__init__：self.w_query、self.w_key、self.v 三个 nn.Linear；forward：W_q q 加一维成 "
            "[batch, steps, 1, attn]，W_k k 成 [batch, 1, src_len, attn]，相加、tanh、self.v、"
            "squeeze(-1)；用 masked_fill(~mask.unsqueeze(1), -inf) 屏蔽后在最后一维 softmax；"
            "context = torch.bmm(weights, keys)。")
    return _check(cls, hint, _attention_cases, AdditiveAttention)


def _library_decoder(vocab_size: int, emb_dim: int, hid_dim: int, n_layers: int, dropout: float,
                     enc_dim: int) -> AttentionDecoder:
    return AttentionDecoder(vocab_size, emb_dim, hid_dim, n_layers, dropout, enc_dim, "bahdanau")


def _decoder_case(name: str, point: str, inputs: list[list[int]], lens: list[int],
                  n_layers: int = 1, dropout: float = 0.0, enc_dim: int = 5) -> _Case:
    sizes = (13, 6, 5, n_layers, dropout, enc_dim)  # vocab, emb, hid, n_layers, dropout, enc
    torch.manual_seed(40 + n_layers + enc_dim)
    state = _library_decoder(*sizes).state_dict()
    inp = torch.tensor(inputs)  # [steps, batch]
    src_len, batch = max(lens), len(lens)
    mask = _mask(lens, src_len)
    outputs = torch.randn(src_len, batch, enc_dim) * mask.t().unsqueeze(-1)  # 0 at padding
    hidden = torch.randn(n_layers, batch, 5)

    def run(cls: Callable) -> dict[str, Any]:
        module = cls(*sizes)
        _load_weights(module, state, DECODER_NAMES)
        enc = Encoded(outputs.clone(), hidden.clone(), mask.clone())
        with torch.no_grad():
            got = _unpack(module.eval()(inp.clone(), hidden.clone(), enc), 3,
                          "(states, hidden, weights)")
        return {"states": got[0], "hidden": got[1], "weights": got[2]}

    shown = (f"vocab_size, emb_dim, hid_dim, n_layers, dropout, enc_dim = {sizes}（eval() 模式）；"
             f"inputs={inp.tolist()}；enc.outputs 形状 {list(outputs.shape)}，每句的长度 {lens}")
    return _Case(name, run, shown, point,
                 extra=lambda got: _padding_is_zero(got.get("weights"), mask, True))


def _decoder_cases() -> list[_Case]:
    return [
        _decoder_case("一步，源句有填充", "GRU 之后用它的状态（不是词向量）去注意 enc.outputs；"
                      "拼接顺序是 [context; state]，再 combine、tanh。", [[2, 2]], [4, 2]),
        _decoder_case("多步一起（强制教学）", "一次读完所有步；weights 返回 [steps, batch, src_len]。",
                      [[2, 2], [5, 7], [6, 1]], [3, 3]),
        _decoder_case("n_layers=2，dropout=0.5，eval() 模式", "eval() 时暂退法关掉（用 self.dropout）；"
                      "注意力只用顶层的状态。", [[2, 2], [8, 9]], [2, 3], n_layers=2, dropout=0.5),
        _decoder_case("编码器输出的维度是 hid_dim 的两倍（双向编码器）", "attention 的 key_dim 和 "
                      "combine 的输入维度都来自 enc_dim。", [[2, 2, 2]], [1, 3, 2], enc_dim=10),
    ]


def check_attention_decoder(cls: Callable) -> bool:
    """Check ``MyAttentionDecoder(vocab_size, emb_dim, hid_dim, n_layers, dropout, enc_dim)``
    against the library's :class:`~seq2seq_lib.attention.AttentionDecoder` (``"bahdanau"``)."""
    hint = ("embedding → dropout → self.rnn(embedded, hidden)；query = states.transpose(0, 1)，"
            "keys = enc.outputs.transpose(0, 1)，weights, context = self.attention(query, keys, "
            "enc.mask)；tanh(self.combine(torch.cat([context, query], -1)))，dropout，转回 "
            "[steps, batch, hid]；返回 (out, hidden, weights.transpose(0, 1))。")
    return _check(cls, hint, _decoder_cases, _library_decoder)


register(
    Exercise("additive_attention", "07", "MyAdditiveAttention", check_additive_attention,
             AdditiveAttentionAnswer, "import torch\nfrom torch import nn"),
    Exercise("attention_decoder", "07", "MyAttentionDecoder", check_attention_decoder,
             AttentionDecoderAnswer, "import torch\nfrom torch import nn\n\n"
             "from seq2seq_lib import AdditiveAttention, Encoded"),
)
