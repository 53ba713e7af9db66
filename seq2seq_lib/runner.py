"""A training job in a background thread, with no user interface of its own.

The notebook's training dashboard (:class:`~seq2seq_lib.widgets.TrainingDashboard`) is a view
over one: the thread, the stop event, the result and the error live here, the buttons and plots
there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .trainer import FitResult


class BackgroundRun:
    """One training job in a background thread, with no user interface of its own.

    ``start(job)`` runs ``job(stop_event)`` in a daemon thread and keeps its ``result`` or its
    ``error``; ``stop()`` sets the event (the job passes it to :func:`fit`); ``wait()`` blocks
    until the job is over. ``on_done(run)`` is called in the thread when it ends, either way.
    """

    def __init__(self) -> None:
        self.stop_event = threading.Event()
        self.result: FitResult | None = None
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self, job: Callable[[threading.Event], FitResult],
              on_done: Callable[[BackgroundRun], None] | None = None) -> None:
        if self.running:
            raise RuntimeError("training is already running: press Stop or call wait() first")
        self.result, self.error = None, None
        self.stop_event.clear()

        def target() -> None:
            try:
                self.result = job(self.stop_event)
            except Exception as exc:  # noqa: BLE001 - kept for wait() to raise
                self.error = exc
            finally:
                if on_done is not None:
                    on_done(self)

        self._thread = threading.Thread(target=target, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the job to end after the current batch."""
        self.stop_event.set()

    def wait(self, timeout: float | None = None) -> FitResult:
        """Block until the job has ended; returns its result or raises its error.

        Interrupting (Ctrl-C, or the notebook's ■) while waiting stops the job cleanly.
        """
        if self._thread is None:
            raise RuntimeError("nothing to wait for: call train() (or press Train) first")
        try:
            self._thread.join(timeout)
        except KeyboardInterrupt:
            self.stop()
            self._thread.join()
        if self.running:
            raise TimeoutError(f"training still running after {timeout} s")
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result
