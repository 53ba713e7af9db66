"""The loop: epochs of steps, validation every ``valid_every`` steps and at every epoch's end,
callbacks ``on_step`` / ``on_validation`` / ``on_epoch`` (``fn(trainer)``; True stops), and
:func:`fit`, the simple entry.

The state is explicit: the model, optimizer, gradient scaler and learning-rate scheduler, and a
:class:`~seq2seq_lib.trainer.state.TrainState`. The checkpoint keeper writes it, the stop signals
end it (see the package doc).
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..checkpoint import CheckpointInfo
from ..config import TrainConfig
from ..device import PrecisionChoice, choose_device, describe_device, resolve_precision
from ..metrics import perplexity
from ..models import Seq2Seq
from ..parallel import SINGLE, DistContext
from ..train import (
    EpochRecord,
    LossFn,
    RunningSum,
    TrainingError,
    batch_loss,
    evaluate_loss,
)
from .compiling import maybe_compile
from .keeper import CheckpointKeeper, Snapshot, legacy_state
from .order import POSITION_VERSION, EpochOrder, check_loaders
from .state import TrainState, rng_state
from .stopping import STOP_REQUESTS, StopSignals
from .update import Updater, cooldown, with_warmup

Hook = Callable[["Trainer"], "bool | None"]
EpochCallback = Callable[[EpochRecord, list[EpochRecord]], "bool | None"]
ValidBleu = Callable[[nn.Module, DistContext, PrecisionChoice], float]
EVENTS = ("on_step", "on_validation", "on_epoch")


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


def progress_bar(steps: Iterator[Any], total: int, epoch: int, show: bool) -> tqdm:
    """The bar of the epoch's steps still to take, drawn on a terminal (or in a notebook) only,
    never into a log file (tqdm's ``disable=None``), so a redirected run prints no carriage
    returns."""
    return tqdm(steps, total=total, desc=f"epoch {epoch}", leave=False, unit="step",
                disable=None if show else True)


class Trainer:
    """Trains ``model`` on ``train_loader``, validating on ``valid_loader``; see the module doc.

    :param info: vocabularies and configs written into checkpoints (needed when a checkpoint
        path is set).
    :param loss_fn: ``loss_fn(model, batch, teacher_forcing_ratio) -> (mean loss, n_tokens)``.
    :param valid_bleu: ``valid_bleu(model, dist, precision) -> BLEU`` at every validation
        (:class:`~seq2seq_lib.recipe.GreedyBleu`); needed for ``best_metric="bleu"``.
    :param dist: this process's place among several (``torchrun``); the loaders must already
        hold this process's share of the batches (:func:`~seq2seq_lib.recipe.make_loaders`).
    :param progress: print the device and show a progress bar (on a terminal only).
    :param stop: an event another thread (a Stop button) sets to end training after this step.
    """

    def __init__(self, model: Seq2Seq, train_loader: DataLoader, valid_loader: DataLoader,
                 cfg: TrainConfig, info: CheckpointInfo | None = None, *,
                 device: torch.device | None = None, loss_fn: LossFn = batch_loss,
                 valid_bleu: ValidBleu | None = None, dist: DistContext = SINGLE,
                 progress: bool = True, stop: threading.Event | None = None):
        if cfg.valid_bleu_sample and valid_bleu is None:
            raise ValueError("cfg.valid_bleu_sample is set, so training needs valid_bleu= "
                             "(seq2seq_lib.recipe.GreedyBleu, or train with recipe.train_model)")
        self.model, self.cfg, self.info, self.dist = model, cfg, info, dist
        self.train_loader, self.valid_loader = train_loader, valid_loader
        self.valid_bleu = valid_bleu
        self.is_main, self.progress = dist.is_main, progress
        self.device = device or choose_device(cfg.device, verbose=False)
        self.precision = resolve_precision(cfg.precision, self.device)
        model.to(self.device)
        self.keeper = CheckpointKeeper(cfg, info, dist.is_main)
        self.stops = StopSignals(cfg, dist, stop)
        self.order = EpochOrder(train_loader, cfg.seed, dist, self.device, cfg.accumulate)
        # warmup_steps 0: one epoch's optimizer steps (the checkpoints hold the steps it became)
        self.cfg = cfg = with_warmup(cfg, lambda: self.order.n_steps(1, 0))
        self.updater = Updater(model, cfg, self.device, self.precision, loss_fn)
        self.optimizer, self.scaler = self.updater.optimizer, self.updater.scaler
        self.state = TrainState()
        self.record: EpochRecord | None = None  # the latest validation's
        self.callbacks: dict[str, list[Hook]] = defaultdict(list)
        self._reduce = dist.sum if dist.enabled else None
        self._running = RunningSum(self.device)  # the training loss since the last validation
        self._segment_steps, self._segment_started = 0, 0.0
        self._agreed_elapsed = 0.0  # several processes: the first one's clock at the last sync

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
                    self.stops.callback = True

    def trainer_state(self) -> dict[str, Any]:
        """Everything besides weights, optimizer and scaler that a resumed run needs (plain data
        and tensors). Collects every process's RNG state, so all processes must call it."""
        scheduler = self.updater.scheduler
        return {**self.state.to_dict(), "best_metric": self.cfg.best_by,
                "batches_per_epoch": self.order.n_batches(self.state.epoch),
                "position": POSITION_VERSION, "world_size": self.dist.world_size,
                "scheduler": scheduler.state_dict() if scheduler else None,
                "rng": self.dist.gather(rng_state(self.device))}

    def resume(self, path: str | Path) -> None:
        """Continue from a checkpoint: its weights, optimizer, scaler, scheduler, position and
        history. A *last* checkpoint continues exactly where the run stopped, a *best* one from
        its validation; one of an earlier version of the library after its epoch."""
        ckpt = self.keeper.load(path, self.device)
        self.model.load_state_dict(ckpt["model_state"])
        self.updater.restore(ckpt)
        saved = ckpt.get("trainer_state")
        if saved is None:
            self.state = legacy_state(ckpt)
            self.keeper.keep_best(ckpt["model_state"])
            return
        st = self.state
        st.load(saved, ckpt["history"])
        if saved.get("best_metric") != self.cfg.best_by:  # "best" means something else now
            st.best_score, st.bad_validations = None, 0
        self.keeper.keep_resumed_best(ckpt, st)
        self.keeper.adopt_resumed_best(path, ckpt, st)
        self.order.continue_from(st, saved)

    def fit(self) -> FitResult:
        """Train until ``cfg.epochs`` are done or something stops it; the model ends with the
        best weights. Ctrl-C stops cleanly (the state so far is kept, as for a Stop)."""
        st = self.state
        check_loaders(self.order, st.epoch, self.valid_loader, self.dist)
        if self.progress and self.is_main:
            print(f"{describe_device(self.device)} · {self.precision}")
        step_model = maybe_compile(self.model, self.cfg.compile, self.device)
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            step_model = DistributedDataParallel(step_model, device_ids=ids)
        self.stops.start()
        self._new_segment()
        stopped = "finished"
        try:
            with self.stops.catching_ctrl_c():
                while st.epoch <= self.cfg.epochs:
                    if reason := self._train_epoch(step_model):
                        stopped = reason
                        break
                    st.epoch, st.batch = st.epoch + 1, 0
        except KeyboardInterrupt:
            stopped = "interrupted"
        except TrainingError:
            self._end(save_last=False)
            raise
        self._end(save_last=True)
        return FitResult(st.history, st.best_epoch, st.best_valid_loss, stopped,
                         self.keeper.best_checkpoint(st), time.perf_counter() - self.stops.started,
                         precision=self.precision.name, best_step=st.best_step,
                         best_metric=self.cfg.best_by,
                         best_score=math.nan if st.best_score is None else st.best_score,
                         steps=st.step, last_checkpoint=self.keeper.last_checkpoint())

    def _train_epoch(self, step_model: nn.Module) -> str | None:
        """The rest of epoch ``state.epoch``; returns why training must stop, or None.

        Alone, the stop requests are looked at after every step. Several processes agree on
        them (and on the training loss) every ``cfg.sync_every`` steps and at the epoch's end,
        in one collective: no step waits for the others but DDP's gradient all-reduce."""
        cfg, st = self.cfg, self.state
        self.model.train()
        n_batches = self.order.n_batches(st.epoch)
        steps = self.order.steps(st.epoch, st.batch)
        total = self.order.n_steps(st.epoch, st.batch)
        with progress_bar(steps, total, st.epoch, self.progress and self.is_main) as bar:
            for done, (micro, n_tokens) in enumerate(bar, start=1):
                self.updater.lr_scale = self._cooldown(n_batches)
                self._step(step_model, micro, n_tokens)
                st.batch, st.step = min(st.batch + self.order.group, n_batches), st.step + 1
                self._segment_steps += 1
                last = done == total
                if self.dist.enabled:
                    if (st.step % cfg.sync_every == 0 or last) and (reason := self._agree(bar)):
                        return self._stop(reason)
                elif done % 25 == 0 or last:
                    bar.set_postfix(loss=f"{self._train_loss():.3f}")  # one sync per 25 steps
                self._trigger("on_step")
                if cfg.valid_every and st.step % cfg.valid_every == 0 and st.batch < n_batches:
                    if reason := self._validate():
                        return reason
                if not self.dist.enabled and (reason := self.stops.local()):
                    return self._stop(reason)
        if self._segment_steps and (reason := self._validate()):
            return reason
        return self.stops.agreed()[1]

    def _cooldown(self, n_batches: int) -> float:
        """The cool-down's factor for the next step: how much of the run is done is the larger
        share of the epochs and of the time budget. Several processes read the time of the
        first one, agreed at the last sync, so that they all step with the same rate."""
        cfg, st = self.cfg, self.state
        progress = (st.epoch - 1 + st.batch / max(n_batches, 1)) / cfg.epochs
        if cfg.max_minutes is not None:
            elapsed = self._agreed_elapsed if self.dist.enabled else self.stops.elapsed()
            progress = max(progress, elapsed / (60 * cfg.max_minutes))
        return cooldown(progress, cfg.cooldown)

    def _step(self, step_model: nn.Module, micro: list[Any], n_tokens: int) -> None:
        """One optimizer step on this process's micro-batches; ``n_tokens``: the step's target
        tokens over all processes. Each micro-batch's mean loss is weighted by its share of
        them (times the process count: DDP averages), so the step's loss is the mean over all
        its tokens; DDP's all-reduce waits for the last micro-batch (``no_sync`` before it)."""
        world = self.dist.world_size
        self.updater.zero_grad()
        for m, batch in enumerate(micro):
            weight = None
            if world > 1 or len(micro) > 1:
                weight = batch.loss_tokens() * world / max(n_tokens, 1)
            final = m == len(micro) - 1
            sync = (step_model.no_sync() if isinstance(step_model, DistributedDataParallel)
                    and not final else contextlib.nullcontext())
            with sync:
                self._running.add(*self.updater.backward(step_model, batch.to(self.device),
                                                          weight))
        self.updater.apply()

    def _agree(self, bar: tqdm) -> str | None:
        """Several processes: one collective sums the training loss since the last read and
        every process's stop requests, and passes on the first process's clock; returns the
        request all of them act on."""
        reason = None

        def with_flags(values: list[float]) -> list[float]:
            nonlocal reason
            clock = self.stops.elapsed() if self.is_main else 0.0
            total = self.dist.sum([*values, *self.stops.flags(), clock])
            reason = next((r for r, f in zip(STOP_REQUESTS, total[2:-1]) if f > 0), None)
            self._agreed_elapsed = total[-1]
            return total[:2]

        mean = self._running.read(with_flags)
        self.stops.check_loss(mean, self.state.epoch, self.state.batch)
        bar.set_postfix(loss=f"{mean:.3f}")
        return reason

    def _train_loss(self) -> float:
        """The training loss since the last validation (NaN stops training)."""
        return self.stops.check_loss(self._running.read(self._reduce), self.state.epoch,
                                     self.state.batch)

    def _stop(self, reason: str) -> str:
        """Stop as asked: validate the steps since the last validation (not after Ctrl-C)."""
        if reason != "interrupted" and self._segment_steps:
            self._validate()
        return reason

    def _new_segment(self) -> None:
        self._running = RunningSum(self.device)
        self._segment_steps, self._segment_started = 0, time.perf_counter()

    def _validate(self) -> str | None:
        """Validate, keep the best, step the schedule, write checkpoints, call the callbacks;
        returns "early-stopping" when the patience is used up."""
        cfg, st = self.cfg, self.state
        record = self._measure()
        st.seconds += record["seconds"]
        st.history.append(record)
        self.record = record
        metric = record["valid_loss" if cfg.best_by == "loss" else "valid_bleu"]
        better = st.record_validation(metric, record["valid_loss"], cfg.best_by == "loss")
        if better:
            self.keeper.keep_best(self.model.state_dict())
        self.updater.schedule(metric)
        self._save(best=better)
        self._trigger("on_validation")
        if st.batch >= self.order.n_batches(st.epoch):
            self._trigger("on_epoch")
        self._new_segment()
        return "early-stopping" if self.stops.patience_used_up(st.bad_validations) else None

    def _measure(self) -> EpochRecord:
        """The record of a validation: losses, perplexities, speed (and BLEU when asked)."""
        st = self.state
        train_loss = self._train_loss()
        seconds = time.perf_counter() - self._segment_started
        valid_loss = evaluate_loss(self.model, self.valid_loader, self.device, self.precision,
                                   self._reduce)
        record: EpochRecord = {
            "epoch": st.epoch, "step": st.step,
            "progress": st.epoch - 1 + st.batch / max(self.order.n_batches(st.epoch), 1),
            "train_loss": train_loss, "valid_loss": valid_loss,
            "train_ppl": perplexity(train_loss), "valid_ppl": perplexity(valid_loss),
            "seconds": seconds,
            "tokens_per_s": self._running.tokens / seconds if seconds > 0 else 0.0,
            "lr": self.updater.lr,
        }
        if self.valid_bleu is not None:
            record["valid_bleu"] = self.valid_bleu(self.model, self.dist, self.precision)
        self.model.train()
        return record

    def _save(self, best: bool) -> None:
        """Hand this moment to the keeper (every process takes part, the main one writes)."""
        if not self.keeper.wants(best):
            return
        trainer_state = self.trainer_state()
        scaler = self.scaler.state_dict() if self.scaler is not None else None
        self.keeper.save(Snapshot(self.model.state_dict(), self.optimizer.state_dict(), scaler,
                                  self.cfg, self.state.history, self.state.epoch, trainer_state),
                         best)

    def _end(self, save_last: bool) -> None:
        """Write the last state if it moved since the last validation, and put the best weights
        back into the model. The best checkpoint is not touched: it was written whole."""
        if save_last and self.keeper.last_step != self.state.step:
            self._save(best=False)
        if self.keeper.best_weights is not None:
            self.model.load_state_dict(self.keeper.best_weights)


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
    :param progress: print the device and show a progress bar (on a terminal only).
    :param loss_fn: ``loss_fn(model, batch, teacher_forcing_ratio) -> (loss, n_tokens)``; the
        default is :func:`~seq2seq_lib.train.batch_loss` (notebook 05 swaps in the lesson's
        misaligned loss).
    :param valid_bleu: greedy BLEU at every validation (:class:`~seq2seq_lib.recipe.GreedyBleu`).
    :param hooks: more callbacks by event: ``{"on_step": [fn], "on_validation": [fn]}``, each
        ``fn(trainer)``.
    The precision comes from ``cfg.precision`` (see :func:`~seq2seq_lib.device.resolve_precision`);
    fp16 uses one gradient scaler for the whole run. On Ctrl-C (KeyboardInterrupt) training stops
    cleanly: the model gets the best weights back, and the last checkpoint keeps the state
    reached.
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
