"""Notebook 05's loop exercise: ``my_train_epoch``, one pass over the batches (the step that
05 writes out, in a loop), returning the token-weighted mean loss, checked against the library's
:func:`~seq2seq_lib.trainer.fit` on the same seeded batches and a tiny model."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from ..batching import Batch, collate
from ..builders import build_model
from ..config import ModelConfig, TrainConfig
from ..parallel import SINGLE
from ..train import make_optimizer
from ..trainer import fit
from ..trainer.order import EpochOrder
from ..vocab import Vocab
from .harness import Exercise, _Case, _check, _fmt, register

CPU = torch.device("cpu")
VOCAB = 11  # source and target vocabulary of the tiny model
LR = 0.01  # large enough that every mistake moves the weights visibly
SEED = 3


def answer_train_epoch(model: nn.Module, loader: Iterable[Batch], optimizer: torch.optim.Optimizer,
                       clip: float) -> float:
    """One epoch of training: for every batch, the loss, its gradients, clipping, one step.

    :param model: a ``Seq2Seq``; ``model(batch.src, batch.src_lens, batch.trg)`` returns logits
        [trg_len - 1, batch, trg_vocab], row t predicting ``trg[t + 1]``.
    :param loader: batches with ``src`` [src_len, batch], ``src_lens`` [batch] and ``trg``
        [trg_len, batch] (padded with ``Vocab.pad_id``).
    :param optimizer: the optimizer of ``model``'s parameters.
    :param clip: the largest gradient norm allowed (``nn.utils.clip_grad_norm_``) at each step.
    :return: the mean loss per real target token over the whole epoch (a float): each batch's
        mean loss weighted by its number of non-pad target tokens, not the mean of the batches.
    """
    model.train()  # dropout on while training
    total, tokens = 0.0, 0
    for batch in loader:
        optimizer.zero_grad()  # gradients add up: clear the previous step's
        logits = model(batch.src, batch.src_lens, batch.trg)  # [trg_len - 1, batch, V]
        target = batch.trg[1:]  # [trg_len - 1, batch]: what each row of logits predicts
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten(),
                                           ignore_index=Vocab.pad_id)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)  # after backward, before the step
        optimizer.step()
        n_tokens = int((target != Vocab.pad_id).sum())
        total += loss.item() * n_tokens  # the batch's summed loss
        tokens += n_tokens
    return total / tokens


def _library_epoch(model: nn.Module, loader: Sequence[Batch], optimizer: torch.optim.Optimizer,
                   clip: float) -> float:
    """The library's training on these batches: one epoch of :func:`fit` (its own Adam, with the
    learning rate of ``optimizer``), on the CPU in float32; its token-weighted training loss."""
    cfg = TrainConfig(epochs=1, lr=optimizer.param_groups[0]["lr"], clip=clip, seed=SEED,
                      precision="fp32", device="cpu", checkpoint_path=None)
    result = fit(model, list(loader), list(loader[:1]), cfg, progress=False, device=CPU)
    return result.history[-1]["train_loss"]


def _epoch_seed() -> int:
    """The seed :func:`fit` gives epoch 1's random numbers (dropout): the learner's run gets it."""
    return EpochOrder([], SEED, SINGLE, CPU).epoch_seed(1)


def _batches(*batches: Sequence[tuple[list[int], list[int]]]) -> list[Batch]:
    return [collate([(torch.tensor(s), torch.tensor(t)) for s, t in b]) for b in batches]


def _case(name: str, point: str, batches: list[Batch], clip: float = 100.0, dropout: float = 0.0,
          n_layers: int = 1, given_in_eval: bool = False) -> _Case:
    cfg = ModelConfig(emb_dim=6, hid_dim=7, n_layers=n_layers, dropout=dropout)
    torch.manual_seed(SEED)
    state = build_model(cfg, VOCAB, VOCAB).state_dict()

    def run(fn: Callable) -> dict[str, Any]:
        model = build_model(cfg, VOCAB, VOCAB)
        model.load_state_dict(state)
        model.train(not given_in_eval)
        optimizer = make_optimizer(model, LR, CPU)  # the Adam that fit makes
        torch.manual_seed(_epoch_seed())  # the same dropout masks as fit's
        loss = fn(model, batches, optimizer, clip)
        return {"返回的平均损失": loss if isinstance(loss, float) else _as_float(loss),
                **{f"训练后的参数 {n}": p.detach().clone() for n, p in model.named_parameters()}}

    sizes = ", ".join(f"{list(b.trg.shape)}" for b in batches)
    shown = (f"{len(batches)} 个批量（trg 形状 {sizes}，trg 的第一个批量 {_fmt(batches[0].trg)}），"
             f"clip={clip}，Adam lr={LR}，模型 emb 6 / hid 7 / n_layers {n_layers} / dropout "
             f"{dropout}" + ("，交来时处于 eval() 模式" if given_in_eval else ""))
    return _Case(name, run, shown, point)


def _as_float(loss: Any) -> Any:
    """A 0-dim tensor as a float (allowed); anything else is left for the comparison to reject."""
    if isinstance(loss, torch.Tensor) and loss.dim() == 0:
        return float(loss)
    return loss


def _train_epoch_cases() -> list[_Case]:
    same = [([2, 5, 6, 3], [2, 7, 8, 3]), ([2, 6, 5, 3], [2, 8, 9, 3]), ([2, 4, 7, 3], [2, 9, 4, 3])]
    padded = [([2, 5, 6, 7, 3], [2, 7, 3]), ([2, 4, 3], [2, 8, 9, 10, 6, 3])]  # 7 target tokens
    padded_too = [([2, 4, 3], [2, 8, 9, 10, 3]), ([2, 5, 6, 3], [2, 7, 8, 3])]  # 7 as well
    long = [([2, 5, 6, 7, 8, 3], [2, 7, 8, 9, 10, 4, 5, 3])] * 3
    short = [([2, 9, 3], [2, 6, 3])]
    return [
        _case("一个批量，没有填充（clip 很大，不起作用）", "每个批量：zero_grad → 前向 → 损失（logits 对 trg[1:]）→ "
              "backward → clip_grad_norm_ → step。", _batches(same)),
        _case("三个批量，有填充", "每一步之前清零梯度（optimizer.zero_grad()），否则梯度会累加；"
              "目标是 <pad> 的位置不算进损失。", _batches(padded, padded_too, padded)),
        _case("批量的词元数差很多：按词元加权平均", "返回的是整个 epoch 每个真实目标词的平均损失："
              "每个批量的平均损失乘以它的词元数，加起来，再除以总词元数，不是批量平均的平均。",
              _batches(long, short)),
        _case("clip=0.05：梯度真的被裁剪", "clip_grad_norm_ 要在 backward() 之后、step() 之前；"
              "放在 step() 之后就不起作用了。", _batches(same, padded, long), clip=0.05),
        _case("模型交来时处于 eval() 模式，dropout=0.3", "开头要 model.train()：训练时暂退法要开着"
              "（评估或解码之后模型可能还在 eval() 模式）。", _batches(padded, same), dropout=0.3,
              n_layers=2, given_in_eval=True),
    ]


def check_train_epoch(fn: Callable) -> bool:
    """Check ``fn(model, loader, optimizer, clip) -> float`` against one epoch of the library's
    :func:`~seq2seq_lib.trainer.fit`: the returned loss and every weight after the epoch."""
    hint = ("先 model.train()；对每个批量：optimizer.zero_grad()，logits = model(batch.src, "
            "batch.src_lens, batch.trg)，对 batch.trg[1:] 求交叉熵（ignore_index=Vocab.pad_id），"
            "loss.backward()，nn.utils.clip_grad_norm_(model.parameters(), clip)，optimizer.step()；"
            "累加 损失 × 词元数 和 词元数，最后返回两者之比。")
    return _check(fn, hint, _train_epoch_cases, _library_epoch)


register(Exercise("train_epoch", "05", "my_train_epoch", check_train_epoch, answer_train_epoch,
                  "from collections.abc import Iterable\n\nimport torch\nfrom torch import nn\n\n"
                  "from seq2seq_lib import Batch, Vocab"))
