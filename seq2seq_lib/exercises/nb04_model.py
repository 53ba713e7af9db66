"""Notebook 04's model exercises: the learner writes ``MyEncoder``, ``MyDecoder`` and
``MySeq2Seq`` as ``nn.Module`` classes.

The task fixes each constructor's signature and the attribute names (``embedding``, ``dropout``,
``rnn``, ``fc_out``), so a checker can load the library's weights into the learner's module
(``load_state_dict``) and compare outputs with the library's :class:`~seq2seq_lib.models.Encoder`,
:class:`~seq2seq_lib.models.Decoder` and :class:`~seq2seq_lib.models.Seq2Seq` in ``eval()``
mode. A passing check keeps the learner's cell (:mod:`.keep`), so notebook 05 can train it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..batching import collate
from ..interface import Encoded
from ..models import Decoder, Encoder, Seq2Seq
from ..vocab import Vocab
from .harness import Exercise, LearnerMistake, _Case, _check, register
from .keep import remember
from .modules import _fields, _load_weights, _unpack

# ---------------------------------------------------------------------------------------------
# The reference answers (renamed MyEncoder, MyDecoder, MySeq2Seq in the notebook)
# ---------------------------------------------------------------------------------------------


class EncoderAnswer(nn.Module):
    """The encoder: embedding → dropout → GRU over packed sequences, so that padding never
    reaches the hidden state. Keep the attribute names: the check loads the library's weights
    into ``embedding``, ``dropout`` and ``rnn``."""

    def __init__(self, vocab_size: int, emb_dim: int, hid_dim: int, n_layers: int,
                 dropout: float, pad_id: int = 1):
        """Create ``self.embedding`` (``nn.Embedding``, ``padding_idx=pad_id``),
        ``self.dropout`` (``nn.Dropout``) and ``self.rnn`` (``nn.GRU`` with ``n_layers`` layers,
        and dropout between the layers only when ``n_layers > 1``); keep ``pad_id``."""
        super().__init__()
        self.pad_id = pad_id
        self.embedding = nn.Embedding(vocab_size, emb_dim, padding_idx=pad_id)
        self.dropout = nn.Dropout(dropout)
        self.rnn = nn.GRU(emb_dim, hid_dim, n_layers, dropout=dropout if n_layers > 1 else 0.0)

    def forward(self, src: torch.Tensor, src_lens: torch.Tensor) -> Encoded:
        """Encode a padded batch.

        :param src: [src_len, batch] ids, padded with ``pad_id``; :param src_lens: [batch].
        :return: ``Encoded(outputs, hidden, mask)``: outputs [src_len, batch, hid_dim] (zero at
            padded positions), hidden [n_layers, batch, hid_dim] (the state after each
            sentence's *last real word*), mask [batch, src_len] (True at real words).
            Hint: ``pack_padded_sequence(embedded, src_lens.cpu(), enforce_sorted=False)``.
        """
        embedded = self.dropout(self.embedding(src))  # [src_len, batch, emb_dim]
        packed = pack_padded_sequence(embedded, src_lens.cpu(), enforce_sorted=False)
        packed_out, hidden = self.rnn(packed)  # hidden: [n_layers, batch, hid_dim]
        outputs, _ = pad_packed_sequence(packed_out, total_length=src.shape[0])
        mask = (src != self.pad_id).t()  # [batch, src_len]
        return Encoded(outputs, hidden, mask)


class DecoderAnswer(nn.Module):
    """The decoder: embedding → dropout → GRU, and ``project`` (a linear layer) turns its states
    into logits. Keep the attribute names: the check loads the library's weights into
    ``embedding``, ``dropout``, ``rnn`` and ``fc_out``."""

    has_attention = False  # the library's decoding code asks every decoder

    def __init__(self, vocab_size: int, emb_dim: int, hid_dim: int, n_layers: int,
                 dropout: float, pad_id: int = 1):
        """Create ``self.embedding``, ``self.dropout``, ``self.rnn`` (as in the encoder) and
        ``self.fc_out`` (``nn.Linear(hid_dim, vocab_size)``)."""
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb_dim, padding_idx=pad_id)
        self.dropout = nn.Dropout(dropout)
        self.rnn = nn.GRU(emb_dim, hid_dim, n_layers, dropout=dropout if n_layers > 1 else 0.0)
        self.fc_out = nn.Linear(hid_dim, vocab_size)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor, enc: Encoded
                ) -> tuple[torch.Tensor, torch.Tensor, None]:
        """Read target words: one step (``inputs`` [1, batch]) or many at once (teacher forcing).

        :param inputs: [steps, batch] ids; :param hidden: [n_layers, batch, hid_dim], the state
            to start from (the encoder's ``enc.hidden`` at the first step).
        :param enc: the encoder's result (this decoder has no attention and does not read it).
        :return: states [steps, batch, hid_dim] (the top layer's GRU outputs, *not* logits),
            the new hidden [n_layers, batch, hid_dim], and None (no attention weights).
        """
        embedded = self.dropout(self.embedding(inputs))  # [steps, batch, emb_dim]
        states, hidden = self.rnn(embedded, hidden)  # states: [steps, batch, hid_dim]
        return states, hidden, None

    def project(self, states: torch.Tensor) -> torch.Tensor:
        """Logits over the target vocabulary: [..., hid_dim] → [..., vocab_size]."""
        return self.fc_out(states)


class Seq2SeqAnswer(nn.Module):
    """Encoder + decoder: ``encode`` for decoding, ``forward`` for the loss (what the library's
    training step calls, as ``model(src, src_lens, trg, teacher_forcing_ratio, pad_id=pad_id)``)."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        """Keep them as ``self.encoder`` and ``self.decoder``."""
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def encode(self, src: torch.Tensor, src_lens: torch.Tensor) -> Encoded:
        """The encoder's ``Encoded`` for a source batch (greedy decoding starts here)."""
        return self.encoder(src, src_lens)

    def forward(self, src: torch.Tensor, src_lens: torch.Tensor, trg: torch.Tensor,
                teacher_forcing_ratio: float = 1.0, pad_id: int | None = None) -> torch.Tensor:
        """Teacher-forced scores of the target: the decoder reads ``<sos> w1 … wn`` and row t
        of the logits predicts ``trg[t + 1]``.

        :param src: [src_len, batch]; :param src_lens: [batch]; :param trg: [trg_len, batch],
            starting with ``<sos>``, padded with ``<pad>``.
        :param teacher_forcing_ratio: only 1.0 (always the true previous word) is asked for.
        :param pad_id: when given, return only the rows the loss scores: those where
            ``trg[1:] != pad_id``, in the order of ``trg[1:][trg[1:] != pad_id]``.
        :return: logits [trg_len - 1, batch, trg_vocab], or [n_tokens, trg_vocab] with ``pad_id``.
        """
        if teacher_forcing_ratio < 1.0:
            raise ValueError("this model always feeds the true previous word (ratio 1.0)")
        enc = self.encode(src, src_lens)
        states, _, _ = self.decoder(trg[:-1], enc.hidden, enc)  # [trg_len - 1, batch, hid_dim]
        logits = self.decoder.project(states)  # [trg_len - 1, batch, trg_vocab]
        return logits if pad_id is None else logits[trg[1:] != pad_id]  # [n_tokens, trg_vocab]


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------

SIZES = {"vocab_size": 13, "emb_dim": 6, "hid_dim": 5}  # tiny: every value can be printed
ENCODER_NAMES = "embedding、dropout、rnn"
DECODER_NAMES = "embedding、dropout、rnn、fc_out"


def _ids(*rows: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """A padded batch of id rows: ([max_len, batch], [batch])."""
    batch = collate([(torch.tensor(r), torch.tensor([Vocab.sos_id])) for r in rows])
    return batch.src, batch.src_lens


def _library(cls: type, n_layers: int, dropout: float, seed: int) -> dict[str, torch.Tensor]:
    """The weights of a seeded library module of the tiny sizes."""
    torch.manual_seed(seed)
    return cls(*SIZES.values(), n_layers, dropout).state_dict()


def _module(cls: Callable, state: dict[str, torch.Tensor], n_layers: int, dropout: float,
            names: str) -> nn.Module:
    """``cls`` built with the tiny sizes, the library's weights loaded, in ``eval()`` mode."""
    module = cls(*SIZES.values(), n_layers, dropout)
    _load_weights(module, state, names)
    return module.eval()


def _shown(n_layers: int, dropout: float, **tensors: Any) -> str:
    sizes = ", ".join(f"{k}={v}" for k, v in SIZES.items())
    rows = ", ".join(f"{k}={v.tolist()}" for k, v in tensors.items())
    return f"{sizes}, n_layers={n_layers}, dropout={dropout}（eval() 模式）；{rows}"


def _encoder_case(name: str, point: str, rows: Sequence[Sequence[int]], n_layers: int = 1,
                  dropout: float = 0.0) -> _Case:
    state = _library(Encoder, n_layers, dropout, seed=len(rows) + n_layers)
    src, src_lens = _ids(*rows)

    def run(cls: Callable) -> dict[str, Any]:
        module = _module(cls, state, n_layers, dropout, ENCODER_NAMES)
        with torch.no_grad():
            got = module(src.clone(), src_lens.clone())
        return _fields(got, ("outputs", "hidden", "mask"), "Encoded(outputs, hidden, mask)")

    return _Case(name, run, _shown(n_layers, dropout, src=src, src_lens=src_lens), point)


def _encoder_cases() -> list[_Case]:
    return [
        _encoder_case("没有填充，n_layers=1", "outputs 是每个词的顶层状态，hidden 是最后的隐状态，"
                      "mask 形状 [batch, src_len]。", [[2, 5, 6, 3], [2, 7, 8, 3]]),
        _encoder_case("批量里有填充（长度不同）", "要用 pack_padded_sequence：hidden 应是每句最后一个"
                      "真实词处的状态，不是读完填充后的状态；outputs 在填充处为 0。",
                      [[2, 5, 6, 7, 8, 3], [2, 9, 3], [2, 4, 10, 3]]),
        _encoder_case("有一句长度为 1", "长度 1 的句子只读一个词。", [[2, 5, 6, 3], [7]]),
        _encoder_case("n_layers=2", "hidden 有 n_layers 层：[2, batch, hid_dim]。",
                      [[2, 5, 6, 3], [2, 11, 3]], n_layers=2),
        _encoder_case("dropout=0.5，eval() 模式", "eval() 时暂退法要关掉：用 self.dropout"
                      "（nn.Dropout），不要用不看 self.training 的 F.dropout。",
                      [[2, 5, 6, 7, 3], [2, 8, 3]], n_layers=2, dropout=0.5),
    ]


def _decoder_case(name: str, point: str, inputs: list[list[int]], n_layers: int = 1,
                  dropout: float = 0.0) -> _Case:
    state = _library(Decoder, n_layers, dropout, seed=10 + len(inputs) + n_layers)
    inp = torch.tensor(inputs)  # [steps, batch]
    batch, hid = inp.shape[1], SIZES["hid_dim"]
    hidden = torch.randn(n_layers, batch, hid)
    enc = Encoded(torch.randn(4, batch, hid), hidden, torch.ones(batch, 4, dtype=torch.bool))
    probe = torch.randn(inp.shape[0], batch, hid)  # states for project()

    def run(cls: Callable) -> dict[str, Any]:
        module = _module(cls, state, n_layers, dropout, DECODER_NAMES)
        with torch.no_grad():
            got = _unpack(module(inp.clone(), hidden.clone(), enc), 3, "(states, hidden, None)")
            if not hasattr(module, "project"):
                raise LearnerMistake("缺少 project(states) 方法（self.fc_out(states)）")
            return {"states": got[0], "hidden": got[1], "project(probe)": module.project(probe)}

    shown = (_shown(n_layers, dropout, inputs=inp) + f"；hidden 是随机的 {list(hidden.shape)}；"
             f"probe 是随机的 states {list(probe.shape)}")
    return _Case(name, run, shown, point)


def _decoder_cases() -> list[_Case]:
    return [
        _decoder_case("一步：inputs 是 [1, batch]", "从传进来的 hidden 出发（不是零），返回 GRU 的"
                      "状态，logits 由 project 算。", [[2, 2, 2]]),
        _decoder_case("多步一起（强制教学）：inputs 是 [3, batch]", "一次 GRU 调用读完所有步；"
                      "states 是 [steps, batch, hid_dim]。", [[2, 2], [5, 7], [6, 1]]),
        _decoder_case("n_layers=2", "hidden 有 2 层，rnn 要用 n_layers 层。", [[2, 2]], n_layers=2),
        _decoder_case("dropout=0.5，eval() 模式", "eval() 时暂退法要关掉（用 self.dropout）。",
                      [[2, 2], [8, 9]], n_layers=2, dropout=0.5),
    ]


def _seq2seq_case(name: str, point: str, src_rows: Sequence[Sequence[int]],
                  trg_rows: Sequence[Sequence[int]], n_layers: int = 1, dropout: float = 0.0,
                  pad_id: int | None = None, encode: bool = False) -> _Case:
    enc_state = _library(Encoder, n_layers, dropout, seed=20 + n_layers)
    dec_state = _library(Decoder, n_layers, dropout, seed=30 + n_layers)
    src, src_lens = _ids(*src_rows)
    trg, _ = _ids(*trg_rows)

    def run(cls: Callable) -> Any:
        encoder, decoder = Encoder(*SIZES.values(), n_layers, dropout), Decoder(
            *SIZES.values(), n_layers, dropout)
        encoder.load_state_dict(enc_state)
        decoder.load_state_dict(dec_state)
        model = cls(encoder, decoder).eval()
        with torch.no_grad():
            if encode:
                return _fields(model.encode(src.clone(), src_lens.clone()), ("hidden",), "Encoded")
            if pad_id is None:
                return model(src.clone(), src_lens.clone(), trg.clone())
            return model(src.clone(), src_lens.clone(), trg.clone(), 1.0, pad_id=pad_id)

    call = ("model.encode(src, src_lens)" if encode else "model(src, src_lens, trg)"
            if pad_id is None else f"model(src, src_lens, trg, 1.0, pad_id={pad_id})")
    shown = _shown(n_layers, dropout, src=src, src_lens=src_lens, trg=trg) + f"；调用 {call}"
    return _Case(name, run, shown, point)


def _seq2seq_cases() -> list[_Case]:
    src, trg = [[2, 5, 6, 7, 3], [2, 8, 3]], [[2, 9, 10, 3], [2, 11, 12, 4, 3]]
    return [
        _seq2seq_case("encode：交给编码器", "encode(src, src_lens) 返回 self.encoder 的结果。",
                      src, trg, encode=True),
        _seq2seq_case("有填充的批量：logits 对齐 trg[1:]", "解码器读 trg[:-1]（<sos> 开始），"
                      "从 enc.hidden 出发；logits[t] 预测 trg[t + 1]，形状 [trg_len - 1, batch, V]。",
                      src, trg),
        _seq2seq_case("给了 pad_id：只返回要打分的行", "库的训练步骤这样调用；只留 trg[1:] != pad_id "
                      "的行：[n_tokens, V]。", src, trg, pad_id=Vocab.pad_id),
        _seq2seq_case("源句长度 1，目标只有 <sos> <eos>", "trg_len = 2 时 logits 只有一行。",
                      [[5], [2, 6, 3]], [[2, 3], [2, 3]]),
        _seq2seq_case("n_layers=2，dropout=0.5，eval() 模式", "编码器的 hidden（2 层）整个交给解码器。",
                      src, trg, n_layers=2, dropout=0.5, pad_id=Vocab.pad_id),
    ]


# ---------------------------------------------------------------------------------------------
# The checkers
# ---------------------------------------------------------------------------------------------


def _library_seq2seq(encoder: nn.Module, decoder: nn.Module) -> Seq2Seq:
    return Seq2Seq(encoder, decoder)


def check_encoder(cls: Callable) -> bool:
    """Check ``MyEncoder(vocab_size, emb_dim, hid_dim, n_layers, dropout)`` against the library's
    :class:`~seq2seq_lib.models.Encoder` (its weights loaded into yours); kept for notebook 05
    when it passes."""
    hint = ("__init__ 里建 self.embedding、self.dropout、self.rnn（nn.GRU，n_layers 层）；forward："
            "embedding → dropout → pack_padded_sequence → self.rnn → pad_packed_sequence，"
            "返回 Encoded(outputs, hidden, mask)，mask = (src != pad_id).t()。")
    passed = _check(cls, hint, _encoder_cases, Encoder)
    remember("encoder", cls, passed)
    return passed


def check_decoder(cls: Callable) -> bool:
    """Check ``MyDecoder(vocab_size, emb_dim, hid_dim, n_layers, dropout)`` (``forward`` and
    ``project``) against the library's :class:`~seq2seq_lib.models.Decoder`."""
    hint = ("__init__ 里建 self.embedding、self.dropout、self.rnn、self.fc_out；forward(inputs, "
            "hidden, enc)：embedding → dropout → self.rnn(embedded, hidden)，返回 (states, hidden, "
            "None)；project(states) 返回 self.fc_out(states)。")
    passed = _check(cls, hint, _decoder_cases, Decoder)
    remember("decoder", cls, passed)
    return passed


def check_seq2seq(cls: Callable) -> bool:
    """Check ``MySeq2Seq(encoder, decoder)`` (``encode`` and the teacher-forced ``forward``)
    against the library's :class:`~seq2seq_lib.models.Seq2Seq`, with the library's encoder and
    decoder inside."""
    hint = ("encode 返回 self.encoder(src, src_lens)；forward：enc = self.encode(...)，"
            "states, _, _ = self.decoder(trg[:-1], enc.hidden, enc)，logits = "
            "self.decoder.project(states)；给了 pad_id 时只返回 logits[trg[1:] != pad_id]。")
    passed = _check(cls, hint, _seq2seq_cases, _library_seq2seq)
    remember("seq2seq", cls, passed)
    return passed


_IMPORTS = "import torch\nfrom torch import nn\n\nfrom seq2seq_lib import Encoded"
register(
    Exercise("encoder", "04", "MyEncoder", check_encoder, EncoderAnswer,
             "import torch\nfrom torch import nn\nfrom torch.nn.utils.rnn import "
             "pack_padded_sequence, pad_packed_sequence\n\nfrom seq2seq_lib import Encoded"),
    Exercise("decoder", "04", "MyDecoder", check_decoder, DecoderAnswer, _IMPORTS),
    Exercise("seq2seq", "04", "MySeq2Seq", check_seq2seq, Seq2SeqAnswer, _IMPORTS),
)
