"""Greedy decoding and beam search, batched, in ``eval()`` mode, returning ids, scores, attention."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .models import Encoded, Seq2Seq
from .vocab import Vocab


@dataclass
class Hypothesis:
    """One decoded sentence.

    ``ids``: output ids without ``<sos>``/``<eos>``; ``score``: summed log-probability
    (``<eos>`` included when it was produced), divided by the length penalty in beam search;
    ``attention``: [len(ids) + 1, src_len] (one row per output word and ``<eos>``) or None.
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
    attn_all = torch.stack(attns, dim=1).float().cpu() if attns else None  # [batch, steps, src_len]
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


def gnmt_length_penalty(length: int, alpha: float) -> float:
    """GNMT length penalty ``((5 + length) / 6) ** alpha`` (Wu et al., 2016).

    A hypothesis is ranked by ``log_prob / gnmt_length_penalty(length, alpha)``, where ``length``
    counts its words plus ``<eos>``. ``alpha = 0`` ranks by plain log-probability (which favours
    short outputs); larger values favour longer ones (GNMT used 0.6 to 0.7).
    """
    return ((5.0 + length) / 6.0) ** alpha


def _repeat_encoded(enc: Encoded, k: int) -> Encoded:
    """Each sentence's encoder result repeated ``k`` times, one copy per beam (rows b*k .. b*k+k-1)."""
    return Encoded(enc.outputs.repeat_interleave(k, dim=1),  # [src_len, batch * k, enc_dim]
                   enc.hidden.repeat_interleave(k, dim=1),  # [n_layers, batch * k, hid_dim]
                   enc.mask.repeat_interleave(k, dim=0))  # [batch * k, src_len]


@torch.no_grad()
def beam_search(model: Seq2Seq, src: torch.Tensor, src_lens: torch.Tensor, beam_size: int = 5,
                max_len: int = 50, length_penalty: float = 0.6, n_best: int = 1,
                sos_id: int = Vocab.sos_id, eos_id: int = Vocab.eos_id,
                eval_mode: bool = True) -> list[list[Hypothesis]]:
    """Beam search for a whole batch at once: keep the ``beam_size`` best prefixes per sentence.

    :param src: [src_len, batch]; :param src_lens: [batch].
    :param beam_size: prefixes kept per sentence; 1 gives exactly the greedy output.
    :param max_len: most output words per sentence; a prefix that reaches it is ended with
        ``<eos>``.
    :param length_penalty: the exponent alpha of the GNMT length penalty (see
        :func:`gnmt_length_penalty`); 0 ranks by plain summed log-probability.
    :param n_best: hypotheses returned per sentence (at most ``beam_size``).
    :return: per sentence, ``n_best`` :class:`Hypothesis` objects, best first; their ``score``
        is the length-penalised log-probability.

    At every step each live prefix is extended by every word, and the ``2 * beam_size`` best
    candidates of a sentence are read in order: an ``<eos>`` among the first ``beam_size``
    finishes a hypothesis, the other words fill the ``beam_size`` live slots. A sentence is
    done once it has ``beam_size`` finished hypotheses (as in fairseq).
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"n_best must be between 1 and beam_size ({beam_size}), got {n_best}")
    was_training = model.training
    model.train(not eval_mode)
    device, batch, k = src.device, src.shape[1], beam_size
    enc = _repeat_encoded(model.encode(src, src_lens), k)
    hidden = enc.hidden  # [n_layers, batch * k, hid_dim]
    inp = torch.full((batch * k,), sos_id, dtype=torch.long, device=device)
    # only the first beam of each sentence is live at the start, so no prefix appears twice
    beam_scores = torch.full((batch, k), float("-inf"), device=device)
    beam_scores[:, 0] = 0.0
    prefixes = torch.zeros(batch * k, 0, dtype=torch.long, device=device)  # [batch * k, t]
    attn_hist: torch.Tensor | None = None  # [batch * k, t, src_len]
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    done = [False] * batch
    for t in range(max_len + 1):
        state, hidden, attn = model.decoder(inp.unsqueeze(0), hidden, enc)
        logp = model.decoder.project(state[0]).float().log_softmax(-1)  # [batch * k, vocab]
        if t == max_len:  # out of room: every prefix must end here
            forced = torch.full_like(logp, float("-inf"))
            forced[:, eos_id] = logp[:, eos_id].clamp(min=-1e30)  # even if <eos> was impossible
            logp = forced
        vocab = logp.shape[-1]
        cand = (beam_scores.view(-1, 1) + logp).view(batch, k * vocab)  # [batch, k * vocab]
        top_scores, top_idx = cand.topk(min(2 * k, k * vocab), dim=-1)  # [batch, 2k]
        step_attn = attn[0] if attn is not None else None  # [batch * k, src_len]
        rows, words, scores = [], [], []
        for b, (s_row, i_row) in enumerate(zip(top_scores.tolist(), top_idx.tolist())):
            kept = 0
            if not done[b]:
                for rank, (score, idx) in enumerate(zip(s_row, i_row)):
                    if score == float("-inf") or kept == k:
                        break
                    row, word = b * k + idx // vocab, idx % vocab
                    if word != eos_id:
                        rows.append(row)
                        words.append(word)
                        scores.append(score)
                        kept += 1
                    elif rank < k:
                        finished[b].append(_finish(prefixes, attn_hist, step_attn, row, score,
                                                   int(src_lens[b]), length_penalty))
                done[b] = len(finished[b]) >= k
            # a done sentence (or a too-small vocabulary) leaves dead slots: -inf, fed <eos>
            rows += [b * k] * (k - kept)
            words += [eos_id] * (k - kept)
            scores += [float("-inf")] * (k - kept)
        if all(done):
            break
        index = torch.tensor(rows, device=device)  # [batch * k]: the prefix each slot extends
        inp = torch.tensor(words, device=device)  # [batch * k]
        prefixes = torch.cat([prefixes[index], inp.unsqueeze(1)], dim=1)  # [batch * k, t + 1]
        hidden = hidden[:, index]  # [n_layers, batch * k, hid_dim]
        if step_attn is not None:
            step = step_attn[index].unsqueeze(1)  # [batch * k, 1, src_len]
            attn_hist = step if attn_hist is None else torch.cat([attn_hist[index], step], dim=1)
        beam_scores = torch.tensor(scores, device=device).view(batch, k)
    model.train(was_training)
    return [sorted(hyps, key=lambda h: h.score, reverse=True)[:n_best] for hyps in finished]


def _finish(prefixes: torch.Tensor, attn_hist: torch.Tensor | None, step_attn: torch.Tensor | None,
            row: int, log_prob: float, src_len: int, alpha: float) -> Hypothesis:
    """The hypothesis made of slot ``row``'s prefix followed by ``<eos>``."""
    ids = prefixes[row].tolist()
    attention = None
    if step_attn is not None:
        last = step_attn[row : row + 1]  # [1, src_len]
        steps = last if attn_hist is None else torch.cat([attn_hist[row], last])
        attention = steps[:, :src_len].float().cpu()  # [len(ids) + 1, src_len]
    return Hypothesis(ids, log_prob / gnmt_length_penalty(len(ids) + 1, alpha), attention)
