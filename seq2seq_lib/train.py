"""Training: device choice, the loss, one epoch, evaluation, and ``fit`` with callbacks."""

from __future__ import annotations

import contextlib
import copy
import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .batching import Batch
from .checkpoint import CheckpointInfo, load_checkpoint, save_checkpoint
from .config import TrainConfig
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


def choose_device(preference: str = "auto", verbose: bool = True) -> torch.device:
    """CUDA when available, else Apple MPS, else CPU (or the device named by ``preference``)."""
    if preference != "auto":
        device = torch.device(preference)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={preference!r} asked for, but no CUDA GPU is available")
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device = torch.device("mps")
    else:
        device = torch.device("cpu")
    if verbose:
        print(describe_device(device))
    return device


def describe_device(device: torch.device) -> str:
    """One line naming the device, e.g. for the training banner."""
    if device.type == "cuda":
        return f"device: cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"device: cpu ({torch.get_num_threads()} threads)"
    return f"device: {device.type}"


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 on GPUs that support it, fp16 on older CUDA GPUs, None (no autocast) elsewhere."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def make_optimizer(model: nn.Module, lr: float, device: torch.device) -> torch.optim.Adam:
    """Adam, with PyTorch's fused kernel (one pass over all weights per step) on CPU and CUDA."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.Adam(model.parameters(), lr=lr, fused=fused or None)


def batch_loss(model: Seq2Seq, batch: Batch, teacher_forcing_ratio: float = 1.0,
               pad_id: int = Vocab.pad_id) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy of ``batch`` and the number of target tokens it covers.

    Row t of the decoder output is scored against ``trg[t + 1]``; ``<pad>`` positions are
    ignored. With full teacher forcing only the non-pad states are projected onto the vocabulary.
    """
    target = batch.trg[1:]  # [trg_len - 1, batch]
    mask = target != pad_id
    n_tokens = int(mask.sum())
    if teacher_forcing_ratio >= 1.0:
        enc = model.encode(batch.src, batch.src_lens)
        states, _ = model.decode_states(enc, batch.trg[:-1])  # [trg_len - 1, batch, hid]
        logits = model.decoder.project(states[mask])  # [n_tokens, trg_vocab]
        return nn.functional.cross_entropy(logits.float(), target[mask]), n_tokens
    logits = model(batch.src, batch.src_lens, batch.trg, teacher_forcing_ratio)
    loss = nn.functional.cross_entropy(logits.flatten(0, 1).float(), target.flatten(),
                                       ignore_index=pad_id)
    return loss, n_tokens


@torch.no_grad()
def evaluate_loss(model: Seq2Seq, loader: DataLoader, device: torch.device | str = "cpu") -> float:
    """Token-averaged teacher-forced loss in ``eval()`` mode (dropout off)."""
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64)
    tokens = 0
    for batch in loader:
        loss, n = batch_loss(model, batch.to(device))
        total += loss.double().cpu() * n
        tokens += n
    model.train(was_training)
    return float(total) / max(tokens, 1)


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


def _train_epoch(model: Seq2Seq, loader: DataLoader, optimizer: torch.optim.Optimizer,
                 cfg: TrainConfig, device: torch.device, epoch: int,
                 stop: threading.Event | None, progress: bool,
                 loss_fn: LossFn) -> tuple[float, int, bool]:
    """One pass over ``loader``; returns (mean loss, target tokens, stopped early)."""
    model.train()
    sampler = getattr(loader, "batch_sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    dtype = amp_dtype(device) if cfg.amp else None
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    total = torch.zeros((), dtype=torch.float64, device=device)
    tokens = 0
    bar = tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=not progress, unit="batch")
    for step, batch in enumerate(bar, start=1):
        batch = batch.to(device)
        optimizer.zero_grad(set_to_none=True)
        autocast = (torch.autocast(device.type, dtype=dtype) if dtype is not None
                    else contextlib.nullcontext())
        with autocast:
            loss, n = loss_fn(model, batch, cfg.teacher_forcing_ratio)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if cfg.clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        total += loss.detach().double() * n
        tokens += n
        if step % 25 == 0 or step == len(loader):
            running = float(total) / max(tokens, 1)  # one sync every 25 batches, not every step
            if not math.isfinite(running):
                raise TrainingError(
                    f"epoch {epoch}, batch {step}: the training loss became {running}; "
                    f"try a lower learning rate (lr={cfg.lr}) or gradient clipping (clip={cfg.clip})"
                )
            bar.set_postfix(loss=f"{running:.3f}")
        if stop is not None and stop.is_set():
            bar.close()
            return float(total) / max(tokens, 1), tokens, True
    bar.close()
    return float(total) / max(tokens, 1), tokens, False


