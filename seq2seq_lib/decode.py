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
    A sentence cut at ``max_len`` words is ended with ``<eos>`` there: its score includes the
    log-probability of that ``<eos>`` (never that of a word it dropped), in greedy decoding as
    in beam search, so ``beam_size=1`` gives greedy's scores too.
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
    _check_max_len(max_len)
    was_training = model.training
    model.train(not eval_mode)
    enc = model.encode(src, src_lens)
    batch = src.shape[1]
    hidden = enc.hidden
    inp = torch.full((batch,), sos_id, dtype=torch.long, device=src.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=src.device)
    chosen, logps, attns = [], [], []
    for t in range(max_len + 1):
        state, hidden, attn = model.decoder(inp.unsqueeze(0), hidden, enc)
        logp = model.decoder.project(state[0]).float().log_softmax(-1)  # [batch, trg_vocab]
        if t == max_len:  # out of room: a sentence still going is ended with <eos> here
            nxt = torch.full_like(inp, eos_id)
            best_logp = logp[:, eos_id].clamp(min=-1e30)  # [batch]
        else:
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
        n = seq.index(eos_id)  # every sentence ends with <eos>, its own or the forced one
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


def _check_max_len(max_len: int) -> None:
    if max_len < 0:
        raise ValueError(f"max_len must be >= 0, got {max_len}")


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
    :param n_best: hypotheses returned per sentence (at most ``beam_size``; 1 when ``max_len``
        is 0, since the empty sentence is then the only output).
    :return: per sentence, ``n_best`` :class:`Hypothesis` objects, best first (fewer only when
        the model gives fewer outputs a non-zero probability); their ``score`` is the
        length-penalised log-probability.

    At every step each live prefix is extended by every word, and the ``2 * beam_size`` best
    candidates of a sentence are read in order: an ``<eos>`` among the first ``beam_size``
    finishes a hypothesis, the other words fill the ``beam_size`` live slots. A sentence is
    done once it has ``beam_size`` finished hypotheses (as in fairseq). All of it runs on
    tensors (see :class:`_Beams`); the loop reads one flag per step (are all sentences done?)
    and the results come to the host once, at the end.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"n_best must be between 1 and beam_size ({beam_size}), got {n_best}")
    _check_max_len(max_len)
    if max_len == 0 and n_best > 1:
        raise ValueError(f"n_best must be 1 when max_len is 0 (the empty sentence is the only "
                         f"output), got {n_best}")
    was_training = model.training
    model.train(not eval_mode)
    try:
        enc = _repeat_encoded(model.encode(src, src_lens), beam_size)
        beams = _Beams(src.shape[1], beam_size, max_len, eos_id, src.device)
        hidden = enc.hidden  # [n_layers, batch * k, hid_dim]
        inp = torch.full((beams.rows,), sos_id, dtype=torch.long, device=src.device)
        for t in range(max_len + 1):
            state, hidden, attn = model.decoder(inp.unsqueeze(0), hidden, enc)
            logp = model.decoder.project(state[0]).float().log_softmax(-1)  # [batch * k, vocab]
            parents, inp = beams.step(t, logp, None if attn is None else attn[0])
            if bool(beams.done.all()):  # the one host read per step
                break
            hidden = hidden.index_select(1, parents)  # [n_layers, batch * k, hid_dim]
        return beams.hypotheses(src_lens, length_penalty, n_best)
    finally:
        model.train(was_training)


