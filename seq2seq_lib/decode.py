"""Greedy decoding and beam search, batched, in ``eval()`` mode, returning ids, scores, attention."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .interface import reorder_hidden
from .models import Seq2Seq
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
    Each sentence stops at its own ``<eos>``; finished sentences leave the decoder's batch
    (see :func:`_worth_compacting`), and the loop ends when all have stopped.
    """
    _check_max_len(max_len)
    was_training = model.training
    model.train(not eval_mode)
    enc = model.encode(src, src_lens)
    batch, device = src.shape[1], src.device
    hidden = enc.hidden
    inp = torch.full((batch,), sos_id, dtype=torch.long, device=device)
    # one column per step, written at the rows still decoded; a row that left stays <eos>, 0
    chosen = torch.full((batch, max_len + 1), eos_id, dtype=torch.long, device=device)
    logps = torch.zeros((batch, max_len + 1), device=device)
    attns: torch.Tensor | None = None  # [batch, max_len + 1, src_len], from the first attention
    rows = torch.arange(batch, device=device)  # [n]: the sentence of each row decoded now
    finished = torch.zeros(batch, dtype=torch.bool, device=device)  # [n]
    for t in range(max_len + 1):
        state, hidden, attn = model.decoder(inp.unsqueeze(0), hidden, enc)
        logp = model.decoder.project(state[0]).float().log_softmax(-1)  # [n, trg_vocab]
        if t == max_len:  # out of room: a sentence still going is ended with <eos> here
            nxt = torch.full_like(inp, eos_id)
            best_logp = logp[:, eos_id].clamp(min=-1e30)  # [n]
        else:
            best_logp, nxt = logp.max(-1)  # [n]
        chosen[rows, t] = nxt
        logps[rows, t] = torch.where(finished, 0.0, best_logp)
        if attn is not None:
            if attns is None:
                attns = attn.new_zeros((batch, max_len + 1, attn.shape[-1]))
            attns[rows, t] = attn[0]  # [n, src_len]
        finished = finished | (nxt == eos_id)
        n_finished = int(finished.sum())  # the one host read per step
        if n_finished == len(rows):
            break
        inp = nxt
        if _worth_compacting(n_finished, len(rows)):
            keep = (~finished).nonzero().squeeze(1)  # [m]
            rows, finished, inp = rows[keep], finished[keep], inp[keep]
            hidden, enc = reorder_hidden(model.decoder, hidden, keep), enc.select(keep)
    model.train(was_training)
    steps = t + 1
    ids = chosen[:, :steps].tolist()  # [batch, steps]
    scores = logps[:, :steps].sum(1).tolist()
    attn_all = attns[:, :steps].float().cpu() if attns is not None else None
    out = []
    for b in range(batch):
        seq = ids[b]
        n = seq.index(eos_id)  # every sentence ends with <eos>, its own or the forced one
        attention = None
        if attn_all is not None:
            attention = attn_all[b, : n + 1, : int(src_lens[b])]
        out.append(Hypothesis(seq[:n], scores[b], attention))
    return out


