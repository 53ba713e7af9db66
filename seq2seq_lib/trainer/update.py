"""One training step's update: the loss, backward (scaled in fp16), clipping, Adam; and the
learning-rate schedule. Their states go into every checkpoint and come back on resume."""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, ReduceLROnPlateau

from ..config import AUTO_WARMUP_MAX, TrainConfig
from ..device import PrecisionChoice, autocast
from ..train import LossFn, make_optimizer


def inverse_sqrt(step: int, warmup_steps: int) -> float:
    """The factor of the learning rate before optimizer step ``step + 1`` (``step`` done):
    ``(step + 1) / warmup_steps`` while warming up, then ``sqrt(warmup_steps / (step + 1))``.

    The peak, 1, is reached at step ``warmup_steps``. It is Vaswani et al.'s schedule
    ``d_model^-0.5 * min(s^-0.5, s * warmup^-1.5)`` scaled so that its peak is ``--lr``.
    """
    s = step + 1
    return min(s / warmup_steps, math.sqrt(warmup_steps / s))


def with_warmup(cfg: TrainConfig, steps_per_epoch: Callable[[], int]) -> TrainConfig:
    """``cfg`` with ``warmup_steps=0`` (inverse_sqrt) resolved: one epoch's optimizer steps,
    at most :data:`~seq2seq_lib.config.AUTO_WARMUP_MAX` (``steps_per_epoch`` is called only
    then). Why one epoch: :func:`~seq2seq_lib.config.transformer_configs`."""
    if cfg.lr_schedule != "inverse_sqrt" or cfg.warmup_steps:
        return cfg
    return replace(cfg, warmup_steps=max(1, min(AUTO_WARMUP_MAX, steps_per_epoch())))


def cooldown(progress: float, share: float) -> float:
    """The factor of the learning rate when ``progress`` (0 to 1) of the run is done: 1 until
    the last ``share`` of it, then falling linearly to 0 at its end (``share`` 0: always 1)."""
    if share <= 0:
        return 1.0
    return min(1.0, max(0.0, (1.0 - progress) / share))


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig
                   ) -> ReduceLROnPlateau | LRScheduler | None:
    """The schedule ``cfg.lr_schedule`` names: plateau (steps at validations), inverse_sqrt
    (steps after every optimizer step), or None."""
    if cfg.lr_schedule == "plateau":
        return ReduceLROnPlateau(optimizer, "min" if cfg.best_by == "loss" else "max",
                                 cfg.lr_factor, cfg.lr_patience)
    if cfg.lr_schedule == "inverse_sqrt":
        return LambdaLR(optimizer, functools.partial(inverse_sqrt,
                                                     warmup_steps=cfg.warmup_steps))
    return None


def smoothed(loss_fn: LossFn, label_smoothing: float) -> LossFn:
    """``loss_fn`` with ``label_smoothing`` passed on (unchanged when it is 0)."""
    if label_smoothing == 0:
        return loss_fn
    if "label_smoothing" not in inspect.signature(loss_fn).parameters:
        raise ValueError(f"label_smoothing is {label_smoothing}, but the loss function "
                         f"{getattr(loss_fn, '__name__', loss_fn)!r} takes no label_smoothing")
    return functools.partial(loss_fn, label_smoothing=label_smoothing)


def chunked(loss_fn: LossFn, loss_chunk: int) -> LossFn:
    """``loss_fn`` with ``loss_chunk`` passed on, where it takes one (a loss function of its
    own that does not is used as it is)."""
    if "loss_chunk" not in inspect.signature(loss_fn).parameters:
        return loss_fn
    return functools.partial(loss_fn, loss_chunk=loss_chunk)


