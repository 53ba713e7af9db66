"""The training engine, in three parts that each read in one sitting:

* :mod:`~seq2seq_lib.trainer.loop`: the :class:`Trainer` (epochs, steps, validation cadence,
  callbacks ``on_step`` / ``on_validation`` / ``on_epoch``) and :func:`fit`, its simple entry;
* :mod:`~seq2seq_lib.trainer.keeper`: the checkpoint keeper, the *last* and the *best* state,
  each written whole and atomically when it happens and never rewritten;
* :mod:`~seq2seq_lib.trainer.stopping`: the stop signals (Ctrl-C, a Stop event, a callback,
  the time budget, a NaN loss, the patience).

:mod:`~seq2seq_lib.trainer.state` holds what a resumed run needs besides weights and optimizer
(:class:`TrainState`, the random-number generators).

With several processes (``torchrun``, see :mod:`seq2seq_lib.parallel`) a step takes one
global batch of the sampler's order, split among them; every process knows the step's token
count over all of them from the sampler (no collective), so the loss is the mean over all
tokens of the step. Every ``sync_every`` steps one collective sums the training loss and the
stop requests, so a Stop, a time budget or Ctrl-C on one process ends all of them at the same
step; validation sums (loss × tokens, tokens) over the processes; only the main process prints,
calls the callbacks and writes files. ``accumulate`` micro-batches per process make a step
(DDP's gradient all-reduce runs on the last one only).
"""

from .keeper import CheckpointKeeper, Snapshot
from .loop import EVENTS, EpochCallback, FitResult, Hook, Trainer, ValidBleu, fit
from .state import TrainState
from .stopping import STOP_REQUESTS, StopSignals

__all__ = ["EVENTS", "STOP_REQUESTS", "CheckpointKeeper", "EpochCallback", "FitResult", "Hook",
           "Snapshot", "StopSignals", "TrainState", "Trainer", "ValidBleu", "fit"]
