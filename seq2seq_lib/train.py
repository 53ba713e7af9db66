"""Training: the loss, one epoch, evaluation, and ``fit`` with callbacks."""

from __future__ import annotations

import copy
import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .batching import Batch
from .checkpoint import CheckpointInfo, check_same_vocabularies, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .device import PrecisionChoice, autocast, choose_device, describe_device, resolve_precision
from .metrics import perplexity
from .models import Seq2Seq
from .vocab import Vocab

EpochRecord = dict[str, float]
EpochCallback = Callable[[EpochRecord, list[EpochRecord]], "bool | None"]
LossFn = Callable[..., "tuple[torch.Tensor, int]"]


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
               pad_id: int = Vocab.pad_id) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy of ``batch`` and the number of target tokens it covers.

    Row t of the decoder output is scored against ``trg[t + 1]``; ``<pad>`` positions are
    ignored. The model is called once, as a whole (``Seq2Seq.forward`` with ``pad_id``
    returns the logits of the real target words only), so ``model`` may also be a
    ``DistributedDataParallel`` wrapper of a :class:`Seq2Seq`.
    """
    target = batch.trg[1:]  # [trg_len - 1, batch]
    mask = target != pad_id
    logits = model(batch.src, batch.src_lens, batch.trg, teacher_forcing_ratio,
                   pad_id=pad_id)  # [n_tokens, trg_vocab]
    return nn.functional.cross_entropy(logits.float(), target[mask]), int(mask.sum())


class RunningSum:
    """A token-weighted loss sum that stays on the device between reads.

    Adding costs no synchronisation; :meth:`read` moves the pending float32 sum into an exact
    Python float (float64 on the CPU) and clears it. No float64 tensor is ever created on the
    device, which Apple's MPS could not hold.
    """

    def __init__(self, device: torch.device | str):
        self._pending = torch.zeros((), dtype=torch.float32, device=device)
        self.total = 0.0
        self.tokens = 0

    def add(self, mean_loss: torch.Tensor, n_tokens: int) -> None:
        self._pending += mean_loss.detach().float() * n_tokens
        self.tokens += n_tokens

    def read(self) -> float:
        """The mean loss per token so far (one device synchronisation)."""
        self.total += float(self._pending)
        self._pending.zero_()
        return self.total / max(self.tokens, 1)


@torch.no_grad()
def evaluate_loss(model: Seq2Seq, loader: DataLoader, device: torch.device | str = "cpu",
                  precision: PrecisionChoice | None = None) -> float:
    """Token-averaged teacher-forced loss in ``eval()`` mode (dropout off).

    :param precision: run the model under this precision's autocast (default fp32).
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
    return running.read()


@dataclass
class FitResult:
    """What :func:`fit` did: the history, the best epoch, and why it stopped."""

    history: list[EpochRecord]
    best_epoch: int
    best_valid_loss: float
    stopped: str = "finished"  # finished | interrupted | callback | stop-event
    checkpoint: Path | None = None
    seconds: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)
    precision: str = "fp32"  # the precision the run used: fp32, bf16 or fp16


def _train_epoch(model: Seq2Seq, loader: DataLoader, optimizer: torch.optim.Optimizer,
                 cfg: TrainConfig, device: torch.device, epoch: int,
                 stop: threading.Event | None, progress: bool, loss_fn: LossFn,
                 precision: PrecisionChoice, scaler: torch.amp.GradScaler | None
                 ) -> tuple[float, int, bool]:
    """One pass over ``loader``; returns (mean loss, target tokens, stopped early)."""
    model.train()
    sampler = getattr(loader, "batch_sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    running = RunningSum(device)
    bar = tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=not progress, unit="batch")
    for step, batch in enumerate(bar, start=1):
        batch = batch.to(device)
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss, n = loss_fn(model, batch, cfg.teacher_forcing_ratio)  # loss: float32
        if scaler is not None:  # fp16: scale the loss so small gradients do not underflow
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if cfg.clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        if scaler is not None:
            scaler.step(optimizer)  # skipped when the scaled gradients overflowed
            scaler.update()
        else:
            optimizer.step()
        running.add(loss, n)
        if step % 25 == 0 or step == len(loader):
            mean = running.read()  # one sync every 25 batches, not every step
            if not math.isfinite(mean):
                raise TrainingError(
                    f"epoch {epoch}, batch {step}: the training loss became {mean}; "
                    f"try a lower learning rate (lr={cfg.lr}) or gradient clipping (clip={cfg.clip})"
                )
            bar.set_postfix(loss=f"{mean:.3f}")
        if stop is not None and stop.is_set():
            bar.close()
            return running.read(), running.tokens, True
    bar.close()
    return running.read(), running.tokens, False