def _worth_compacting(n_finished: int, n_rows: int) -> bool:
    """Whether to drop the ``n_finished`` finished rows of the ``n_rows`` in the decoder's batch
    now: once they are an eighth of it. Each drop copies the kept rows' encoder outputs (and on
    a GPU waits for the device); dropping rows sooner than this saved under 1 % of the decoder's
    rows on the HSK test split."""
    return n_finished > 0 and 8 * n_finished >= n_rows


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
    done once it has ``beam_size`` finished hypotheses (as in fairseq), and done sentences
    leave the decoder's batch (see :func:`_worth_compacting`). All of it runs on tensors (see
    :class:`_Beams`); the loop reads one number per step (how many sentences are done?), and
    which ones when they leave; the results come to the host once, at the end.
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
        batch, k = src.shape[1], beam_size
        beams = _Beams(batch, k, max_len, eos_id, src.device)
        # every beam of a sentence starts alike: step 0 decodes one row per sentence, and its
        # results are then copied to the sentence's k rows b * k .. b * k + k - 1
        to_beams = beams.rows_now // k  # [batch * k]: the sentence of each row
        enc = model.encode(src, src_lens)
        hidden = enc.hidden  # [n_layers, batch, hid_dim] for a GRU
        inp = torch.full((batch,), sos_id, dtype=torch.long, device=src.device)
        for t in range(max_len + 1):
            state, hidden, attn = model.decoder(inp.unsqueeze(0), hidden, enc)
            logp = model.decoder.project(state[0]).float().log_softmax(-1)  # [rows, vocab]
            step_attn = None if attn is None else attn[0]  # [rows, src_len]
            if t == 0:  # rows = batch here, n * k from now on
                logp, enc = logp.index_select(0, to_beams), enc.select(to_beams)
                step_attn = None if step_attn is None else step_attn.index_select(0, to_beams)
            parents, inp = beams.step(t, logp, step_attn)
            done = beams.done[beams.sentences]  # [n]: the sentences in the batch now
            n_done = int(done.sum())  # the one host read per step
            if n_done == len(done):
                break
            if _worth_compacting(n_done, len(done)):
                keep = beams.drop_done(done)  # [m * k]: the rows kept, as rows of this batch
                parents, inp, enc = parents[keep], inp[keep], enc.select(keep)
            if t == 0:
                parents = parents // k  # the decoder's rows at step 0 were the sentences
            hidden = reorder_hidden(model.decoder, hidden, parents)  # [.., m * k, ..]
        return beams.hypotheses(src_lens, length_penalty, n_best)
    finally:
        model.train(was_training)


