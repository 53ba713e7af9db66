"""seq2seq_lib: the helper library of the seq2seq-zh-en course.

Read it top to bottom in the order of the notebooks: data → tokenize → vocab → batching →
models (attention, builders) → train → trainer → decode → translator, with metrics and plots
beside them.
"""

__version__ = "0.1.0"

import os as _os

# On Apple's MPS, let an operator without an MPS kernel run on the CPU instead of stopping the
# run; PyTorch reads this once, when it loads, so it is set before torch is imported.
_os.environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")

from .attention import AdditiveAttention, AttentionDecoder, LuongAttention
from .batching import (
    Batch,
    BucketBatchSampler,
    TranslationDataset,
    collate,
    make_loader,
    padding_share,
)
from .builders import build_model
from .checkpoint import (
    CheckpointError,
    CheckpointInfo,
    load_checkpoint,
    run_history,
    save_checkpoint,
)
from .config import DataConfig, ModelConfig, TrainConfig
from .data import (
    Corpus,
    CorpusError,
    Splits,
    load_corpus,
    load_hsk,
    read_parallel,
    read_tsv,
    split_pairs,
)
from .decode import Hypothesis, beam_search, gnmt_length_penalty, greedy_decode, greedy_trace
from .device import choose_device, describe_device, resolve_precision
from .metrics import bleu_signature, corpus_bleu, perplexity
from .models import Decoder, Encoded, Encoder, Seq2Seq, count_parameters
from .pipeline import PreparedData, prepare_data, tokenize_pairs
from .plots import cjk_font, plot_attention, plot_history, use_cjk_font
from .script import to_script
from .tokenize import add_word, detokenize_en, load_user_dict, tokenize_en, tokenize_zh
from .train import TrainingError, batch_loss, evaluate_loss, set_seed
from .trainer import FitResult, Trainer, TrainState, fit
from .translator import Translator
from .truecase import TrueCaser
from .vocab import SPECIALS, Vocab

__all__ = [
    "AdditiveAttention", "AttentionDecoder", "LuongAttention", "beam_search", "cjk_font",
    "gnmt_length_penalty", "plot_attention", "use_cjk_font",
    "Batch", "BucketBatchSampler", "CheckpointError", "CheckpointInfo", "Corpus", "CorpusError",
    "DataConfig", "Decoder", "Encoded", "Encoder", "FitResult", "Hypothesis", "ModelConfig",
    "PreparedData", "SPECIALS", "Seq2Seq", "Splits", "TrainConfig", "TrainingError",
    "TranslationDataset", "Translator", "Vocab", "add_word", "batch_loss", "bleu_signature",
    "build_model", "choose_device", "collate", "corpus_bleu", "count_parameters", "detokenize_en",
    "evaluate_loss", "fit", "greedy_decode", "greedy_trace", "load_checkpoint", "load_corpus",
    "load_hsk", "load_user_dict", "make_loader", "padding_share", "perplexity", "plot_history", "run_history",
    "prepare_data", "read_parallel", "read_tsv", "save_checkpoint", "set_seed", "split_pairs",
    "tokenize_en", "tokenize_pairs", "tokenize_zh", "describe_device", "resolve_precision",
    "TrueCaser", "Trainer", "TrainState", "to_script",
]
