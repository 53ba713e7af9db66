"""Two training processes on the CPU (gloo), started by ``torchrun``, on the tiny corpus.

They end with the same weights, equal (within float rounding) to one process trained on the
same global batches; only the first one writes checkpoints; Ctrl-C or a NaN in one of them stops
both at the same step; and a process that dies ends the whole job with an error instead of
leaving the other one waiting.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest
import torch
from conftest import TINY_MODEL
from torch.utils.data import DataLoader

from seq2seq_lib import BucketBatchSampler, TrainConfig, collate, load_checkpoint, make_loader
from seq2seq_lib.parallel import DistContext
from seq2seq_lib.recipe import make_loaders, new_model
from seq2seq_lib.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("ddp_worker.py")
WORLD = 2
TIMEOUT = 120  # seconds a torchrun job may take before the test calls it a hang


def torchrun(folder: Path, *extra: str) -> subprocess.CompletedProcess:
    """Run the worker in WORLD processes; a job that hangs fails by the timeout (no other
    clock: a loaded machine may be slow, never wrong)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc_per_node={WORLD}", str(WORKER), str(folder), *extra],
                          capture_output=True, text=True, timeout=TIMEOUT, env=env, cwd=ROOT)


def settings(folder: Path) -> TrainConfig:
    """Per process: 4 sentences per batch, 3 steps per epoch (5 batches filled up to 6), 2 epochs;
    fp32 and no dropout, so that two processes and one can agree to float rounding; the
    processes agree on the loss and on stop requests every 2 steps."""
    return TrainConfig(epochs=2, batch_size=4, lr=1e-2, device="cpu", precision="fp32",
                       sync_every=2,
                       checkpoint_path=str(folder / "m.pt"),
                       last_checkpoint_path=str(folder / "m.last.pt"))


class GlobalBatches:
    """What one process sees when it trains alone on the processes' global batches: step k
    joins batch k of every process."""

    def __init__(self, lengths, batch_size: int, seed: int, world: int):
        self.shards = [BucketBatchSampler(lengths, batch_size, seed=seed, num_replicas=world,
                                          rank=r) for r in range(world)]

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        for shard in self.shards:
            shard.set_epoch(epoch, start)

    def __iter__(self):
        for parts in zip(*self.shards):
            yield [i for part in parts for i in part]

    def __len__(self) -> int:
        return len(self.shards[0])


class KeepFinal(Trainer):
    """A trainer that also keeps the weights it ended with (before the best ones come back)."""

    def _end(self, save_last: bool) -> None:
        self.final = {k: v.clone() for k, v in self.model.state_dict().items()}
        super()._end(save_last)


def one_process(data, cfg: TrainConfig) -> dict[str, torch.Tensor]:
    """The same run in this process, on the global batches; the weights it ends with."""
    model = new_model(data, TINY_MODEL, cfg.seed)
    train_loader = DataLoader(data.train, batch_sampler=GlobalBatches(
        data.train.bucket_keys(), cfg.batch_size, cfg.seed, WORLD),
        collate_fn=partial(collate, pad_id=data.train.pad_id))
    valid_loader = make_loader(data.valid, 256, bucket=False, shuffle=False)
    trainer = KeepFinal(model, train_loader, valid_loader,
                        replace(cfg, checkpoint_path=None, last_checkpoint_path=None),
                        progress=False)
    trainer.fit()
    assert trainer.state.step == 6
    return trainer.final


@pytest.fixture(scope="module")
def job(tiny_data, tmp_path_factory):
    """One 2-process run: (folder, completed process, prepared data, settings)."""
    data_cfg, data = tiny_data
    folder = tmp_path_factory.mktemp("ddp")
    cfg = settings(folder)
    with open(folder / "setup.pkl", "wb") as fh:
        pickle.dump((data_cfg, data, TINY_MODEL, cfg), fh)
    proc = torchrun(folder)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder, proc, data, cfg


def test_both_processes_end_with_the_same_weights(job):
    folder, *_ = job
    rank0 = torch.load(folder / "rank0.pt", weights_only=True)
    rank1 = torch.load(folder / "rank1.pt", weights_only=True)
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name


