"""The bundle a learner saves and loads: model, both vocabularies, tokenizer settings, configs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from sacrebleu.metrics import BLEUScore

from .batching import collate
from .builders import build_model
from .checkpoint import CheckpointInfo, load_checkpoint, save_checkpoint
from .config import DataConfig, ModelConfig, TrainConfig
from .data import Pair
from .decode import Hypothesis, beam_search, greedy_decode
from .device import PrecisionChoice, autocast, choose_device, resolve_precision
from .metrics import corpus_bleu
from .models import Seq2Seq
from .script import to_script
from .tokenize import check_tokens, detokenize_output, source_tokens
from .truecase import TrueCaser
from .vocab import EOS, SOS, Vocab


def decode_ids(model: Seq2Seq, sources: Sequence[torch.Tensor], max_len: int = 50,
               batch_size: int = 128, precision: PrecisionChoice | None = None,
               beam_size: int = 1, n_best: int = 1, length_penalty: float = 0.6,
               eval_mode: bool = True, pad_id: int = Vocab.pad_id) -> list[list[Hypothesis]]:
    """Decode source id tensors in batches of similar length, on the model's device.

    :param sources: one id tensor per sentence, with ``<sos>``/``<eos>``: [src_len] each.
    :param batch_size: sentences per batch, divided by ``beam_size`` (a beam multiplies the
        decoder's batch).
    :param precision: run under this precision's autocast (default fp32).
    :return: up to ``n_best`` hypotheses per source, best first, in input order: greedy
        decoding when ``beam_size == n_best == 1``, else :func:`~seq2seq_lib.decode.beam_search`.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    device = next(model.parameters()).device
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    out: list[list[Hypothesis]] = [[] for _ in sources]
    rows = max(1, batch_size // beam_size)
    for start in range(0, len(order), rows):
        idx = order[start : start + rows]
        batch = collate([(sources[i], torch.tensor([Vocab.sos_id])) for i in idx], pad_id)
        src = batch.src.to(device)  # [src_len, rows]
        with autocast(device, precision or PrecisionChoice("fp32", "default")):
            if beam_size == 1 and n_best == 1:
                hyps = [[h] for h in greedy_decode(model, src, batch.src_lens, max_len,
                                                   eval_mode=eval_mode)]
            else:
                hyps = beam_search(model, src, batch.src_lens, beam_size, max_len,
                                   length_penalty, n_best, eval_mode=eval_mode)
        for i, hyp in zip(idx, hyps):
            out[i] = hyp
    return out


class Translator:
    """Chinese sentence in, English sentence out.

    >>> tr = Translator.from_checkpoint("checkpoints/demo.pt")   # doctest: +SKIP
    >>> tr.translate("我喜欢学习机器学习。")                       # doctest: +SKIP
    """

    def __init__(self, model: Seq2Seq, src_vocab: Vocab, trg_vocab: Vocab,
                 data_cfg: DataConfig, model_cfg: ModelConfig,
                 device: torch.device | str | None = None, truecaser: TrueCaser | None = None,
                 precision: str = "auto"):
        """:param truecaser: restores names and days in lower-cased output (from training).
        :param precision: decode under autocast: ``auto`` (default: bf16 where native), ``fp32``,
            ``bf16`` or ``fp16``.
        """
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(self.device)
        self.src_vocab, self.trg_vocab = src_vocab, trg_vocab
        self.data_cfg, self.model_cfg = data_cfg, model_cfg
        self.truecaser = truecaser
        self.precision: PrecisionChoice = resolve_precision(precision, self.device)
        # segment new sentences as the training data was, with its own jieba dictionary (or
        # the SentencePiece model inside the source vocabulary)
        check_tokens(data_cfg, src_vocab, trg_vocab)
        found = (data_cfg.user_dict and data_cfg.zh_tokens == "word"
                 and Path(data_cfg.user_dict).is_file())
        self._user_dict = data_cfg.user_dict if found else None

    @property
    def has_attention(self) -> bool:
        """Whether the model's decoder attends over the source (and so has weights to plot)."""
        return self.model.decoder.has_attention

    @property
    def info(self) -> CheckpointInfo:
        return CheckpointInfo(self.src_vocab, self.trg_vocab, self.data_cfg, self.model_cfg,
                              self.truecaser)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu",
                        precision: str = "auto") -> Translator:
        """Load a checkpoint written by training (``device="auto"`` picks CUDA/MPS/CPU)."""
        dev = choose_device(device, verbose=False) if device == "auto" else torch.device(device)
        ckpt = load_checkpoint(path, map_location=dev)
        info: CheckpointInfo = ckpt["info"]
        model = build_model(info.model_cfg, len(info.src_vocab), len(info.trg_vocab),
                            pad_id=info.src_vocab.pad_id)
        model.load_state_dict(ckpt["model_state"])
        return cls(model, info.src_vocab, info.trg_vocab, info.data_cfg, info.model_cfg, dev,
                   info.truecaser, precision)

    def save(self, path: str | Path, train_cfg: TrainConfig | None = None,
             history: Sequence[dict[str, float]] = (), epoch: int = 0) -> Path:
        """Write the current weights as a self-describing checkpoint."""
        return save_checkpoint(path, self.model.state_dict(), self.info, train_cfg or TrainConfig(),
                               list(history), epoch)

    def src_tokens(self, sentence: str) -> list[str]:
        """The Chinese tokens of ``sentence``, as the model sees them (before ``<unk>`` mapping)."""
        if not isinstance(sentence, str) or not sentence.strip():
            raise ValueError("cannot translate an empty sentence: type some Chinese text")
        text = to_script(sentence.strip(), self.data_cfg.zh_script)  # as in training
        return source_tokens(text, self.data_cfg.zh_tokens, self._user_dict, self.src_vocab)

    def source_ids(self, sentence: str) -> torch.Tensor:
        """The ids the model reads for ``sentence``, with ``<sos>``/``<eos>``: [src_len]."""
        return torch.tensor(self.src_vocab.encode(self.src_tokens(sentence), add_sos_eos=True))

    def encode(self, sentences: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Sentences to a padded source batch: ([src_len, batch], [batch])."""
        examples = [(self.source_ids(s), torch.tensor([Vocab.sos_id])) for s in sentences]
        batch = collate(examples, self.src_vocab.pad_id)
        return batch.src.to(self.device), batch.src_lens

    def n_best_hypotheses(self, sentences: Sequence[str], n_best: int = 1, max_len: int = 50,
                          batch_size: int = 128, eval_mode: bool = True, beam_size: int = 1,
                          length_penalty: float = 0.6) -> list[list[Hypothesis]]:
        """Up to ``n_best`` hypotheses per sentence, best first, decoded in length-sorted batches
        (:func:`decode_ids`) and returned in input order.

        :param beam_size: 1 decodes greedily; more runs :func:`~seq2seq_lib.decode.beam_search`
            (``n_best`` must not exceed it).
        :param length_penalty: GNMT length-penalty exponent alpha (beam search only).
        """
        return decode_ids(self.model, [self.source_ids(s) for s in sentences], max_len,
                          batch_size, self.precision, beam_size, n_best, length_penalty,
                          eval_mode, self.src_vocab.pad_id)

    def hypotheses(self, sentences: Sequence[str], max_len: int = 50, batch_size: int = 128,
                   eval_mode: bool = True, beam_size: int = 1,
                   length_penalty: float = 0.6) -> list[Hypothesis]:
        """The best hypothesis for each sentence (greedy, or beam search if ``beam_size > 1``)."""
        return [h[0] for h in self.n_best_hypotheses(sentences, 1, max_len, batch_size, eval_mode,
                                                     beam_size, length_penalty)]

    def detokenize(self, ids: Sequence[int]) -> str:
        """Output ids to an English sentence: unknown words as ⁇, usual case restored
        (SentencePiece pieces are joined exactly, then truecased word by word)."""
        truecaser = self.truecaser if self.data_cfg.lowercase else None
        return detokenize_output(self.trg_vocab.decode(ids), self.trg_vocab,
                                 self.data_cfg.lowercase, truecaser)

    def translate_batch(self, sentences: Sequence[str], max_len: int = 50,
                        batch_size: int = 128, beam_size: int = 1,
                        length_penalty: float = 0.6) -> list[str]:
        """Translate many sentences (batched greedy decoding, or beam search if ``beam_size > 1``)."""
        hyps = self.hypotheses(sentences, max_len, batch_size, beam_size=beam_size,
                               length_penalty=length_penalty)
        return [self.detokenize(h.ids) for h in hyps]

    def translate(self, sentence: str, max_len: int = 50, beam_size: int = 1,
                  length_penalty: float = 0.6) -> str:
        """Translate one Chinese sentence, e.g. ``translate("我喜欢学习机器学习。", beam_size=5)``."""
        return self.translate_batch([sentence], max_len, beam_size=beam_size,
                                    length_penalty=length_penalty)[0]

    def translate_n_best(self, sentence: str, n: int = 5, beam_size: int | None = None,
                         max_len: int = 50, length_penalty: float = 0.6
                         ) -> list[tuple[str, float]]:
        """The ``n`` best translations from beam search (beam size ``n`` unless given), each
        with its length-penalised log-probability, best first."""
        hyps = self.n_best_hypotheses([sentence], n, max_len, beam_size=beam_size or n,
                                      length_penalty=length_penalty)[0]
        return [(self.detokenize(h.ids), h.score) for h in hyps]

    def attention_map(self, sentence: str, beam_size: int = 1, max_len: int = 50,
                      length_penalty: float = 0.6
                      ) -> tuple[list[str], list[str], torch.Tensor]:
        """What the model looked at while translating ``sentence``, ready for
        :func:`~seq2seq_lib.plots.plot_attention`.

        :return: source labels (``<sos>``, jieba tokens, ``<eos>``), output labels (English
            tokens, ``<eos>``) and the weights [len(output labels), len(source labels)].
        """
        if not self.has_attention:
            raise ValueError("this model has no attention (train it with attention='bahdanau', "
                             "'dot' or 'general')")
        hyp = self.hypotheses([sentence], max_len, beam_size=beam_size,
                              length_penalty=length_penalty)[0]
        src_labels = [SOS, *self.src_tokens(sentence), EOS]
        trg_labels = [*self.trg_vocab.decode(hyp.ids, strip_specials=False), EOS]
        return src_labels, trg_labels, hyp.attention

    def bleu(self, pairs: Sequence[Pair], max_len: int = 50, beam_size: int = 1,
             length_penalty: float = 0.6, lowercase: bool | None = None
             ) -> tuple[BLEUScore, list[str]]:
        """Corpus BLEU on (zh, en) pairs and the hypotheses it was computed from.

        :param lowercase: compare case-insensitively; by default exactly when the model was
            trained on lower-cased targets (use False for the case-sensitive score).
        """
        hyps = self.translate_batch([zh for zh, _ in pairs], max_len, beam_size=beam_size,
                                    length_penalty=length_penalty)
        if lowercase is None:
            lowercase = self.data_cfg.lowercase
        return corpus_bleu(hyps, [en for _, en in pairs], lowercase=lowercase), hyps
