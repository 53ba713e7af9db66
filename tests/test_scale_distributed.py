"""A preprocessed cache trained by several processes (gloo on the CPU, started by torchrun):
every process maps the same cache and reads only its share of each global batch.

Two processes end with the same weights, close to one process that accumulates the same two
batches per step; only the first writes; a run resumed with another number of processes goes
on at its next global batch; and two "nodes" on this machine (a c10d rendezvous) train as one
node with two processes. The runs are small (a tiny model, 15 training pairs, 2 epochs), so
these launches stay within seconds each.
"""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY_MODEL, ranks_end_alike

from seq2seq_lib import TrainConfig, load_checkpoint
from seq2seq_lib.cache import load_cache, preprocess
from seq2seq_lib.config import DataConfig
from seq2seq_lib.recipe import train_model

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
WORKER = Path(__file__).with_name("ddp_worker.py")
TIMEOUT = 120  # seconds a torchrun job may take before the test calls it a hang
# 15 training pairs: 15 batches of 1 an epoch; a step of 2 processes x 2 accumulated batches
# (or 1 process x 4) takes 4: 4 steps an epoch (the last filled up), 2 epochs
STEPS = 8


def settings(folder: Path, accumulate: int = 2) -> TrainConfig:
    """1 sentence a batch, fp32 and no dropout (processes and one process agree to rounding);
    a validation (and a last state) every 2 steps; the processes agree every 2 steps."""
    return TrainConfig(epochs=2, batch_size=1, lr=1e-2, device="cpu", precision="fp32",
                       valid_every=2, sync_every=2, accumulate=accumulate,
                       checkpoint_path=str(folder / "m.pt"),
                       last_checkpoint_path=str(folder / "m.last.pt"))


def torchrun(folder: Path, *extra: str, launcher: tuple[str, ...] = ("--standalone",
             "--nproc_per_node=2")) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *launcher,
                             str(WORKER), str(folder), *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def finished(*procs: subprocess.Popen) -> None:
    for proc in procs:
        _, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, err[-3000:]


def prepare(folder: Path, cache: Path, cfg: TrainConfig) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "setup.pkl", "wb") as fh:
        pickle.dump((None, str(cache), TINY_MODEL, cfg), fh)
    return folder


def positions(folder: Path) -> list[tuple[int, ...]]:
    lines = (folder / "steps.txt").read_text(encoding="utf-8").splitlines()
    return [tuple(map(int, line.split())) for line in lines]


