"""The training engine: a :class:`Trainer` whose state is explicit, and :func:`fit`, its simple entry.

The state is what a resumed run needs, nothing hidden in locals: the model, optimizer, gradient
scaler and learning-rate scheduler, the random-number generators, and a :class:`TrainState`
(epoch, batch position in the epoch, step, history, best). The loop:

* one training step per batch: the model is called as a whole (``loss_fn(model, batch, ...)``),
  so a ``DistributedDataParallel`` wrapper changes nothing else;
* validation (loss, and greedy BLEU when asked) every ``valid_every`` steps and at the end of
  every epoch, each writing the *best* (``checkpoint_path``) and *last*
  (``last_checkpoint_path``) state atomically;
* a learning-rate schedule (reduce on plateau), early stopping with a patience, a time budget;
* callbacks ``on_step``, ``on_validation``, ``on_epoch``: ``fn(trainer)``, True stops training.

With several processes (``torchrun``, see :mod:`seq2seq_lib.parallel`) every step sums the
token count and the stop requests over the processes, so the loss is the mean over all tokens of
the step and a Stop, a time budget or Ctrl-C on one process ends all of them at the same step;
validation sums (loss × tokens, tokens) over the processes; only the main process prints,
calls the callbacks and writes files.
"""

from __future__ import annotations

import inspect
import itertools
import math
import random
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .checkpoint import (
    CheckpointInfo,
    check_same_vocabularies,
    load_checkpoint,
    rewrite_history,
    save_checkpoint,
)
from .config import TrainConfig
from .device import PrecisionChoice, autocast, choose_device, describe_device, resolve_precision
from .metrics import perplexity
from .models import Seq2Seq
from .parallel import SINGLE, DistContext
from .train import (
    EpochRecord,
    LossFn,
    RunningSum,
    TrainingError,
    batch_loss,
    evaluate_loss,
    make_optimizer,
    set_seed,
)
from .vocab import Vocab

Hook = Callable[["Trainer"], "bool | None"]
EpochCallback = Callable[[EpochRecord, list[EpochRecord]], "bool | None"]
ValidBleu = Callable[[nn.Module, DistContext, PrecisionChoice], float]
EVENTS = ("on_step", "on_validation", "on_epoch")
# requests that end training at the next step, most important first
STOP_REQUESTS = ("interrupted", "stop-event", "callback", "time-budget")


@dataclass
class TrainState:
    """Where training stands (plain numbers: saved in every checkpoint as ``trainer_state``).

    ``batch`` counts the batches of epoch ``epoch`` already trained on: a resumed run continues
    with the next one. ``best_score`` is the best validation value of ``TrainConfig.best_metric``
    (lower loss or higher BLEU); ``bad_validations`` counts the validations since then.
    """

    epoch: int = 1
    batch: int = 0
    step: int = 0
    history: list[EpochRecord] = field(default_factory=list)
    best_score: float | None = None
    best_epoch: int = 0
    best_step: int = 0
    best_valid_loss: float = math.inf
    bad_validations: int = 0
    seconds: float = 0.0  # training time, validation not included


@dataclass
class FitResult:
    """What training did: the history, the best validation, and why it stopped.

    ``stopped``: finished | interrupted | callback | stop-event | early-stopping | time-budget.
    """

    history: list[EpochRecord]
    best_epoch: int
    best_valid_loss: float
    stopped: str = "finished"
    checkpoint: Path | None = None
    seconds: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)
    precision: str = "fp32"  # the precision the run used: fp32, bf16 or fp16
    best_step: int = 0
    best_metric: str = "loss"
    best_score: float = math.nan
    steps: int = 0
    last_checkpoint: Path | None = None


