"""One of the training processes of ``tests/test_distributed.py``, started by ``torchrun``.

``python -m torch.distributed.run --nproc_per_node=2 tests/ddp_worker.py FOLDER [--die-at N]``
reads the prepared tiny corpus (or the folder of a preprocessed cache) and the settings from
``FOLDER/setup.pkl`` (no tokenizer is loaded), trains on the CPU (gloo) through the library's
recipe (from ``--resume CKPT`` if given), and leaves in ``FOLDER``:

* ``rank{R}.pt``: the weights process R ended with (before the best ones are put back);
* ``writes.rank{R}.txt``: every checkpoint file process R wrote, one a line;
* with ``--snapshot-at N``: ``m.step{N}.pt``, a copy of the last state written at step N;
* ``steps.txt``: "epoch batch step" after every step (process 0), batch counting global batches.

Process 1 misbehaves in its N-th training step with ``--die-at N`` (exits abruptly with status
3), ``--interrupt-at N`` (gets a SIGINT, as from Ctrl-C) or ``--nan-at N`` (its loss is NaN).
With ``--clock-skew S`` process 0's clock starts S seconds early (its time budget is further
along than process 1's).
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import signal
from pathlib import Path

import torch

import seq2seq_lib.trainer.keeper as keeper_mod
from seq2seq_lib.cache import load_cache
from seq2seq_lib.parallel import process_group
from seq2seq_lib.recipe import train_model
from seq2seq_lib.train import batch_loss
from seq2seq_lib.trainer import Trainer
from seq2seq_lib.trainer.stopping import StopSignals


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("--die-at", type=int, default=0)
    parser.add_argument("--interrupt-at", type=int, default=0)
    parser.add_argument("--nan-at", type=int, default=0)
    parser.add_argument("--resume", type=Path)
    parser.add_argument("--snapshot-at", type=int, default=0)
    parser.add_argument("--clock-skew", type=float, default=0.0)
    args = parser.parse_args()
    folder: Path = args.folder
    with open(folder / "setup.pkl", "rb") as fh:
        data_cfg, data, model_cfg, train_cfg = pickle.load(fh)
    if isinstance(data, str):  # a cache: every process maps the same files
        data = load_cache(data)
        data_cfg = data.data_config()
    with process_group("cpu") as (ctx, device):
        writes = folder / f"writes.rank{ctx.rank}.txt"
        writes.write_text("", encoding="utf-8")
        real_save = keeper_mod.save_checkpoint

        def recording_save(path, *a, **kw):
            with writes.open("a", encoding="utf-8") as fh:
                fh.write(f"{Path(path).name}\n")
            return real_save(path, *a, **kw)

        keeper_mod.save_checkpoint = recording_save
        real_end = Trainer._end

        def dump_then_end(trainer, save_last):
            torch.save(trainer.model.state_dict(), folder / f"rank{ctx.rank}.pt")
            real_end(trainer, save_last)

        Trainer._end = dump_then_end
        real_start = StopSignals.start

        def skewed_start(stops):
            real_start(stops)
            if ctx.rank == 0:
                stops.started -= args.clock_skew

        StopSignals.start = skewed_start
        steps = 0

        def loss_fn(model, batch, teacher_forcing_ratio):
            nonlocal steps
            steps += 1
            if ctx.rank == 1 and steps == args.die_at:
                os._exit(3)  # no clean-up, like a process killed by the system
            if ctx.rank == 1 and steps == args.interrupt_at:
                signal.raise_signal(signal.SIGINT)
            loss, n = batch_loss(model, batch, teacher_forcing_ratio)
            if ctx.rank == 1 and steps == args.nan_at:
                loss = loss * float("nan")
            return loss, n

        def snapshot(trainer):
            if trainer.state.step == args.snapshot_at:
                last = Path(train_cfg.last_checkpoint_path)
                shutil.copy(last, last.with_name(f"m.step{args.snapshot_at}.pt"))

        def log_position(trainer):
            with (folder / "steps.txt").open("a", encoding="utf-8") as fh:
                fh.write(f"{trainer.state.epoch} {trainer.state.batch} {trainer.state.step}\n")

        train_model(data, data_cfg, model_cfg, train_cfg, dist=ctx, device=device,
                    progress=False, loss_fn=loss_fn, resume_from=args.resume,
                    hooks={"on_validation": [snapshot], "on_step": [log_position]})


if __name__ == "__main__":
    main()