class _Beams:
    """The state of a batched beam search, all in preallocated tensors.

    Row ``b * k + j`` is beam ``j`` of sentence ``b``. The decoder's batch holds the ``n`` sentences
    not yet done (``sentences`` [n], ``rows_now`` [n * k]: their rows, in the batch's order);
    per-sentence state of those is kept in batch order (``scores`` [n, k]), the rest by sentence.
    The live prefixes are never copied: step ``t`` writes column ``t`` of ``words`` (the word
    that slot took) and ``parents`` (the row it extended), both [batch * k, max_len + 1], and of
    ``attn`` [batch * k, max_len + 1, src_len] (what each row looked at); a finished
    hypothesis is a (row, step, log-probability) triple in [batch, 2k] tensors, and its words
    and attention are read back along the parent pointers once, at the end.
    """

    def __init__(self, batch: int, k: int, max_len: int, eos_id: int, device: torch.device):
        self.batch, self.k, self.max_len, self.eos_id = batch, k, max_len, eos_id
        rows = batch * k
        self.words = torch.full((rows, max_len + 1), eos_id, dtype=torch.long, device=device)
        self.parents = torch.zeros((rows, max_len + 1), dtype=torch.long, device=device)
        self.attn: torch.Tensor | None = None  # allocated at the first step that has attention
        self.sentences = torch.arange(batch, device=device)  # [n]
        self.rows_now = torch.arange(rows, device=device)  # [n * k]
        self.beam = torch.arange(k, device=device)  # [k]
        # only the first beam of each sentence is live at the start, so no prefix appears twice
        self.scores = torch.full((batch, k), float("-inf"), device=device)  # [n, k]
        self.scores[:, 0] = 0.0
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

        :param logp: [n * k, vocab] log-probabilities of the next word per row of the batch.
        :param step_attn: [n * k, src_len] the attention of this step, or None.
        :return: the row of the batch each slot extends [n * k] and the word it takes [n * k].
        """
        self.last_step = t
        if step_attn is not None:
            if self.attn is None:
                self.attn = step_attn.new_zeros((self.batch * self.k, self.max_len + 1,
                                                 step_attn.shape[1]))
            self.attn[self.rows_now, t] = step_attn
        if t == self.max_len:  # out of room: every prefix must end here
            forced = torch.full_like(logp, float("-inf"))
            forced[:, self.eos_id] = logp[:, self.eos_id].clamp(min=-1e30)  # even if impossible
            logp = forced
        n, vocab = self.sentences.shape[0], logp.shape[-1]
        cand = (self.scores.reshape(-1, 1) + logp).view(n, -1)  # [n, k * vocab]
        top_scores, top_idx = cand.topk(min(2 * self.k, self.k * vocab), dim=-1)  # [n, c]
        beams = top_idx // vocab  # [n, c]: the beam each candidate extends
        words = top_idx % vocab  # [n, c]
        alive = (top_scores > float("-inf")) & ~self.done[self.sentences].unsqueeze(1)
        is_eos = words == self.eos_id
        rank = torch.arange(top_idx.shape[1], device=logp.device)  # [c]
        rows = self.sentences.unsqueeze(1) * self.k + beams  # [n, c]
        self._finish(alive & is_eos & (rank < self.k), rows, top_scores, t)
        return self._fill_slots(alive & ~is_eos, beams, words, top_scores, t)

    def _finish(self, finish: torch.Tensor, rows: torch.Tensor, scores: torch.Tensor,
                t: int) -> None:
        """Record the candidates marked in ``finish`` [n, c] (of rows ``rows`` [n, c]) as
        finished hypotheses of their sentences."""
        width = self.fin_row.shape[1]  # the last column is a spare, never read
        count = self.fin_count[self.sentences]  # [n]
        pos = count.unsqueeze(1) + finish.long().cumsum(1) - 1  # [n, c]
        slot = torch.where(finish, pos, width - 1)  # the unmarked ones go to the spare column
        flat = (self.sentences.unsqueeze(1) * width + slot).view(-1)  # [n * c]
        self.fin_row.view(-1).scatter_(0, flat, rows.view(-1))
        self.fin_step.view(-1).scatter_(0, flat, torch.full_like(flat, t))
        self.fin_logp.view(-1).scatter_(0, flat, scores.reshape(-1))
        count = count + finish.sum(1)
        self.fin_count[self.sentences] = count
        self.done[self.sentences] = count >= self.k

    def _fill_slots(self, live: torch.Tensor, beams: torch.Tensor, words: torch.Tensor,
                    scores: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``k`` live candidates, in rank order, fill a sentence's ``k`` slots; slots
        left over (a done sentence, a tiny vocabulary) are dead: score -inf, fed ``<eos>``."""
        k, n = self.k, self.sentences.shape[0]
        pos = live.long().cumsum(1) - 1  # [n, c]
        slot = torch.where(live & (pos < k), pos, k)  # the rest go to the spare last column
        new_beams = torch.zeros((n, k + 1), dtype=torch.long, device=beams.device)  # dead: beam 0
        new_words = torch.full_like(new_beams, self.eos_id)
        new_scores = torch.full((n, k + 1), float("-inf"), device=scores.device)
        new_beams.scatter_(1, slot, beams)
        new_words.scatter_(1, slot, words)
        new_scores.scatter_(1, slot, scores)
        self.scores = new_scores[:, :k]
        first = torch.arange(n, device=beams.device).unsqueeze(1) * k  # [n, 1] in the batch
        parents = (first + new_beams[:, :k]).view(-1)  # [n * k]: rows of the batch
        inp = new_words[:, :k].reshape(-1)  # [n * k]
        self.parents[self.rows_now, t] = self.rows_now[parents]
        self.words[self.rows_now, t] = inp
        return parents, inp

    def drop_done(self, done: torch.Tensor) -> torch.Tensor:
        """Let the sentences marked in ``done`` [n] leave the batch.

        :return: the rows kept [m * k], as rows of the batch before (for ``index_select``).
        """
        keep = (~done).nonzero().squeeze(1)  # [m]
        rows = (keep.unsqueeze(1) * self.k + self.beam).view(-1)  # [m * k]
        self.sentences, self.scores = self.sentences[keep], self.scores[keep]
        self.rows_now = self.rows_now[rows]
        return rows

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