def final_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The weights a run ended with (its last state, written at its last step)."""
    saved = load_checkpoint(folder / "m.last.pt")
    assert saved["trainer_state"]["step"] == STEPS
    return saved["model_state"]


def largest_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def alone(cache: Path, folder: Path, resume: Path | None = None) -> list[tuple[int, ...]]:
    """One process (in this one) accumulating 4 batches a step: the global batches of 2
    processes that accumulate 2 each; keeps its last state at step 2 as ``m.step2.pt``; returns its positions."""
    seen = []
    folder.mkdir(parents=True, exist_ok=True)

    def log(trainer):
        seen.append((trainer.state.epoch, trainer.state.batch, trainer.state.step))

    def snapshot(trainer):
        if trainer.state.step == 2:
            (folder / "m.step2.pt").write_bytes((folder / "m.last.pt").read_bytes())

    data = load_cache(cache)
    train_model(data, data.data_config(), TINY_MODEL, settings(folder, accumulate=4),
                device=torch.device("cpu"), progress=False, resume_from=resume,
                hooks={"on_step": [log], "on_validation": [snapshot]})
    return seen


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("scale") / "cache"
    cfg = DataConfig(source="parallel", src_path=str(DATA / "tiny.zh"),
                     trg_path=str(DATA / "tiny.en"), valid_frac=0.1, test_frac=0.1, min_freq=1)
    preprocess(cfg, out, workers=1, progress=False)
    assert len(load_cache(out).train) == 15
    return out


@pytest.fixture(scope="module")
def job(cache, tmp_path_factory) -> Path:
    """Two processes on the cache, each accumulating 2 batches a step (DDP's all-reduce on the
    second only), 2 epochs; the last state of step 2 kept."""
    folder = tmp_path_factory.mktemp("scale") / "two"
    prepare(folder, cache, settings(folder))
    finished(torchrun(folder, "--snapshot-at", "2"))
    return folder


@pytest.fixture(scope="module")
def single(cache, tmp_path_factory) -> tuple[Path, list[tuple[int, ...]]]:
    folder = tmp_path_factory.mktemp("scale") / "one"
    return folder, alone(cache, folder)


def test_two_processes_on_a_cache_end_alike_and_only_the_first_writes(job):
    assert ranks_end_alike(job)
    assert (job / "writes.rank1.txt").read_text(encoding="utf-8") == ""
    assert set((job / "writes.rank0.txt").read_text(encoding="utf-8").split()) == {
        "m.pt", "m.last.pt"}
    assert {p.name for p in job.iterdir()} == {  # and no temporary file left behind
        "setup.pkl", "m.pt", "m.last.pt", "m.step2.pt", "rank0.pt", "rank1.pt",
        "writes.rank0.txt", "writes.rank1.txt", "steps.txt"}
    assert [p[2] for p in positions(job)] == list(range(1, STEPS + 1))
    # a step takes 4 global batches: epoch 1 ends after 4 steps, the last one filled up
    assert positions(job)[:4] == [(1, 4, 1), (1, 8, 2), (1, 12, 3), (1, 15, 4)]


def test_one_process_on_the_same_global_batches_trains_alike(job, single):
    folder, seen = single
    assert seen == positions(job)
    diff = largest_difference(final_weights(job), final_weights(folder))
    assert diff < 1e-3, f"largest weight difference {diff:.2e}"  # float rounding only


def test_two_processes_resumed_with_one_go_on_at_the_next_global_batch(job, tmp_path):
    seen = alone(_cache_of(job), tmp_path,
                 resume=job / "m.step2.pt")
    assert seen == positions(job)[2:]  # step 3 takes global batches 8 to 11, and so on
    diff = largest_difference(final_weights(job), final_weights(tmp_path))
    assert diff < 1e-3, f"largest weight difference {diff:.2e}"


def test_one_process_resumed_with_two_goes_on_at_the_next_global_batch(job, single, tmp_path):
    folder, seen = single
    resumed = prepare(tmp_path / "resumed", _cache_of(job), settings(tmp_path / "resumed"))
    finished(torchrun(resumed, "--resume", str(folder / "m.step2.pt")))
    assert positions(resumed) == seen[2:]
    diff = largest_difference(final_weights(job), final_weights(resumed))
    assert diff < 1e-3, f"largest weight difference {diff:.2e}"


def test_two_nodes_on_this_machine_train_as_one_node_with_two_processes(job, tmp_path):
    """``torchrun --nnodes=2 --nproc_per_node=1`` twice, meeting at a c10d rendezvous on
    127.0.0.1 (what two machines of a cluster run, each with its own copy of the command)."""
    folder = prepare(tmp_path / "nodes", _cache_of(job), settings(tmp_path / "nodes"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launcher = ("--nnodes=2", "--nproc_per_node=1", "--rdzv-backend=c10d",
                f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=scale-test")
    finished(torchrun(folder, launcher=launcher), torchrun(folder, launcher=launcher))
    two = torch.load(job / "rank0.pt", weights_only=True)
    for rank in (0, 1):
        node = torch.load(folder / f"rank{rank}.pt", weights_only=True)
        assert largest_difference(two, node) < 1e-6
    assert (folder / "writes.rank1.txt").read_text(encoding="utf-8") == ""


def _cache_of(job: Path) -> Path:
    with open(job / "setup.pkl", "rb") as fh:
        return Path(pickle.load(fh)[1])