class Trainer:
    """Trains ``model`` on ``train_loader``, validating on ``valid_loader``; see the module doc.

    :param info: vocabularies and configs written into checkpoints (needed when a checkpoint
        path is set).
    :param loss_fn: ``loss_fn(model, batch, teacher_forcing_ratio) -> (mean loss, n_tokens)``.
    :param valid_bleu: ``valid_bleu(model, dist, precision) -> BLEU`` at every validation
        (:class:`~seq2seq_lib.recipe.GreedyBleu`); needed for ``best_metric="bleu"``.
    :param dist: this process's place among several (``torchrun``); the loaders must already
        hold this process's share of the batches (:func:`~seq2seq_lib.recipe.make_loaders`).
    :param stop: an event another thread (a Stop button) sets to end training after this step.
    """

    def __init__(self, model: Seq2Seq, train_loader: DataLoader, valid_loader: DataLoader,
                 cfg: TrainConfig, info: CheckpointInfo | None = None, *,
                 device: torch.device | None = None, loss_fn: LossFn = batch_loss,
                 valid_bleu: ValidBleu | None = None, dist: DistContext = SINGLE,
                 progress: bool = True, stop: threading.Event | None = None):
        if (cfg.checkpoint_path or cfg.last_checkpoint_path) and info is None:
            raise ValueError("a checkpoint path is set, so training needs info= "
                             "(vocabularies, configs)")
        if cfg.valid_bleu_sample and valid_bleu is None:
            raise ValueError("cfg.valid_bleu_sample is set, so training needs valid_bleu= "
                             "(seq2seq_lib.recipe.GreedyBleu, or train with recipe.train_model)")
        self.model, self.cfg, self.info = model, cfg, info
        self.train_loader, self.valid_loader = train_loader, valid_loader
        self.dist, self.is_main = dist, dist.is_main
        self.device = device or choose_device(cfg.device, verbose=False)
        self.precision = resolve_precision(cfg.precision, self.device)
        self.loss_fn, self.valid_bleu = loss_fn, valid_bleu
        self.progress, self.stop_event = progress, stop
        model.to(self.device)
        self.optimizer = make_optimizer(model, cfg.lr, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type) if self.precision.scaler else None
        self.scheduler = (ReduceLROnPlateau(self.optimizer, "min" if cfg.best_metric == "loss"
                                            else "max", cfg.lr_factor, cfg.lr_patience)
                          if cfg.lr_schedule == "plateau" else None)
        self.state = TrainState()
        self.record: EpochRecord | None = None  # the latest validation's
        self.best_weights: dict[str, torch.Tensor] | None = None  # on the CPU
        self.callbacks: dict[str, list[Hook]] = defaultdict(list)
        self._reduce = dist.sum if dist.enabled else None
        self._running = RunningSum(self.device)
        self._segment_steps, self._segment_started = 0, 0.0
        self._rng_to_restore: dict[str, Any] | None = None
        self._interrupted = self._callback_stop = False
        self._started = 0.0
        self._best_saved = False  # this run wrote the best checkpoint
        self._best_source: Path | None = None  # a resumed file that holds the best state
        self._last_saved_step = -1

    # ------------------------------------------------------------------ callbacks and state

    def add_callback(self, event: str, fn: Hook) -> None:
        """Call ``fn(trainer)`` at ``event`` (on the main process); if it returns True, training
        stops (after this step's validation, if one is due)."""
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}; choose one of {', '.join(EVENTS)}")
        self.callbacks[event].append(fn)

    def _trigger(self, event: str) -> None:
        if self.is_main:
            for fn in list(self.callbacks[event]):
                if fn(self):
                    self._callback_stop = True

    def trainer_state(self) -> dict[str, Any]:
        """Everything besides weights, optimizer and scaler that a resumed run needs (plain data
        and tensors). Collects every process's RNG state, so all processes must call it."""
        out: dict[str, Any] = {f.name: getattr(self.state, f.name) for f in fields(TrainState)
                               if f.name != "history"}
        out.update(best_metric=self.cfg.best_metric, batches_per_epoch=len(self.train_loader),
                   world_size=self.dist.world_size,
                   scheduler=self.scheduler.state_dict() if self.scheduler else None,
                   rng=self.dist.gather(self._rng_state()))
        return out

    def _rng_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        elif self.device.type == "mps":
            state["mps"] = torch.mps.get_rng_state()
        return state

    def _set_rng_state(self, state: dict[str, Any]) -> None:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        torch.set_rng_state(state["torch"].cpu())
        if "cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"].cpu(), self.device)
        if "mps" in state and self.device.type == "mps":
            torch.mps.set_rng_state(state["mps"].cpu())

    def resume(self, path: str | Path) -> None:
        """Continue from a checkpoint: its weights, optimizer, scaler, scheduler, position and
        history. A *last* checkpoint continues exactly where the run stopped, a *best* one from
        its best validation; one of an earlier version of the library after its epoch."""
        path = Path(path)
        ckpt = load_checkpoint(path, map_location=self.device)
        if self.info is not None:
            check_same_vocabularies(ckpt["info"], self.info, path)
        self.model.load_state_dict(ckpt["model_state"])
        if "optimizer_state" in ckpt:
            opt_state = ckpt["optimizer_state"]
            for group in opt_state["param_groups"]:  # the kernel choice belongs to this device
                group["fused"] = self.optimizer.param_groups[0]["fused"]
            self.optimizer.load_state_dict(opt_state)
            if ckpt["train_cfg"].lr != self.cfg.lr:  # a new learning rate was asked for
                for group in self.optimizer.param_groups:
                    group["lr"] = self.cfg.lr
        if self.scaler is not None and ckpt.get("scaler_state"):
            self.scaler.load_state_dict(ckpt["scaler_state"])
        st, saved = self.state, ckpt.get("trainer_state")
        if saved is None:  # written before the trainer existed: the file holds the best epoch
            st.history = [r for r in ckpt["history"] if r["epoch"] <= ckpt["epoch"]]
            st.epoch = ckpt["epoch"] + 1
            best = min(st.history, key=lambda r: r["valid_loss"], default=None)
            if best is not None:
                st.best_score = st.best_valid_loss = best["valid_loss"]
                st.best_epoch = int(best["epoch"])
            self._keep_best(ckpt["model_state"], source=path)
            return
        for f in fields(TrainState):
            if f.name != "history" and f.name in saved:
                setattr(st, f.name, saved[f.name])
        st.history = [r for r in ckpt["history"] if r.get("step", 0) <= st.step]
        if saved.get("best_metric") != self.cfg.best_metric:  # "best" means something else now
            st.best_score, st.bad_validations = None, 0
        if self.scheduler is not None and saved.get("scheduler"):
            self.scheduler.load_state_dict(saved["scheduler"])
        if "best_model_state" in ckpt:
            self._keep_best(ckpt["best_model_state"])
        elif st.best_epoch and st.best_step == st.step:
            self._keep_best(ckpt["model_state"], source=path)
        if st.batch >= saved["batches_per_epoch"] or (st.batch and (
                saved["batches_per_epoch"] != len(self.train_loader)
                or saved.get("world_size", 1) != self.dist.world_size)):
            # a finished epoch, or one cut into other batches now: go on with the next epoch
            st.epoch, st.batch = st.epoch + 1, 0
        rngs = saved.get("rng") or []
        if st.batch and len(rngs) == self.dist.world_size:
            self._rng_to_restore = rngs[self.dist.rank]

    def _keep_best(self, weights: Mapping[str, torch.Tensor], source: Path | None = None) -> None:
        self.best_weights = {k: v.detach().to("cpu", copy=True) for k, v in weights.items()}
        self._best_source = source

    # ------------------------------------------------------------------ the loop

    def fit(self) -> FitResult:
        """Train until ``cfg.epochs`` are done or something stops it; the model ends with the
        best weights. Ctrl-C stops cleanly (the state so far is kept, as for a Stop)."""
        cfg, st = self.cfg, self.state
        if self.progress and self.is_main:
            print(f"{describe_device(self.device)} · {self.precision}")
        counts = self.dist.gather(len(self.train_loader))
        if len(set(counts)) > 1:
            raise ValueError(f"the training processes have different numbers of batches per "
                             f"epoch ({counts}): give each its share of the length buckets "
                             "(make_loader(..., num_replicas=, rank=))")
        step_model = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            step_model = DistributedDataParallel(self.model, device_ids=ids)
        self._started = time.perf_counter()
        self._new_segment()
        stopped = "finished"
        restore_sigint = self._catch_sigint()
        try:
            while st.epoch <= cfg.epochs:
                reason = self._train_epoch(step_model)
                if reason:
                    stopped = reason
                    break
                st.epoch, st.batch = st.epoch + 1, 0
        except KeyboardInterrupt:
            stopped = "interrupted"
        except TrainingError:
            self._end(save_last=False)
            raise
        finally:
            restore_sigint()
        self._end(save_last=True)
        last = cfg.last_checkpoint_path
        return FitResult(st.history, st.best_epoch, st.best_valid_loss, stopped,
                         Path(cfg.checkpoint_path) if cfg.checkpoint_path and st.best_epoch else None,
                         time.perf_counter() - self._started, precision=self.precision.name,
                         best_step=st.best_step, best_metric=cfg.best_metric,
                         best_score=math.nan if st.best_score is None else st.best_score,
                         steps=st.step,
                         last_checkpoint=Path(last) if last and self._last_saved_step >= 0 else None)

    def _train_epoch(self, step_model: nn.Module) -> str | None:
        """The rest of epoch ``state.epoch``; returns why training must stop, or None."""
        cfg, st, loader = self.cfg, self.state, self.train_loader
        n_batches, start = len(loader), st.batch
        self.model.train()
        sampler, skip = getattr(loader, "batch_sampler", None), start
        if hasattr(sampler, "set_epoch"):
            if start and "start" in inspect.signature(sampler.set_epoch).parameters:
                sampler.set_epoch(st.epoch, start=start)
                skip = 0
            else:
                sampler.set_epoch(st.epoch)
        if not start:
            set_seed(self._seed())  # dropout and sampling repeat, also after a resume
        batches = iter(loader)  # (making the iterator draws from torch's generator)
        if self._rng_to_restore is not None:
            self._set_rng_state(self._rng_to_restore)  # mid-epoch: as when the run stopped
            self._rng_to_restore = None
        elif start:
            set_seed(self._seed() + 7919 * start)
        bar = tqdm(itertools.islice(batches, skip, None), total=n_batches, initial=start,
                   desc=f"epoch {st.epoch}", leave=False, unit="batch",
                   disable=not (self.progress and self.is_main))
        with bar:
            for batch in bar:
                n_local = n_global = None
                if self.dist.enabled:  # the step's token count and stop requests, summed
                    n_local = int((batch.trg[1:] != Vocab.pad_id).sum())
                    n_global, reason = self._sync(n_local)
                    if reason:
                        return self._stop(reason)
                self._step(step_model, batch, n_local, n_global)
                if st.batch % 25 == 0 or st.batch == n_batches:
                    bar.set_postfix(loss=f"{self._check_loss():.3f}")  # one sync per 25 steps
                self._trigger("on_step")
                if cfg.valid_every and st.step % cfg.valid_every == 0 and st.batch < n_batches:
                    reason = self._validate()
                    if reason:
                        return reason
                if not self.dist.enabled and (reason := self._local_request()):
                    return self._stop(reason)
        if self._segment_steps:
            reason = self._validate()
            if reason:
                return reason
        return self._sync(0)[1] if self.dist.enabled else self._local_request()

    def _step(self, step_model: nn.Module, batch: Any, n_local: int | None,
              n_global: int | None) -> None:
        cfg, st = self.cfg, self.state
        batch = batch.to(self.device)
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.precision):
            loss, n = self.loss_fn(step_model, batch, cfg.teacher_forcing_ratio)  # loss: float32
        scaled = loss
        if n_global:  # DDP averages the processes' gradients: weigh each by its token share
            scaled = loss * (n_local * self.dist.world_size / n_global)
        if self.scaler is not None:  # fp16: scale the loss so small gradients do not underflow
            self.scaler.scale(scaled).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            scaled.backward()
        if cfg.clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skipped when the scaled gradients overflowed
            self.scaler.update()
        else:
            self.optimizer.step()
        self._running.add(loss, n)
        st.batch, st.step = st.batch + 1, st.step + 1
        self._segment_steps += 1

    def _check_loss(self) -> float:
        mean = self._running.read(self._reduce)
        if not math.isfinite(mean):
            raise TrainingError(
                f"epoch {self.state.epoch}, batch {self.state.batch}: the training loss became "
                f"{mean}; try a lower learning rate (lr={self.cfg.lr}) or gradient clipping "
                f"(clip={self.cfg.clip})")
        return mean

    # ------------------------------------------------------------------ stopping

    def _local_flags(self) -> list[int]:
        budget = self.cfg.max_minutes
        over = budget is not None and time.perf_counter() - self._started >= 60 * budget
        return [int(self._interrupted), int(self.stop_event is not None and self.stop_event.is_set()),
                int(self._callback_stop), int(over)]

    def _local_request(self) -> str | None:
        return next((r for r, f in zip(STOP_REQUESTS, self._local_flags()) if f), None)

    def _sync(self, n_local: int) -> tuple[int, str | None]:
        """Sum this step's token count and stop requests over all processes."""
        total = self.dist.sum([n_local, *self._local_flags()])
        reason = next((r for r, f in zip(STOP_REQUESTS, total[1:]) if f > 0), None)
        return round(total[0]), reason

    def _stop(self, reason: str) -> str:
        """Stop as asked: validate the steps since the last validation (not after Ctrl-C)."""
        if reason != "interrupted" and self._segment_steps:
            self._validate()
        return reason

    def _catch_sigint(self) -> Callable[[], None]:
        """With several processes Ctrl-C becomes a stop request, so that all of them stop at
        the same step (a KeyboardInterrupt would leave the others waiting)."""
        if not self.dist.enabled or threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = signal.getsignal(signal.SIGINT)

        def request_stop(signum: int, frame: Any) -> None:
            self._interrupted = True

        signal.signal(signal.SIGINT, request_stop)
        return lambda: signal.signal(signal.SIGINT, previous)

    def _seed(self) -> int:
        """Seed of an epoch: the same every run; another one per process (dropout differs)."""
        return self.cfg.seed + self.state.epoch + 1_000_003 * self.dist.rank

    # ------------------------------------------------------------------ validation, checkpoints

    def _new_segment(self) -> None:
        self._running = RunningSum(self.device)
        self._segment_steps, self._segment_started = 0, time.perf_counter()

    def _validate(self) -> str | None:
        """Validate, keep the best, step the schedule, write checkpoints, call the callbacks;
        returns "early-stopping" when the patience is used up."""
        cfg, st = self.cfg, self.state
        train_loss = self._check_loss()
        seconds = time.perf_counter() - self._segment_started
        tokens = self._running.tokens
        valid_loss = evaluate_loss(self.model, self.valid_loader, self.device, self.precision,
                                   self._reduce)
        n_batches = max(len(self.train_loader), 1)
        record: EpochRecord = {
            "epoch": st.epoch, "step": st.step, "progress": st.epoch - 1 + st.batch / n_batches,
            "train_loss": train_loss, "valid_loss": valid_loss,
            "train_ppl": perplexity(train_loss), "valid_ppl": perplexity(valid_loss),
            "seconds": seconds, "tokens_per_s": tokens / seconds if seconds > 0 else 0.0,
            "lr": self.optimizer.param_groups[0]["lr"],
        }
        if self.valid_bleu is not None:
            record["valid_bleu"] = self.valid_bleu(self.model, self.dist, self.precision)
        self.model.train()
        st.seconds += seconds
        st.history.append(record)
        self.record = record
        metric = record["valid_loss" if cfg.best_metric == "loss" else "valid_bleu"]
        better = math.isfinite(metric) and (
            st.best_score is None
            or (metric < st.best_score if cfg.best_metric == "loss" else metric > st.best_score))
        if better:
            st.best_score, st.best_epoch, st.best_step = metric, st.epoch, st.step
            st.best_valid_loss, st.bad_validations = valid_loss, 0
            self._keep_best(self.model.state_dict())
        else:
            st.bad_validations += 1
        if self.scheduler is not None:
            self.scheduler.step(metric)
        self._save(best=better)
        self._trigger("on_validation")
        if st.batch == len(self.train_loader):
            self._trigger("on_epoch")
        self._new_segment()
        if cfg.patience and st.bad_validations >= cfg.patience:
            return "early-stopping"
        return None

    def _save(self, best: bool) -> None:
        """Write the best and/or the last state (every process takes part, the main one writes)."""
        cfg, st = self.cfg, self.state
        targets = [p for p, wanted in ((cfg.checkpoint_path, best),
                                       (cfg.last_checkpoint_path, True)) if p and wanted]
        if not targets:
            return
        extra: dict[str, Any] = {"trainer_state": self.trainer_state()}
        if self.is_main:
            weights, opt = self.model.state_dict(), self.optimizer.state_dict()
            scaler = self.scaler.state_dict() if self.scaler is not None else None
            assert self.info is not None
            if best and cfg.checkpoint_path:
                save_checkpoint(cfg.checkpoint_path, weights, self.info, cfg, st.history,
                                st.epoch, opt, scaler, extra)
            if cfg.last_checkpoint_path:
                if self.best_weights is not None and st.best_step != st.step:
                    extra["best_model_state"] = self.best_weights
                save_checkpoint(cfg.last_checkpoint_path, weights, self.info, cfg, st.history,
                                st.epoch, opt, scaler, extra)
        if best and cfg.checkpoint_path:
            self._best_saved, self._best_source = True, None
        if cfg.last_checkpoint_path:
            self._last_saved_step = st.step

    def _end(self, save_last: bool) -> None:
        """Keep the state reached in the last file, put the best weights back into the model,
        and store the whole history with the best checkpoint."""
        cfg, st = self.cfg, self.state
        if save_last and cfg.last_checkpoint_path and self._last_saved_step != st.step:
            self._save(best=False)
        if self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
        if not (self.is_main and cfg.checkpoint_path and st.best_epoch):
            return
        path = Path(cfg.checkpoint_path)
        if self._best_saved or (self._best_source and self._best_source.resolve() == path.resolve()):
            rewrite_history(path, st.history)
        elif self._best_source is not None:  # the best came with the resumed file: copy it here
            rewrite_history(path, st.history, source=self._best_source)
        elif self.best_weights is not None and self.info is not None:
            save_checkpoint(path, self.best_weights, self.info, cfg, st.history, st.best_epoch)