def fit(model: Seq2Seq, train_loader: DataLoader, valid_loader: DataLoader, cfg: TrainConfig,
        info: CheckpointInfo | None = None, *, callbacks: Sequence[EpochCallback] = (),
        resume_from: str | Path | None = None, stop: threading.Event | None = None,
        progress: bool = True, device: torch.device | None = None,
        loss_fn: LossFn = batch_loss) -> FitResult:
    """Train with Adam, clipping and per-epoch validation, keeping the best weights.

    :param info: vocabularies and configs written into checkpoints (needed when
        ``cfg.checkpoint_path`` is set).
    :param callbacks: called as ``cb(record, history)`` after every epoch; returning True stops.
    :param resume_from: a checkpoint to continue from (its weights, optimizer, gradient scaler
        and history); its vocabularies must be ``info``'s.
    :param stop: an event another thread (e.g. a Stop button) sets to end training after the
        current batch.
    :param loss_fn: ``loss_fn(model, batch, teacher_forcing_ratio) -> (loss, n_tokens)``; the
        default is :func:`batch_loss` (notebook 05 swaps in the lesson's misaligned loss).
    The precision comes from ``cfg.precision`` (see :func:`~seq2seq_lib.device.resolve_precision`);
    fp16 uses one gradient scaler for the whole run. On Ctrl-C (KeyboardInterrupt) training stops
    cleanly: the model gets the best weights back, and the checkpoint keeps them together with
    the history so far.
    """
    if cfg.checkpoint_path and info is None:
        raise ValueError("cfg.checkpoint_path is set, so fit() needs info= (vocabularies, configs)")
    device = device or choose_device(cfg.device, verbose=False)
    precision = resolve_precision(cfg.precision, device)
    if progress:
        print(f"{describe_device(device)} · {precision}")
    model.to(device)
    optimizer = make_optimizer(model, cfg.lr, device)
    scaler = torch.amp.GradScaler(device.type) if precision.scaler else None
    history: list[EpochRecord] = []
    start_epoch = 1
    if resume_from is not None:
        ckpt = load_checkpoint(resume_from, map_location=device)
        if info is not None:
            check_same_vocabularies(ckpt["info"], info, resume_from)
        model.load_state_dict(ckpt["model_state"])
        if "optimizer_state" in ckpt:
            opt_state = ckpt["optimizer_state"]
            for group in opt_state["param_groups"]:  # the kernel choice belongs to this device
                group["fused"] = optimizer.param_groups[0]["fused"]
            optimizer.load_state_dict(opt_state)
        if scaler is not None and ckpt.get("scaler_state"):
            scaler.load_state_dict(ckpt["scaler_state"])
        history = [r for r in ckpt["history"] if r["epoch"] <= ckpt["epoch"]]
        start_epoch = ckpt["epoch"] + 1
    best = min(history, key=lambda r: r["valid_loss"]) if history else None
    best_loss = best["valid_loss"] if best else float("inf")
    best_epoch = int(best["epoch"]) if best else 0

    def snapshot() -> dict[str, Any]:
        return {"model": copy.deepcopy(model.state_dict()),
                "optimizer": copy.deepcopy(optimizer.state_dict()),
                "scaler": scaler.state_dict() if scaler is not None else None}

    best_state = snapshot()
    ckpt_path = Path(cfg.checkpoint_path) if cfg.checkpoint_path else None
    stopped = "finished"
    started = time.perf_counter()

    def write_checkpoint() -> None:
        if ckpt_path is not None and info is not None and best_epoch > 0:
            save_checkpoint(ckpt_path, best_state["model"], info, cfg, history, best_epoch,
                            best_state["optimizer"], best_state["scaler"])

    try:
        for epoch in range(start_epoch, cfg.epochs + 1):
            set_seed(cfg.seed + epoch)  # dropout and sampling repeat, also after a resume
            t0 = time.perf_counter()
            train_loss, tokens, halted = _train_epoch(model, train_loader, optimizer, cfg,
                                                      device, epoch, stop, progress, loss_fn,
                                                      precision, scaler)
            seconds = time.perf_counter() - t0
            valid_loss = evaluate_loss(model, valid_loader, device, precision)
            record: EpochRecord = {
                "epoch": epoch, "train_loss": train_loss, "valid_loss": valid_loss,
                "train_ppl": perplexity(train_loss), "valid_ppl": perplexity(valid_loss),
                "seconds": seconds, "tokens_per_s": tokens / seconds if seconds > 0 else 0.0,
            }
            history.append(record)
            if valid_loss < best_loss:
                best_loss, best_epoch = valid_loss, epoch
                best_state = snapshot()
                write_checkpoint()
            if halted:
                stopped = "stop-event"
                break
            if any(cb(record, history) for cb in callbacks):
                stopped = "callback"
                break
    except KeyboardInterrupt:
        stopped = "interrupted"
    except TrainingError:
        model.load_state_dict(best_state["model"])
        write_checkpoint()
        raise
    model.load_state_dict(best_state["model"])
    write_checkpoint()  # the history is complete now, the weights are still the best ones
    return FitResult(history, best_epoch, best_loss, stopped,
                     ckpt_path if ckpt_path and best_epoch > 0 else None,
                     time.perf_counter() - started, precision=precision.name)