class _Beams:
    """The state of a batched beam search, all in preallocated tensors (rows ``b * k + j``).

    The live prefixes are never copied: step ``t`` writes column ``t`` of ``words`` (the word
    that slot ``j`` took) and ``parents`` (the row it extended), both [batch * k, max_len + 1],
    and of ``attn`` [batch * k, max_len + 1, src_len] (what each row looked at); a finished
    hypothesis is a (row, step, log-probability) triple in [batch, 2k] tensors, and its words
    and attention are read back along the parent pointers once, at the end.
    """

    def __init__(self, batch: int, k: int, max_len: int, eos_id: int, device: torch.device):
        self.batch, self.k, self.max_len, self.eos_id = batch, k, max_len, eos_id
        self.rows = batch * k
        self.words = torch.full((self.rows, max_len + 1), eos_id, dtype=torch.long, device=device)
        self.parents = torch.zeros((self.rows, max_len + 1), dtype=torch.long, device=device)
        self.attn: torch.Tensor | None = None  # allocated at the first step that has attention
        # only the first beam of each sentence is live at the start, so no prefix appears twice
        self.scores = torch.full((batch, k), float("-inf"), device=device)  # [batch, k]
        self.scores[:, 0] = 0.0
        self.first_row = torch.arange(batch, device=device).unsqueeze(1) * k  # [batch, 1]
        # a sentence not yet done has < k finished and adds at most k per step: 2k slots suffice
        cap = 2 * k
        self.fin_row = torch.zeros((batch, cap + 1), dtype=torch.long, device=device)
        self.fin_step = torch.zeros((batch, cap + 1), dtype=torch.long, device=device)
        self.fin_logp = torch.full((batch, cap + 1), float("-inf"), device=device)
        self.fin_count = torch.zeros(batch, dtype=torch.long, device=device)
        self.done = torch.zeros(batch, dtype=torch.bool, device=device)
        self.last_step = 0

    def step(self, t: int, logp: torch.Tensor, step_attn: torch.Tensor | None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """Extend every live prefix by every word and keep the best, as the docstring of
        :func:`beam_search` says.

        :param logp: [batch * k, vocab] log-probabilities of the next word per row.
        :param step_attn: [batch * k, src_len] the attention of this step, or None.
        :return: the row each slot extends [batch * k] and the word it takes [batch * k].
        """
        self.last_step = t
        if step_attn is not None:
            if self.attn is None:
                self.attn = step_attn.new_zeros((self.rows, self.max_len + 1, step_attn.shape[1]))
            self.attn[:, t] = step_attn
        if t == self.max_len:  # out of room: every prefix must end here
            forced = torch.full_like(logp, float("-inf"))
            forced[:, self.eos_id] = logp[:, self.eos_id].clamp(min=-1e30)  # even if impossible
            logp = forced
        vocab = logp.shape[-1]
        cand = (self.scores.reshape(-1, 1) + logp).view(self.batch, -1)  # [batch, k * vocab]
        top_scores, top_idx = cand.topk(min(2 * self.k, self.k * vocab), dim=-1)  # [batch, c]
        rows = self.first_row + top_idx // vocab  # [batch, c]
        words = top_idx % vocab  # [batch, c]
        alive = (top_scores > float("-inf")) & ~self.done.unsqueeze(1)  # [batch, c]
        is_eos = words == self.eos_id
        rank = torch.arange(top_idx.shape[1], device=logp.device)  # [c]
        self._finish(alive & is_eos & (rank < self.k), rows, top_scores, t)
        return self._fill_slots(alive & ~is_eos, rows, words, top_scores, t)

    def _finish(self, finish: torch.Tensor, rows: torch.Tensor, scores: torch.Tensor,
                t: int) -> None:
        """Record the candidates marked in ``finish`` [batch, c] as finished hypotheses."""
        cap = self.fin_row.shape[1] - 1
        pos = self.fin_count.unsqueeze(1) + finish.long().cumsum(1) - 1  # [batch, c]
        slot = torch.where(finish, pos, cap)  # the unmarked ones go to the spare last column
        self.fin_row.scatter_(1, slot, rows)
        self.fin_step.scatter_(1, slot, torch.full_like(rows, t))
        self.fin_logp.scatter_(1, slot, scores)
        self.fin_count += finish.sum(1)
        self.done |= self.fin_count >= self.k

    def _fill_slots(self, live: torch.Tensor, rows: torch.Tensor, words: torch.Tensor,
                    scores: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``k`` live candidates, in rank order, fill a sentence's ``k`` slots; slots
        left over (a done sentence, a tiny vocabulary) are dead: score -inf, fed ``<eos>``."""
        k = self.k
        pos = live.long().cumsum(1) - 1  # [batch, c]
        slot = torch.where(live & (pos < k), pos, k)  # the rest go to the spare last column
        new_rows = self.first_row.expand(-1, k + 1).clone()  # [batch, k + 1]
        new_words = torch.full_like(new_rows, self.eos_id)
        new_scores = torch.full((self.batch, k + 1), float("-inf"), device=scores.device)
        new_rows.scatter_(1, slot, rows)
        new_words.scatter_(1, slot, words)
        new_scores.scatter_(1, slot, scores)
        self.scores = new_scores[:, :k]
        parents, inp = new_rows[:, :k].reshape(-1), new_words[:, :k].reshape(-1)  # [batch * k]
        self.parents[:, t] = parents
        self.words[:, t] = inp
        return parents, inp

    def _trace_back(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Words [batch, 2k, last_step] and attention [batch, 2k, last_step + 1, src_len] (or
        None) of every finished hypothesis, read along the parent pointers."""
        cur = self.fin_row[:, :-1].reshape(-1)  # [n]: the row each hypothesis ended in
        ends = self.fin_step[:, :-1].reshape(-1)  # [n]: the step it ended at (= its length)
        n, last = cur.shape[0], self.last_step
        ids = torch.full((n, last), self.eos_id, dtype=torch.long, device=cur.device)
        attn = None
        if self.attn is not None:
            attn = self.attn.new_zeros((n, last + 1, self.attn.shape[-1]))
        for j in range(last, -1, -1):  # invariant: cur is the row at step j where ends >= j
            active = ends >= j  # [n]
            if attn is not None:
                attn[:, j] = torch.where(active.unsqueeze(1), self.attn[cur, j], 0)
            if j > 0:
                ids[:, j - 1] = torch.where(active, self.words[cur, j - 1], self.eos_id)
                cur = torch.where(active, self.parents[cur, j - 1], cur)
        shape = (self.batch, self.fin_row.shape[1] - 1)
        return ids.view(*shape, last), None if attn is None else attn.view(*shape, *attn.shape[1:])

    def hypotheses(self, src_lens: torch.Tensor, alpha: float, n_best: int
                   ) -> list[list[Hypothesis]]:
        """The ``n_best`` finished hypotheses of each sentence, best first (one host transfer)."""
        ids, attn = self._trace_back()
        ids, ends = ids.cpu().tolist(), self.fin_step.cpu().tolist()
        logps, counts = self.fin_logp.cpu().tolist(), self.fin_count.cpu().tolist()
        attn = None if attn is None else attn.float().cpu()
        lens = src_lens.tolist()
        out = []
        for b in range(self.batch):
            hyps = []
            for i in range(counts[b]):  # in the order they finished, as ties keep it
                length = ends[b][i]
                score = logps[b][i] / gnmt_length_penalty(length + 1, alpha)
                weights = None if attn is None else attn[b, i, : length + 1, : lens[b]]
                hyps.append(Hypothesis(ids[b][i][:length], score, weights))
            out.append(sorted(hyps, key=lambda h: h.score, reverse=True)[:n_best])
        return out
