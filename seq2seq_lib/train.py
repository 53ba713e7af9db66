"""The training step's parts: the loss, a running loss sum, evaluation, the optimizer, seeds.

:mod:`seq2seq_lib.trainer` puts them together (``Trainer``, ``fit``): explicit state,
validation, schedules, early stopping, callbacks, several processes.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from .batching import Batch
from .device import PrecisionChoice, autocast
from .interface import DecoderBase
from .loss import DEFAULT_CHUNK, chunked_cross_entropy
from .models import Seq2Seq
from .vocab import Vocab

EpochRecord = dict[str, float]
LossFn = Callable[..., "tuple[torch.Tensor, int]"]
Reduce = Callable[[list[float]], list[float]]  # sums over processes (``DistContext.sum``)


class TrainingError(RuntimeError):
    """Training had to stop (e.g. the loss became NaN); the best weights were kept."""


def set_seed(seed: int) -> None:
    """Seed Python and PyTorch so a CPU run repeats exactly."""
    random.seed(seed)
    torch.manual_seed(seed)


def make_optimizer(model: nn.Module, lr: float, device: torch.device) -> torch.optim.Adam:
    """Adam, with PyTorch's fused kernel (one pass over all weights per step) on CPU and CUDA."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.Adam(model.parameters(), lr=lr, fused=fused or None)


def batch_loss(model: nn.Module, batch: Batch, teacher_forcing_ratio: float = 1.0,
               pad_id: int = Vocab.pad_id, label_smoothing: float = 0.0,
               loss_chunk: int = DEFAULT_CHUNK) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy of ``batch`` and the number of target tokens it covers.

    Row t of the decoder output is scored against ``trg[t + 1]``; ``<pad>`` positions are
    ignored. The model is called once, as a whole (``Seq2Seq.forward`` with ``pad_id``
    returns the logits of the real target words only), so ``model`` may also be a
    ``DistributedDataParallel`` wrapper of a :class:`Seq2Seq`.

    :param label_smoothing: the target distribution puts ``1 - label_smoothing`` on the right
        word and spreads ``label_smoothing`` evenly over the whole vocabulary (Szegedy et al.,
        2016; torch's ``cross_entropy(label_smoothing=)``), so the model is never pushed
        towards certainty. 0 is plain cross-entropy.
    :param loss_chunk: with the fused decoder (teacher forcing 1) of a library model, the
        model returns the states and the output layer and loss run over this many target
        tokens at a time (:func:`~seq2seq_lib.loss.chunked_cross_entropy`), so the logits of
        the whole batch never exist at once; 0: project all tokens in one piece.
    """
    index = batch.target_index(pad_id)  # [n_tokens]: the real target words, found on the CPU
    target = batch.trg[1:].flatten().index_select(0, index)  # [n_tokens]
    # the library's Seq2Seq takes the positions (no mask turned into positions on the device)
    by_index = {"trg_index": index} if library_model(model) is not None else {}
    out_layer = chunkable_output(model) if loss_chunk and teacher_forcing_ratio >= 1 else None
    if out_layer is not None:
        states = model(batch.src, batch.src_lens, batch.trg, teacher_forcing_ratio,
                       pad_id=pad_id, project=False, **by_index)  # [n_tokens, hid]
        loss = chunked_cross_entropy(states, out_layer.weight, out_layer.bias, target,
                                     loss_chunk, label_smoothing)
        return loss, batch.loss_tokens(pad_id)
    logits = model(batch.src, batch.src_lens, batch.trg, teacher_forcing_ratio, pad_id=pad_id,
                   **by_index)  # [n_tokens, trg_vocab]
    loss = nn.functional.cross_entropy(logits.float(), target, label_smoothing=label_smoothing)
    return loss, batch.loss_tokens(pad_id)


def library_model(model: nn.Module) -> Seq2Seq | None:
    """The library's :class:`Seq2Seq` that ``model`` is or wraps (DDP's and
    :class:`~seq2seq_lib.trainer.compiling.CompileFallback`'s ``module``, ``torch.compile``'s
    ``_orig_mod``), or None (a learner's own model)."""
    core = model
    while not isinstance(core, Seq2Seq) and isinstance(
            inner := getattr(core, "module", getattr(core, "_orig_mod", None)), nn.Module):
        core = inner
    return core if isinstance(core, Seq2Seq) else None


def chunkable_output(model: nn.Module) -> nn.Linear | None:
    """The output layer of ``model`` (or of the library model it wraps: DDP's and
    :class:`~seq2seq_lib.trainer.compiling.CompileFallback`'s ``module``, ``torch.compile``'s
    ``_orig_mod``) when its logits are exactly ``fc_out(states)``, so the
    loss may project the states itself; None for any other model (a learner's own)."""
    core = library_model(model)
    if core is None:
        return None
    decoder = core.decoder
    plain = type(decoder).project is DecoderBase.project
    fc_out = getattr(decoder, "fc_out", None)
    return fc_out if plain and type(fc_out) is nn.Linear else None


class RunningSum:
    """A token-weighted loss sum that stays on the device between reads.

    Adding costs no synchronisation; :meth:`read` moves the pending float32 sum into an exact
    Python float (float64 on the CPU) and clears it. No float64 tensor is ever created on the
    device, which Apple's MPS could not hold.
    """

    def __init__(self, device: torch.device | str):
        self._pending = torch.zeros((), dtype=torch.float32, device=device)
        self._pending_tokens = 0
        self.total = 0.0
        self.tokens = 0

    def add(self, mean_loss: torch.Tensor, n_tokens: int) -> None:
        self._pending += mean_loss.detach().float() * n_tokens
        self._pending_tokens += n_tokens

    def read(self, reduce: Reduce | None = None) -> float:
        """The mean loss per token so far (one device synchronisation).

        :param reduce: sum what was added since the last read over all training processes
            (every process must read at the same point); ``total`` and ``tokens`` then count
            all of them.
        """
        loss_sum, tokens = float(self._pending), self._pending_tokens
        self._pending.zero_()
        self._pending_tokens = 0
        if reduce is not None:
            loss_sum, tokens = reduce([loss_sum, tokens])
        self.total += loss_sum
        self.tokens += round(tokens)
        return self.total / max(self.tokens, 1)


@torch.no_grad()
def evaluate_loss(model: nn.Module, loader: DataLoader, device: torch.device | str = "cpu",
                  precision: PrecisionChoice | None = None, reduce: Reduce | None = None) -> float:
    """Token-averaged teacher-forced loss in ``eval()`` mode (dropout off).

    :param precision: run the model under this precision's autocast (default fp32).
    :param reduce: several processes, each with its own share of the batches: the sums
        (loss × tokens, tokens) are added up over all of them, so every process gets the loss
        of the whole validation set.
    """
    was_training = model.training
    model.eval()
    device = torch.device(device)
    running = RunningSum(device)
    with autocast(device, precision or PrecisionChoice("fp32", "default")):
        for step, batch in enumerate(loader, start=1):
            loss, n = batch_loss(model, batch.to(device))
            running.add(loss, n)
            if step % 25 == 0:
                running.read()  # bounded float32 partial sums
    model.train(was_training)
    running.read()
    total, tokens = running.total, running.tokens
    if reduce is not None:
        total, tokens = reduce([total, tokens])
    return total / max(tokens, 1)
