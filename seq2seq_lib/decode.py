"""Greedy decoding, batched, in ``eval()`` mode, returning token ids, scores and attention."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .models import Seq2Seq
from .vocab import Vocab


@dataclass
class Hypothesis:
    """One decoded sentence.

    ``ids``: output ids without ``<sos>``/``<eos>``; ``score``: summed log-probability
    (``<eos>`` included when it was produced); ``attention``: [len(ids) + 1, src_len] or None.
    """

    ids: list[int]
    score: float
    attention: torch.Tensor | None = None


@torch.no_grad()
def greedy_decode(model: Seq2Seq, src: torch.Tensor, src_lens: torch.Tensor, max_len: int = 50,
                  sos_id: int = Vocab.sos_id, eos_id: int = Vocab.eos_id,
                  eval_mode: bool = True) -> list[Hypothesis]:
    """Pick the most probable word at every step, for a whole batch at once.

    :param src: [src_len, batch]; :param src_lens: [batch].
    :param max_len: most output words per sentence (``<eos>`` not counted).
    :param eval_mode: switch dropout off while decoding (leave True; False shows the lesson's bug).
    Each sentence stops at its own ``<eos>``; the loop ends when all have stopped.
    """
    was_training = model.training
    model.train(not eval_mode)
    enc = model.encode(src, src_lens)
    batch = src.shape[1]
    hidden = enc.hidden
    inp = torch.full((batch,), sos_id, dtype=torch.long, device=src.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=src.device)
    chosen, logps, attns = [], [], []
    for _ in range(max_len + 1):
        state, hidden, attn = model.decoder(inp.unsqueeze(0), hidden, enc)
        logp = model.decoder.project(state[0]).float().log_softmax(-1)  # [batch, trg_vocab]
        best_logp, nxt = logp.max(-1)  # [batch]
        chosen.append(nxt)
        logps.append(torch.where(finished, 0.0, best_logp))
        if attn is not None:
            attns.append(attn[0])  # [batch, src_len]
        finished = finished | (nxt == eos_id)
        if bool(finished.all()):
            break
        inp = nxt
    model.train(was_training)
    ids = torch.stack(chosen, dim=1).tolist()  # [batch, steps]
    scores = torch.stack(logps, dim=1).sum(1).tolist()
    attn_all = torch.stack(attns, dim=1).cpu() if attns else None  # [batch, steps, src_len]
    out = []
    for b in range(batch):
        seq = ids[b]
        n = seq.index(eos_id) if eos_id in seq else min(len(seq), max_len)
        attention = None
        if attn_all is not None:
            attention = attn_all[b, : n + 1, : int(src_lens[b])]
        out.append(Hypothesis(seq[:n], scores[b], attention))
    return out


@torch.no_grad()
def greedy_trace(model: Seq2Seq, src: torch.Tensor, src_lens: torch.Tensor, k: int = 5,
                 max_len: int = 50, sos_id: int = Vocab.sos_id, eos_id: int = Vocab.eos_id
                 ) -> list[list[tuple[int, float]]]:
    """Greedy decoding of one sentence that records the top-``k`` (id, probability) at each step.

    :param src: [src_len, 1]. The first entry of each step's list is the word that was chosen.
    """
    if src.shape[1] != 1:
        raise ValueError(f"greedy_trace decodes one sentence; got a batch of {src.shape[1]}")
    was_training = model.training
    model.eval()
    enc = model.encode(src, src_lens)
    hidden, inp = enc.hidden, torch.tensor([sos_id], device=src.device)
    steps: list[list[tuple[int, float]]] = []
    for _ in range(max_len + 1):
        state, hidden, _ = model.decoder(inp.unsqueeze(0), hidden, enc)
        probs = model.decoder.project(state[0]).float().softmax(-1)[0]  # [trg_vocab]
        top_p, top_i = probs.topk(k)
        steps.append(list(zip(top_i.tolist(), top_p.tolist())))
        if int(top_i[0]) == eos_id:
            break
        inp = top_i[:1]
    model.train(was_training)
    return steps
