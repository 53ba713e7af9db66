"""Two training processes on the CPU (gloo), started by ``torchrun``, on the tiny corpus.

Ctrl-C or a NaN in one of them stops both at the same step; a process that dies ends the whole
job with an error instead of leaving the other one waiting; the command line trains a cache
under torchrun. (Equal weights, one writer, resumes with another number of processes and two
"nodes": tests/test_scale_distributed.py.)
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import torch
from conftest import TINY_MODEL, ranks_end_alike

from seq2seq_lib import TrainConfig, load_checkpoint
from seq2seq_lib.cache import preprocess
from seq2seq_lib.config import DataConfig
from seq2seq_lib.parallel import DistContext
from seq2seq_lib.recipe import make_loaders

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


def prepared(tiny_data, folder: Path, **changes) -> Path:
    data_cfg, data = tiny_data
    with open(folder / "setup.pkl", "wb") as fh:
        pickle.dump((data_cfg, data, TINY_MODEL, replace(settings(folder), **changes)), fh)
    return folder


def test_ctrl_c_in_one_process_stops_both_at_the_same_step(tiny_data, tmp_path):
    proc = torchrun(prepared(tiny_data, tmp_path), "--interrupt-at", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = load_checkpoint(tmp_path / "m.last.pt")["trainer_state"]
    # at the next agreement (every 2 steps): step 2, global batch 4; the next step not taken
    assert (saved["epoch"], saved["batch"], saved["step"]) == (1, 4, 2)
    assert ranks_end_alike(tmp_path)


def test_a_nan_in_one_process_stops_both_with_the_best_weights_kept(tiny_data, tmp_path):
    proc = torchrun(prepared(tiny_data, tmp_path), "--nan-at", "4")
    assert proc.returncode != 0
    # found at the next agreement, step 4: epoch 2 after its first step (2 global batches)
    assert proc.stderr.count("epoch 2, batch 2: the training loss became nan") >= 2  # both
    best = load_checkpoint(tmp_path / "m.pt")
    assert best["epoch"] == 1 and all(torch.isfinite(v).all() for v in best["model_state"].values())


def test_a_cooldown_by_the_time_budget_follows_the_first_process_clock(tiny_data, tmp_path):
    """Each process steps with the learning rate of the first one's clock (agreed every 2
    steps): a rate from its own clock would set their weights apart. Process 0's clock starts
    40 s into the 60 s budget, so its rate is already lower than the epochs alone would make it."""
    folder = prepared(tiny_data, tmp_path, max_minutes=1.0, cooldown=1.0)
    proc = torchrun(folder, "--clock-skew", "40")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert ranks_end_alike(tmp_path)
    first = load_checkpoint(tmp_path / "m.last.pt")["history"][0]
    lr = settings(folder).lr  # epoch 1's last step: 2 of 6 steps done, by the clock over 40/60
    assert first["step"] == 3 and first["lr"] < lr * (1 - 40 / 60)


def test_a_process_that_dies_ends_the_job_with_an_error(tiny_data, tmp_path):
    proc = torchrun(prepared(tiny_data, tmp_path), "--die-at", "2")
    assert proc.returncode != 0
    report = proc.stdout + proc.stderr
    assert "exitcode" in report and "3" in report, report[-3000:]


def test_the_command_line_under_torchrun(tmp_path):
    """``torchrun ... -m seq2seq_lib train --data-dir DIR`` (it used to be refused): every
    process maps the same cache; one process reports, one writes the checkpoints."""
    cache, out = tmp_path / "cache", tmp_path / "run" / "m.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    preprocess(DataConfig(source="parallel", src_path=str(ROOT / "tests/data/tiny.zh"),
                          trg_path=str(ROOT / "tests/data/tiny.en"), valid_frac=0.1,
                          test_frac=0.1, min_freq=1), cache, workers=1, progress=False)
    out.parent.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         f"--nproc_per_node={WORLD}", "-m", "seq2seq_lib", "train", "--data-dir", str(cache),
         "--epochs", "2", "--batch-size", "4", "--emb-dim", "16", "--hid-dim", "16",
         "--n-layers", "1", "--device", "cpu", "--quiet", "--out", str(out)],
        capture_output=True, text=True, timeout=TIMEOUT, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("test BLEU") == 1 and "2 processes (torchrun) x 1 batch of" in proc.stdout
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "m.config.yaml", "m.last.pt", "m.metrics.csv", "m.metrics.jsonl", "m.pt"]
    lines = (out.parent / "m.metrics.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2  # one per validation: only the first process writes
    saved = load_checkpoint(out.parent / "m.last.pt")
    # 15 training pairs: 4 batches of 4 a epoch, 2 steps of 2 batches
    assert (saved["trainer_state"]["world_size"], saved["trainer_state"]["step"],
            len(saved["trainer_state"]["rng"])) == (WORLD, 4, WORLD)
    assert saved["info"].truecaser is not None  # the cache's


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