def fit(model: Seq2Seq, train_loader: DataLoader, valid_loader: DataLoader, cfg: TrainConfig,
        info: CheckpointInfo | None = None, *, callbacks: Sequence[EpochCallback] = (),
        resume_from: str | Path | None = None, stop: threading.Event | None = None,
        progress: bool = True, device: torch.device | None = None,
        loss_fn: LossFn = batch_loss) -> FitResult:
    """Train with Adam, clipping and per-epoch validation, keeping the best weights.

    :param info: vocabularies and configs written into checkpoints (needed when
        ``cfg.checkpoint_path`` is set).
    :param callbacks: called as ``cb(record, history)`` after every epoch; returning True stops.
    :param resume_from: a checkpoint to continue from (its weights, optimizer and history).
    :param stop: an event another thread (e.g. a Stop button) sets to end training after the
        current batch.
    :param loss_fn: ``loss_fn(model, batch, teacher_forcing_ratio) -> (loss, n_tokens)``; the
        default is :func:`batch_loss` (notebook 05 swaps in the lesson's misaligned loss).
    On Ctrl-C (KeyboardInterrupt) training stops cleanly: the model gets the best weights back,
    and the checkpoint keeps them together with the history so far.
    """
    if cfg.checkpoint_path and info is None:
        raise ValueError("cfg.checkpoint_path is set, so fit() needs info= (vocabularies, configs)")
    device = device or choose_device(cfg.device)
    model.to(device)
    optimizer = make_optimizer(model, cfg.lr, device)
    history: list[EpochRecord] = []
    start_epoch = 1
    if resume_from is not None:
        ckpt = load_checkpoint(resume_from, map_location=device)
        model.load_state_dict(ckpt["model_state"])
        if "optimizer_state" in ckpt:
            opt_state = ckpt["optimizer_state"]
            for group in opt_state["param_groups"]:  # the kernel choice belongs to this device
                group["fused"] = optimizer.param_groups[0]["fused"]
            optimizer.load_state_dict(opt_state)
        history = [r for r in ckpt["history"] if r["epoch"] <= ckpt["epoch"]]
        start_epoch = ckpt["epoch"] + 1
    best = min(history, key=lambda r: r["valid_loss"]) if history else None
    best_loss = best["valid_loss"] if best else float("inf")
    best_epoch = int(best["epoch"]) if best else 0
    best_state = copy.deepcopy(model.state_dict())
    best_opt_state = copy.deepcopy(optimizer.state_dict())
    ckpt_path = Path(cfg.checkpoint_path) if cfg.checkpoint_path else None
    stopped = "finished"
    started = time.perf_counter()

    def write_checkpoint() -> None:
        if ckpt_path is not None and info is not None and best_epoch > 0:
            save_checkpoint(ckpt_path, best_state, info, cfg, history, best_epoch, best_opt_state)

    try:
        for epoch in range(start_epoch, cfg.epochs + 1):
            set_seed(cfg.seed + epoch)  # dropout and sampling repeat, also after a resume
            t0 = time.perf_counter()
            train_loss, tokens, halted = _train_epoch(model, train_loader, optimizer, cfg,
                                                      device, epoch, stop, progress, loss_fn)
            seconds = time.perf_counter() - t0
            valid_loss = evaluate_loss(model, valid_loader, device)
            record: EpochRecord = {
                "epoch": epoch, "train_loss": train_loss, "valid_loss": valid_loss,
                "train_ppl": perplexity(train_loss), "valid_ppl": perplexity(valid_loss),
                "seconds": seconds, "tokens_per_s": tokens / seconds if seconds > 0 else 0.0,
            }
            history.append(record)
            if valid_loss < best_loss:
                best_loss, best_epoch = valid_loss, epoch
                best_state = copy.deepcopy(model.state_dict())
                best_opt_state = copy.deepcopy(optimizer.state_dict())
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
        model.load_state_dict(best_state)
        write_checkpoint()
        raise
    model.load_state_dict(best_state)
    write_checkpoint()  # the history is complete now, the weights are still the best ones
    return FitResult(history, best_epoch, best_loss, stopped,
                     ckpt_path if ckpt_path and best_epoch > 0 else None,
                     time.perf_counter() - started)
