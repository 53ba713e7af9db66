"""Notebook 05's my_train_epoch: the checker passes the reference, compares with the library's
fit, and rejects the typical wrong loops, naming the failing case."""

import pytest
import torch
from conftest import rejects as shared_rejects
from torch import nn

from seq2seq_lib import Vocab
from seq2seq_lib.exercises import EXERCISES, answer_source

ALL = EXERCISES
check = ALL["train_epoch"].check
PAD = Vocab.pad_id


@pytest.fixture(autouse=True)
def checkpoint_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQ2SEQ_CHECKPOINTS", str(tmp_path))


def rejects(fn, case_name: str, capsys) -> str:
    out = shared_rejects(check, fn, case_name, capsys)
    assert "期望" in out
    return out


def step_loss(model, batch):
    logits = model(batch.src, batch.src_lens, batch.trg)
    target = batch.trg[1:]
    loss = nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=PAD)
    return loss, int((target != PAD).sum())


def loop(model, loader, optimizer, clip, *, train=True, zero_grad=True, clip_first=True,
         per_batch=False):
    """The reference loop with one mistake switched on at a time."""
    if train:
        model.train()
    total, tokens, means = 0.0, 0, []
    for batch in loader:
        if zero_grad:
            optimizer.zero_grad()
        loss, n = step_loss(model, batch)
        loss.backward()
        if clip_first:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        if not clip_first:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        total, tokens = total + loss.item() * n, tokens + n
        means.append(loss.item())
    return sum(means) / len(means) if per_batch else total / tokens


def test_the_loop_with_every_mistake_off_passes(capsys):
    assert check(loop) is True
    assert check(lambda *a: torch.tensor(loop(*a))) is True  # a 0-dim tensor is a number too
    capsys.readouterr()


def test_train_epoch_rejects_typical_mistakes(capsys):
    out = rejects(lambda *a: loop(*a, per_batch=True), "批量的词元数差很多：按词元加权平均",
                  capsys)
    assert "返回的平均损失" in out
    rejects(lambda *a: loop(*a, clip_first=False), "clip=0.05：梯度真的被裁剪", capsys)
    out = rejects(lambda *a: loop(*a, zero_grad=False), "三个批量，有填充", capsys)
    assert "返回的平均损失" in out or "训练后的参数" in out
    rejects(lambda *a: loop(*a, train=False), "模型交来时处于 eval() 模式，dropout=0.3", capsys)


def test_train_epoch_rejects_a_loss_on_the_wrong_rows_and_no_step(capsys):
    def shifted(model, loader, optimizer, clip):  # scores logits[t] against trg[t] (the input)
        model.train()
        for batch in loader:
            optimizer.zero_grad()
            logits = model(batch.src, batch.src_lens, batch.trg)
            loss = nn.functional.cross_entropy(logits.flatten(0, 1), batch.trg[:-1].flatten(),
                                               ignore_index=PAD)
            loss.backward()
            optimizer.step()
        return loss.item()

    rejects(shifted, "一个批量，没有填充（clip 很大，不起作用）", capsys)
    out = rejects(lambda model, loader, optimizer, clip: None,
                  "一个批量，没有填充（clip 很大，不起作用）", capsys)
    assert "应返回一个数" in out


def test_the_reference_answer_is_the_library_fit_on_the_same_batches():
    """What the checker relies on: the reference loop and one epoch of fit agree exactly."""
    from seq2seq_lib.exercises import nb05_train

    namespace: dict = {}
    exec(answer_source("train_epoch"), namespace)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the checker runs them: a tiny model is faster on one thread
    try:
        compare_with_fit(nb05_train, namespace["my_train_epoch"])
    finally:
        torch.set_num_threads(threads)


def compare_with_fit(nb05_train, mine_fn):
    for case in nb05_train._train_epoch_cases():
        mine, library = case.run(mine_fn), case.run(nb05_train._library_epoch)
        assert abs(mine["返回的平均损失"] - library["返回的平均损失"]) < 1e-5, case.name
        for key in mine:
            if key.startswith("训练后的参数"):
                torch.testing.assert_close(mine[key], library[key], rtol=0, atol=1e-6, msg=key)