class Updater:
    """Adam (with PyTorch's fused kernel), one gradient scaler for a whole fp16 run, the
    schedule ``cfg.lr_schedule`` asks for, and the loss with ``cfg.label_smoothing`` (and
    ``cfg.loss_chunk``)."""

    def __init__(self, model: nn.Module, cfg: TrainConfig, device: torch.device,
                 precision: PrecisionChoice, loss_fn: LossFn):
        self.model, self.cfg, self.device, self.precision = model, cfg, device, precision
        self.loss_fn = smoothed(chunked(loss_fn, cfg.loss_chunk), cfg.label_smoothing)
        self.optimizer = make_optimizer(model, cfg.lr, device)
        self.scaler = torch.amp.GradScaler(device.type) if precision.scaler else None
        self.scheduler = make_scheduler(self.optimizer, cfg)
        self.per_step = isinstance(self.scheduler, LambdaLR)
        self.lr_scale = 1.0  # the cool-down's factor on the schedule's rate (set by the trainer)

    @property
    def lr(self) -> float:
        """The learning rate the next step uses: the schedule's, times the cool-down's factor."""
        return self.optimizer.param_groups[0]["lr"] * self.lr_scale

    def step(self, step_model: nn.Module, batch: Any,
             token_share: float | None = None) -> tuple[torch.Tensor, int]:
        """One optimizer step on ``batch``; returns (mean loss, target tokens).

        :param step_model: the model, or its ``DistributedDataParallel`` wrapper (called whole).
        :param token_share: several processes: this process's share of the step's tokens times
            their number. DDP averages the gradients, so each is weighted by its tokens.
        """
        self.zero_grad()
        loss, n = self.backward(step_model, batch, token_share)
        self.apply()
        return loss, n

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def backward(self, step_model: nn.Module, batch: Any,
                 weight: float | None = None) -> tuple[torch.Tensor, int]:
        """Add the gradients of ``batch``'s mean loss times ``weight`` (its share of a step
        of several micro-batches or processes); returns (mean loss, target tokens)."""
        with autocast(self.device, self.precision):
            loss, n = self.loss_fn(step_model, batch, self.cfg.teacher_forcing_ratio)  # float32
        scaled = loss * weight if weight is not None else loss
        if self.scaler is not None:  # fp16: scale the loss so small gradients do not underflow
            self.scaler.scale(scaled).backward()
        else:
            scaled.backward()
        return loss, n

    def apply(self) -> None:
        """Clip the gradients added up since :meth:`zero_grad` and step the optimizer."""
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.cfg.clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip)
        scheduled = [group["lr"] for group in self.optimizer.param_groups]
        for group in self.optimizer.param_groups:  # the schedule keeps its own rate
            group["lr"] *= self.lr_scale
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skipped when the scaled gradients overflowed
            self.scaler.update()
        else:
            self.optimizer.step()
        for group, lr in zip(self.optimizer.param_groups, scheduled):
            group["lr"] = lr
        if self.per_step:  # inverse_sqrt: once per optimizer step
            self.scheduler.step()  # type: ignore[union-attr]

    def schedule(self, metric: float) -> None:
        """Tell the schedule a validation's metric (it may cut the learning rate)."""
        if isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.step(metric)

    def restore(self, ckpt: dict[str, Any]) -> None:
        """Load a checkpoint's optimizer, scaler and schedule (those it has). A learning rate
        other than the checkpoint's is a new one asked for."""
        if "optimizer_state" in ckpt:
            opt_state = ckpt["optimizer_state"]
            for group in opt_state["param_groups"]:  # the kernel choice belongs to this device
                group["fused"] = self.optimizer.param_groups[0]["fused"]
            self.optimizer.load_state_dict(opt_state)
            if ckpt["train_cfg"].lr != self.cfg.lr:
                for group in self.optimizer.param_groups:
                    group["lr"] = self.cfg.lr
        if self.scaler is not None and ckpt.get("scaler_state"):
            self.scaler.load_state_dict(ckpt["scaler_state"])
        saved = (ckpt.get("trainer_state") or {}).get("scheduler")
        # a schedule's state fits only the same kind of schedule (a plateau one has a "mode")
        if self.scheduler is not None and saved and (
                ("mode" in saved) == isinstance(self.scheduler, ReduceLROnPlateau)):
            self.scheduler.load_state_dict(saved)
            if self.per_step:  # the step count comes back; the peak is this run's --lr
                factor = inverse_sqrt(self.scheduler.last_epoch, self.cfg.warmup_steps)
                self.scheduler.base_lrs = [self.cfg.lr for _ in self.optimizer.param_groups]
                for group in self.optimizer.param_groups:
                    group["lr"] = self.cfg.lr * factor
