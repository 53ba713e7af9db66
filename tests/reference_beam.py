"""The beam search of seq2seq_lib before it was vectorised, kept as the reference that the
vectorised :func:`seq2seq_lib.decode.beam_search` must reproduce (ids, scores, n-best, attention).

It reads the ``2 * beam_size`` best candidates of each sentence in a Python loop, and grows the
prefixes and the attention history with ``torch.cat`` at every step. Tests only; not a public API.
"""

from __future__ import annotations

import torch

from seq2seq_lib.decode import Hypothesis, gnmt_length_penalty
from seq2seq_lib.models import Encoded, Seq2Seq
from seq2seq_lib.vocab import Vocab


def _repeat_encoded(enc: Encoded, k: int) -> Encoded:
    """Each sentence's encoder result repeated ``k`` times, one copy per beam (rows b*k .. b*k+k-1)."""
    return Encoded(enc.outputs.repeat_interleave(k, dim=1),  # [src_len, batch * k, enc_dim]
                   enc.hidden.repeat_interleave(k, dim=1),  # [n_layers, batch * k, hid_dim]
                   enc.mask.repeat_interleave(k, dim=0))  # [batch * k, src_len]


@torch.no_grad()
def reference_beam_search(model: Seq2Seq, src: torch.Tensor, src_lens: torch.Tensor,
                          beam_size: int = 5, max_len: int = 50, length_penalty: float = 0.6,
                          n_best: int = 1, sos_id: int = Vocab.sos_id, eos_id: int = Vocab.eos_id,
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
