"""Why training stops early: Ctrl-C, a Stop event, a callback, the time budget, a NaN loss, the
patience. With several processes the requests are summed over all of them, so they all stop
at the same step."""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..config import TrainConfig
from ..parallel import DistContext
from ..train import TrainingError

# requests that end training at the next step, most important first
STOP_REQUESTS = ("interrupted", "stop-event", "callback", "time-budget")


class StopSignals:
    """The stop requests of one run.

    :param stop: an event another thread (a Stop button) sets to end training after this step.
    ``interrupted`` (Ctrl-C under several processes) and ``callback`` (a callback returned
    True) are set by the trainer; the time budget counts from :meth:`start`.
    """

    def __init__(self, cfg: TrainConfig, dist: DistContext,
                 stop: threading.Event | None = None):
        self.cfg, self.dist, self.stop_event = cfg, dist, stop
        self.interrupted = self.callback = False
        self.started = time.perf_counter()

    def start(self) -> None:
        """The time budget counts from now."""
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds since :meth:`start`."""
        return time.perf_counter() - self.started

    def flags(self) -> list[int]:
        """This process's requests, in the order of :data:`STOP_REQUESTS` (1: asked)."""
        budget = self.cfg.max_minutes
        over = budget is not None and self.elapsed() >= 60 * budget
        stop_set = self.stop_event is not None and self.stop_event.is_set()
        return [int(self.interrupted), int(stop_set), int(self.callback), int(over)]

    def local(self) -> str | None:
        """The most important request of this process, or None."""
        return next((r for r, f in zip(STOP_REQUESTS, self.flags()) if f), None)

    def agreed(self, n_tokens: int = 0) -> tuple[int, str | None]:
        """Sum this step's token count and every process's requests in one collective: the
        tokens of the step over all processes and the request all of them act on (alone:
        ``n_tokens`` and :meth:`local`)."""
        if not self.dist.enabled:
            return n_tokens, self.local()
        total = self.dist.sum([n_tokens, *self.flags()])
        reason = next((r for r, f in zip(STOP_REQUESTS, total[1:]) if f > 0), None)
        return round(total[0]), reason

    def patience_used_up(self, bad_validations: int) -> bool:
        """Early stopping: ``cfg.patience`` validations in a row without a new best."""
        return bool(self.cfg.patience) and bad_validations >= self.cfg.patience

    def check_loss(self, mean: float, epoch: int, batch: int) -> float:
        """``mean`` (the training loss so far), or a :class:`TrainingError` if it is NaN or
        infinite (the same on every process: it is a sum over all of them)."""
        if not math.isfinite(mean):
            raise TrainingError(
                f"epoch {epoch}, batch {batch}: the training loss became {mean}; try a lower "
                f"learning rate (lr={self.cfg.lr}) or gradient clipping (clip={self.cfg.clip})")
        return mean

    @contextmanager
    def catching_ctrl_c(self) -> Iterator[None]:
        """With several processes Ctrl-C becomes a stop request, so that all of them stop at the
        same step (a KeyboardInterrupt in one would leave the others waiting). Alone, Ctrl-C
        stays a KeyboardInterrupt, which the trainer catches."""
        if not self.dist.enabled or threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.getsignal(signal.SIGINT)

        def request_stop(signum: int, frame: Any) -> None:
            self.interrupted = True

        signal.signal(signal.SIGINT, request_stop)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