def fit(model: Seq2Seq, train_loader: DataLoader, valid_loader: DataLoader, cfg: TrainConfig,
        info: CheckpointInfo | None = None, *, callbacks: Sequence[EpochCallback] = (),
        resume_from: str | Path | None = None, stop: threading.Event | None = None,
        progress: bool = True, device: torch.device | None = None,
        loss_fn: LossFn = batch_loss, valid_bleu: ValidBleu | None = None,
        dist: DistContext = SINGLE,
        hooks: Mapping[str, Sequence[Hook]] | None = None) -> FitResult:
    """Train with Adam, clipping and validation, keeping the best weights (a :class:`Trainer`).

    :param info: vocabularies and configs written into checkpoints (needed when
        ``cfg.checkpoint_path`` or ``cfg.last_checkpoint_path`` is set).
    :param callbacks: called as ``cb(record, history)`` after every epoch; returning True stops.
    :param resume_from: a checkpoint to continue from (see :meth:`Trainer.resume`); its
        vocabularies must be ``info``'s.
    :param stop: an event another thread (e.g. a Stop button) sets to end training after the
        current batch.
    :param loss_fn: ``loss_fn(model, batch, teacher_forcing_ratio) -> (loss, n_tokens)``; the
        default is :func:`~seq2seq_lib.train.batch_loss` (notebook 05 swaps in the lesson's
        misaligned loss).
    :param valid_bleu: greedy BLEU at every validation (:class:`~seq2seq_lib.recipe.GreedyBleu`).
    :param hooks: more callbacks by event: ``{"on_step": [fn], "on_validation": [fn]}``, each
        ``fn(trainer)``.
    The precision comes from ``cfg.precision`` (see :func:`~seq2seq_lib.device.resolve_precision`);
    fp16 uses one gradient scaler for the whole run. On Ctrl-C (KeyboardInterrupt) training stops
    cleanly: the model gets the best weights back, and the checkpoint keeps them together with
    the history so far.
    """
    trainer = Trainer(model, train_loader, valid_loader, cfg, info, device=device,
                      loss_fn=loss_fn, valid_bleu=valid_bleu, dist=dist, progress=progress,
                      stop=stop)
    for cb in callbacks:
        trainer.add_callback("on_epoch", lambda t, cb=cb: cb(t.record, t.state.history))
    for event, fns in (hooks or {}).items():
        for fn in fns:
            trainer.add_callback(event, fn)
    if resume_from is not None:
        trainer.resume(resume_from)
    return trainer.fit()
