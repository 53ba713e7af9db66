"""Several training processes started by ``torchrun``: who am I, and sums over all of us.

``torchrun --nproc_per_node=N -m seq2seq_lib train ...`` starts N copies of the command and
tells each its place in the environment (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``).
:func:`init_distributed` reads it and joins PyTorch's process group: NCCL between GPUs, gloo
between CPU processes. A :class:`DistContext` is what the trainer needs to know about it; the
default, :data:`SINGLE`, is one process on its own, and then nothing here communicates.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from .device import choose_device

# how long a process waits for the others at a collective before giving up with an error
COLLECTIVE_TIMEOUT = timedelta(minutes=10)


@dataclass(frozen=True)
class DistContext:
    """This process's place among ``world_size`` training processes (rank 0 is the main one:
    it alone prints, draws and writes files)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")  # where collective tensors live

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def sum(self, values: list[float]) -> list[float]:
        """Each value summed over all processes (every process must call this at the same point)."""
        if not self.enabled:
            return list(values)
        buf = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(buf)
        return buf.tolist()

    def gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj`` (picklable), in rank order, on every process."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


SINGLE = DistContext()


def launched_by_torchrun() -> bool:
    """Whether this process is one of several started by ``torchrun``."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device_preference: str = "auto") -> tuple[DistContext, torch.device]:
    """Join the process group that ``torchrun`` set up (or stay alone when it did not).

    Each process gets its own GPU (``cuda:LOCAL_RANK``) and NCCL when CUDA is available (or
    asked for), else the CPU and gloo. Apple's MPS cannot train in several processes.
    :return: this process's :class:`DistContext` and the device it trains on.
    """
    if not launched_by_torchrun():
        return SINGLE, choose_device(device_preference, verbose=False)
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    kind = torch.device(device_preference).type if device_preference != "auto" else (
        "cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device_preference!r} asked for, but no CUDA GPU is available")
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"process {local_rank} of this machine has no GPU of its own "
                             f"({torch.cuda.device_count()} visible): start at most that many")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", timeout=COLLECTIVE_TIMEOUT, device_id=device)
    elif kind == "cpu":
        device = torch.device("cpu")
        dist.init_process_group("gloo", timeout=COLLECTIVE_TIMEOUT)
    else:
        raise ValueError(f"device={device_preference!r}: several processes train on CUDA GPUs "
                         "(NCCL) or CPUs (gloo), not on MPS")
    return DistContext(rank, world_size, local_rank, device), device


def shutdown_distributed(ctx: DistContext, finished: bool = False) -> None:
    """Leave the process group (a no-op for a single process).

    ``finished``: every process got to the end, so they first wait for each other. Otherwise a
    process that is done early (the others still evaluate or write) tears down its gloo
    connections while they are in use, and one of them can abort ("terminate called without
    an active exception"). After an error there is no waiting: torchrun stops the others.
    """
    if ctx.enabled and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()


@contextlib.contextmanager
def process_group(device_preference: str = "auto") -> Iterator[tuple[DistContext, torch.device]]:
    """:func:`init_distributed` for the ``with`` block, then :func:`shutdown_distributed`:
    after waiting for the others when the block got to its end, at once after an error."""
    ctx, device = init_distributed(device_preference)
    finished = False
    try:
        yield ctx, device
        finished = True
    finally:
        shutdown_distributed(ctx, finished)