def test_two_processes_train_like_one_on_the_same_global_batches(job):
    folder, _, data, cfg = job
    ddp = torch.load(folder / "rank0.pt", weights_only=True)
    alone = one_process(data, cfg)
    diff = max(float((ddp[k] - alone[k]).abs().max()) for k in ddp)
    # float rounding, amplified by Adam where a gradient is almost zero, stays below 1e-4 (on
    # the order of 1e-5); weighting each process's mean loss equally instead of by its tokens
    # moves weights by more than 1e-2
    assert diff < 1e-3, f"largest weight difference {diff:.2e}"


def test_only_the_first_process_writes_checkpoints(job):
    folder, *_ = job
    assert (folder / "writes.rank1.txt").read_text(encoding="utf-8") == ""
    written = set((folder / "writes.rank0.txt").read_text(encoding="utf-8").split())
    assert written == {"m.pt", "m.last.pt"}
    left = {p.name for p in folder.iterdir()}
    assert left == {"setup.pkl", "m.pt", "m.last.pt", "rank0.pt", "rank1.pt",
                    "writes.rank0.txt", "writes.rank1.txt"}  # no temporary file left behind


def prepared(tiny_data, folder: Path) -> Path:
    data_cfg, data = tiny_data
    with open(folder / "setup.pkl", "wb") as fh:
        pickle.dump((data_cfg, data, TINY_MODEL, settings(folder)), fh)
    return folder


def test_ctrl_c_in_one_process_stops_both_at_the_same_step(tiny_data, tmp_path):
    proc = torchrun(prepared(tiny_data, tmp_path), "--interrupt-at", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = load_checkpoint(tmp_path / "m.last.pt")["trainer_state"]
    # at the next agreement (every 2 steps): step 2, global batch 4; the next step not taken
    assert (saved["epoch"], saved["batch"], saved["step"]) == (1, 4, 2)
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)


def test_a_nan_in_one_process_stops_both_with_the_best_weights_kept(tiny_data, tmp_path):
    proc = torchrun(prepared(tiny_data, tmp_path), "--nan-at", "4")
    assert proc.returncode != 0
    # found at the next agreement, step 4: epoch 2 after its first step (2 global batches)
    assert proc.stderr.count("epoch 2, batch 2: the training loss became nan") >= 2  # both
    best = load_checkpoint(tmp_path / "m.pt")
    assert best["epoch"] == 1 and all(torch.isfinite(v).all() for v in best["model_state"].values())


def test_a_process_that_dies_ends_the_job_with_an_error(tiny_data, tmp_path):
    proc = torchrun(prepared(tiny_data, tmp_path), "--die-at", "2")
    assert proc.returncode != 0
    report = proc.stdout + proc.stderr
    assert "exitcode" in report and "3" in report, report[-3000:]


def test_the_command_line_under_torchrun(tmp_path):
    """``torchrun ... -m seq2seq_lib train``: one process reports, one writes the checkpoints."""
    out = tmp_path / "m.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         f"--nproc_per_node={WORLD}", "-m", "seq2seq_lib", "train", "--src",
         str(ROOT / "tests/data/tiny.zh"), "--trg", str(ROOT / "tests/data/tiny.en"),
         "--epochs", "2", "--batch-size", "4", "--emb-dim", "16", "--hid-dim", "16",
         "--n-layers", "1", "--min-freq", "1", "--device", "cpu", "--quiet", "--out", str(out)],
        capture_output=True, text=True, timeout=TIMEOUT, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("test BLEU") == 1 and "2 process(es) (torchrun)" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "m.config.yaml", "m.last.pt", "m.metrics.csv", "m.metrics.jsonl", "m.pt"]
    lines = (tmp_path / "m.metrics.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2  # one per validation: only the first process writes
    saved = load_checkpoint(tmp_path / "m.last.pt")["trainer_state"]
    assert (saved["world_size"], saved["step"], len(saved["rng"])) == (WORLD, 6, WORLD)


def test_validating_a_process_share_draws_nothing_from_the_training_generator(tiny_data):
    """A DataLoader without a generator of its own takes a seed from torch's global generator
    (dropout's) every time it is iterated: under DDP every validation changed the training
    that followed, so a mid-epoch resume could not be exact."""
    _, data = tiny_data
    cfg = TrainConfig(batch_size=4)
    for rank in range(WORLD):
        _, valid_loader = make_loaders(data, cfg, DistContext(rank=rank, world_size=WORLD))
        torch.manual_seed(0)
        before = torch.get_rng_state()
        assert sum(b.batch_size for b in valid_loader) == len(data.valid) // WORLD
        assert torch.equal(torch.get_rng_state(), before)
