"""Notebook 08's exercise: one beam-search step with the GNMT length penalty."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..vocab import Vocab
from .harness import Exercise, _Case, _case, _check, register

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


register(Exercise("beam_step", "08", "my_beam_step", check_beam_step, answer_beam_step,
                  "import torch"))
