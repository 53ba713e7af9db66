"""One training step's update: the loss, backward (scaled in fp16), clipping, Adam; and the
learning-rate schedule. Their states go into every checkpoint and come back on resume."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau

from ..config import TrainConfig
from ..device import PrecisionChoice, autocast
from ..train import LossFn, make_optimizer


class Updater:
    """Adam (with PyTorch's fused kernel), one gradient scaler for a whole fp16 run, and the
    plateau schedule when ``cfg.lr_schedule`` asks for it."""

    def __init__(self, model: nn.Module, cfg: TrainConfig, device: torch.device,
                 precision: PrecisionChoice, loss_fn: LossFn):
        self.model, self.cfg, self.device, self.precision = model, cfg, device, precision
        self.loss_fn = loss_fn
        self.optimizer = make_optimizer(model, cfg.lr, device)
        self.scaler = torch.amp.GradScaler(device.type) if precision.scaler else None
        self.scheduler = (ReduceLROnPlateau(self.optimizer, "min" if cfg.best_by == "loss"
                                            else "max", cfg.lr_factor, cfg.lr_patience)
                          if cfg.lr_schedule == "plateau" else None)

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

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
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skipped when the scaled gradients overflowed
            self.scaler.update()
        else:
            self.optimizer.step()

    def schedule(self, metric: float) -> None:
        """Tell the schedule a validation's metric (it may cut the learning rate)."""
        if self.scheduler is not None:
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
        saved = ckpt.get("trainer_state") or {}
        if self.scheduler is not None and saved.get("scheduler"):
            self.scheduler.load_state_dict(saved["scheduler"])
