"""The course's training recipe on top of the :class:`~seq2seq_lib.trainer.Trainer`: a seeded new
model, this process's loaders, validation BLEU, and :func:`train_model`, which the command line,
the bench and the notebooks (through ``course.train_translator``) all train with.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from .batching import make_loader, sorted_loader
from .builders import build_model
from .checkpoint import CheckpointInfo
from .config import DataConfig, ModelConfig, TrainConfig
from .device import PrecisionChoice, choose_device
from .metrics import corpus_bleu
from .models import Seq2Seq
from .parallel import SINGLE, DistContext
from .pipeline import PreparedData
from .tokenize import detokenize_output
from .train import set_seed
from .trainer import FitResult, fit
from .translator import decode_ids
from .vocab import Vocab

VALID_BATCH_SIZE = 256  # evaluation only: larger batches are faster and change nothing


def new_model(data: PreparedData, model_cfg: ModelConfig, seed: int = 0) -> Seq2Seq:
    """A freshly initialised model sized for ``data``'s vocabularies (seeded, so a run repeats;
    every training process starts from the same weights)."""
    set_seed(seed)
    return build_model(model_cfg, len(data.src_vocab), len(data.trg_vocab),
                       pad_id=data.src_vocab.pad_id)


def make_loaders(data: PreparedData, train_cfg: TrainConfig, dist: DistContext = SINGLE,
                 pin_memory: bool = False) -> tuple[DataLoader, DataLoader]:
    """The training loader (length buckets, reshuffled every epoch) and the validation loader
    (sorted by length: fixed, and hardly any padding).

    With several processes each gets its share: its part of every step's batches (the same
    number for all; see :class:`~seq2seq_lib.batching.BucketBatchSampler`) and every
    ``world_size``-th validation pair. ``pin_memory``: for a CUDA device.
    """
    train_loader = make_loader(data.train, train_cfg.batch_size, bucket=train_cfg.bucket,
                               seed=train_cfg.seed, num_replicas=dist.world_size, rank=dist.rank,
                               accumulate=train_cfg.accumulate, pin_memory=pin_memory)
    # iterating it draws no number from torch's global generator (dropout's), so validating
    # changes nothing in training, and a mid-epoch resume stays exact
    return train_loader, sorted_loader(data.valid, VALID_BATCH_SIZE, dist.world_size, dist.rank,
                                       pin_memory)


class GreedyBleu:
    """Greedy-decoding BLEU of a model on fixed validation pairs: a validation metric.

    :param sources: source id tensors (with ``<sos>``/``<eos>``), e.g. ``data.valid.src``.
    :param references: the English sentences, one per source.
    :param lowercase: compare case-insensitively (the model learned lower-cased English).
    Several processes decode a share each and put the translations together, so every process
    computes the same score.
    """

    def __init__(self, sources: Sequence[torch.Tensor], references: Sequence[str],
                 trg_vocab: Vocab, lowercase: bool = True, max_len: int = 50,
                 batch_size: int = 128):
        if len(sources) != len(references):
            raise ValueError(f"{len(sources)} sources but {len(references)} references")
        self.sources, self.references = list(sources), list(references)
        self.trg_vocab, self.lowercase = trg_vocab, lowercase
        self.max_len, self.batch_size = max_len, batch_size

    @classmethod
    def from_data(cls, data: PreparedData, sample: int, seed: int = 0,
                  lowercase: bool = True) -> GreedyBleu:
        """On a seeded sample of ``sample`` validation pairs (all of them if there are fewer).

        ``data`` is prepared in memory or a preprocessed cache (which keeps the raw text of its
        held-out pairs).
        """
        n = len(data.valid)
        keep = range(n) if sample >= n else sorted(random.Random(seed).sample(range(n), sample))
        pairs = data.pairs("valid") if hasattr(data, "pairs") else data.splits.valid
        return cls([data.valid[i][0] for i in keep], [pairs[i][1] for i in keep],
                   data.trg_vocab, lowercase)

    def translate(self, model: Seq2Seq, sources: Sequence[torch.Tensor],
                  precision: PrecisionChoice | None = None) -> list[str]:
        """Greedy translations of ``sources``, decoded in length-sorted batches as the
        :class:`~seq2seq_lib.translator.Translator` decodes (:func:`decode_ids`)."""
        hyps = decode_ids(model, sources, self.max_len, self.batch_size, precision)
        return [detokenize_output(self.trg_vocab.decode(h[0].ids), self.trg_vocab,
                                  capitalize=self.lowercase) for h in hyps]

    def __call__(self, model: nn.Module, dist: DistContext = SINGLE,
                 precision: PrecisionChoice | None = None) -> float:
        mine = list(range(dist.rank, len(self.sources), dist.world_size))
        hyps = self.translate(model, [self.sources[i] for i in mine], precision)
        translations = [""] * len(self.sources)
        for part in dist.gather(list(zip(mine, hyps))):
            for i, hyp in part:
                translations[i] = hyp
        return corpus_bleu(translations, self.references, lowercase=self.lowercase).score


def train_model(data: PreparedData, data_cfg: DataConfig, model_cfg: ModelConfig,
                train_cfg: TrainConfig, *, dist: DistContext = SINGLE,
                **fit_kwargs: Any) -> tuple[Seq2Seq, FitResult]:
    """The course's training recipe: a seeded new model, :func:`make_loaders`, :func:`fit`
    (with :class:`GreedyBleu` on ``train_cfg.valid_bleu_sample`` validation pairs when asked).

    :param fit_kwargs: passed on to :func:`~seq2seq_lib.trainer.fit` (``callbacks``, ``hooks``,
        ``stop``, ``loss_fn``, ``progress``, ``device``, ``resume_from``).
    :return: the model, holding the best weights, and what ``fit`` reported. Checkpoints are
        written where ``train_cfg`` says.
    """
    model = new_model(data, model_cfg, train_cfg.seed)
    device = fit_kwargs.get("device") or choose_device(train_cfg.device, verbose=False)
    fit_kwargs["device"] = device
    train_loader, valid_loader = make_loaders(data, train_cfg, dist, device.type == "cuda")
    info = CheckpointInfo(data.src_vocab, data.trg_vocab, data_cfg, model_cfg, data.truecaser)
    if train_cfg.valid_bleu_sample and fit_kwargs.get("valid_bleu") is None:
        fit_kwargs["valid_bleu"] = GreedyBleu.from_data(data, train_cfg.valid_bleu_sample,
                                                        train_cfg.seed, data_cfg.lowercase)
    result = fit(model, train_loader, valid_loader, train_cfg, info, dist=dist, **fit_kwargs)
    return model, result
