"""Exercises that check themselves: one module per notebook, over a shared harness.

A notebook's exercise cell defines one function or class (``my_build_vocab``, ``MyEncoder``, ...;
see :data:`EXERCISES`) and the next cell calls its checker: ``check_build_vocab(my_build_vocab)``.
Each checker runs the learner's code and the library's reference on a few small, nasty cases
(padding, a sentence of length 1, ties, an empty vocabulary) and prints, in Chinese, the first
case that fails with what was expected and what came back, or one short line when all pass.
:func:`stub_source` gives the unsolved cell, :func:`answer_source` a self-contained reference
solution with the same name, so a test can swap one for the other and expect a pass.
"""

from .display import Folded, show_answer, show_folded
from .harness import (
    EXERCISES,
    Exercise,
    answer_source,
    exercise_for_cell,
    get_exercise,
    stub_source,
)
from .nb02 import check_build_vocab
from .nb03 import check_pad_batch
from .nb04 import check_gru_step
from .nb04_model import check_decoder, check_encoder, check_seq2seq
from .nb05 import check_masked_loss, learner_model, train_learner_model
from .nb05_train import check_train_epoch
from .nb06 import (
    bleu_counts,
    bleu_from_counts,
    bleu_from_scratch,
    brevity_penalty,
    check_bleu,
    check_greedy_decode,
    sacrebleu_on_tokens,
)
from .nb06_translate import check_translate_sentence
from .nb07 import check_masked_softmax
from .nb07_attention import check_additive_attention, check_attention_decoder
from .nb08 import check_beam_step
from .nb09 import check_apply_bpe, check_learn_bpe
from .nb10 import check_causal_mask, check_scaled_dot_product_attention

__all__ = [
    # the registry and the harness
    "EXERCISES", "Exercise", "Folded", "answer_source", "exercise_for_cell", "get_exercise",
    "show_answer", "show_folded", "stub_source",
    # the checkers, in notebook order
    "check_build_vocab", "check_pad_batch", "check_gru_step", "check_encoder", "check_decoder",
    "check_seq2seq", "check_masked_loss", "check_train_epoch", "check_greedy_decode",
    "check_bleu", "check_translate_sentence", "check_masked_softmax", "check_additive_attention",
    "check_attention_decoder", "check_beam_step", "check_learn_bpe", "check_apply_bpe",
    "check_scaled_dot_product_attention", "check_causal_mask",
    # what notebooks 05 and 06 use besides their checkers
    "learner_model", "train_learner_model", "bleu_counts", "bleu_from_counts",
    "bleu_from_scratch", "brevity_penalty", "sacrebleu_on_tokens",
]
