"""The training engine, in three parts that each read in one sitting:

* :mod:`~seq2seq_lib.trainer.loop`: the :class:`Trainer` (epochs, steps, validation cadence,
  callbacks ``on_step`` / ``on_validation`` / ``on_epoch``) and :func:`fit`, its simple entry;
* :mod:`~seq2seq_lib.trainer.keeper`: the checkpoint keeper, the *last* and the *best* state,
  each written whole and atomically when it happens and never rewritten;
* :mod:`~seq2seq_lib.trainer.stopping`: the stop signals (Ctrl-C, a Stop event, a callback,
  the time budget, a NaN loss, the patience).

:mod:`~seq2seq_lib.trainer.state` holds what a resumed run needs besides weights and optimizer
(:class:`TrainState`, the random-number generators).

With several processes (``torchrun``, see :mod:`seq2seq_lib.parallel`) every step sums the
token count and the stop requests over the processes, so the loss is the mean over all tokens of
the step and a Stop, a time budget or Ctrl-C on one process ends all of them at the same step;
validation sums (loss × tokens, tokens) over the processes; only the main process prints,
calls the callbacks and writes files.
"""

from .keeper import CheckpointKeeper, Snapshot
from .loop import EVENTS, EpochCallback, FitResult, Hook, Trainer, ValidBleu, fit
from .state import TrainState
from .stopping import STOP_REQUESTS, StopSignals

__all__ = ["EVENTS", "STOP_REQUESTS", "CheckpointKeeper", "EpochCallback", "FitResult", "Hook",
           "Snapshot", "StopSignals", "TrainState", "Trainer", "ValidBleu", "fit"]
