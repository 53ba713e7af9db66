"""Notebook 05's masked loss exercise, and the model 05 trains: the learner's own (notebook 04's
classes, kept by their checks) or the library's."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..builders import build_model
from ..checkpoint import CheckpointInfo
from ..config import DataConfig, ModelConfig, TrainConfig
from ..models import Seq2Seq
from ..pipeline import PreparedData
from ..recipe import make_loaders
from ..train import set_seed
from ..trainer import FitResult, fit
from ..translator import Translator
from ..vocab import Vocab
from .harness import Exercise, _Case, _case, _check, _one_line, register
from .keep import kept_solution

# ---------------------------------------------------------------------------------------------
# 05 · the masked loss
# ---------------------------------------------------------------------------------------------


def answer_masked_loss(logits: torch.Tensor, trg: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Mean cross-entropy over the real (non-pad) target tokens.

    :param logits: [trg_len - 1, batch, vocab]; row t is the prediction for ``trg[t + 1]``.
    :param trg: [trg_len, batch], starting with ``<sos>``, padded with ``pad_id``.
    :return: a 0-dim tensor that ``.backward()`` can start from (the same value as
        ``nn.functional.cross_entropy(logits.flatten(0, 1), trg[1:].flatten(),
        ignore_index=pad_id)``).
    """
    target = trg[1:]  # [trg_len - 1, batch]: the word each row of logits should predict
    log_probs = logits.log_softmax(dim=-1)  # [trg_len - 1, batch, vocab], numerically stable
    nll = -log_probs.gather(-1, target.unsqueeze(-1)).squeeze(-1)  # [trg_len - 1, batch]
    mask = target != pad_id  # [trg_len - 1, batch], True at real words
    return nll[mask].mean()  # mean over real words, not over sentences


def _reference_masked_loss(logits: torch.Tensor, trg: torch.Tensor, pad_id: int) -> torch.Tensor:
    """The library's loss (``train.batch_loss``): cross-entropy against ``trg[1:]``, pad ignored."""
    return nn.functional.cross_entropy(logits.flatten(0, 1).float(), trg[1:].flatten(),
                                       ignore_index=pad_id)


def _loss_extra(got: torch.Tensor) -> str | None:
    if got.dim() != 0:
        return f"应返回 0 维张量（一个数），得到形状 {list(got.shape)}"
    if not got.requires_grad:
        return "返回值断开了计算图（不要用 .item()、float() 或 torch.tensor(...)），无法 backward()"
    return None


def _masked_loss_cases() -> list[_Case]:
    def case(name: str, point: str, trg: list[list[int]], vocab: int = 8, pad_id: int = 1,
             scale: float = 1.0) -> _Case:
        trg_t = torch.tensor(trg)  # [trg_len, batch]
        logits = (torch.randn(trg_t.shape[0] - 1, trg_t.shape[1], vocab) * scale).requires_grad_()
        return _case(name, point, ("logits", "trg", "pad_id"), (logits, trg_t, pad_id),
                     extra=_loss_extra)

    return [
        case("没有填充，批量 1", "logits 的第 t 行预测 trg[t + 1]：目标是 trg[1:]。",
             [[2], [5], [6], [3]]),
        case("第二句较短，有填充", "目标是 pad_id 的位置不算进损失；分母是真实词的个数。",
             [[2, 2], [5, 7], [6, 3], [4, 1], [3, 1]]),
        case("两句长短差很多：按词平均", "平均的分母是真实词的个数，不是先对每句求平均再平均。",
             [[2, 2], [5, 3], [6, 1], [7, 1], [4, 1], [5, 1], [3, 1]]),
        case("最短的目标：只有 <sos> <eos>（trg_len = 2）", "logits 只有一行，对应 <eos>。",
             [[2, 2, 2], [3, 3, 3]]),
        case("目标里有 <unk>（id 0）", "<unk> 是真实的词，要算进损失；只有 pad_id 不算。",
             [[2, 2], [0, 5], [3, 0], [1, 3]]),
        case("logits 很大（数值稳定性）", "log(softmax(x)) 会下溢成 log(0) = -inf；用 log_softmax。",
             [[2, 2], [5, 6], [3, 3]], scale=200.0),
    ]


def check_masked_loss(fn: Callable) -> bool:
    """Check ``fn(logits [trg_len-1, batch, vocab], trg [trg_len, batch], pad_id) -> loss``.

    The reference is the library's loss: mean cross-entropy against ``trg[1:]`` over the
    non-pad positions. The lesson's bug scored the rows one step too far (against ``trg[t+2]``).
    """
    hint = ("logits 的第 t 行预测 trg[t + 1]，所以目标是 trg[1:]；对每个位置取正确词的 −log 概率"
            "（用 log_softmax），只在目标不等于 pad_id 的位置上求平均，返回 0 维张量。")
    return _check(fn, hint, _masked_loss_cases, _reference_masked_loss, atol=1e-4)


register(Exercise("masked_loss", "05", "my_masked_loss", check_masked_loss, answer_masked_loss,
                  "import torch"))


# ---------------------------------------------------------------------------------------------
# 05 trains the learner's own model (notebook 04's classes), when their checks passed
# ---------------------------------------------------------------------------------------------

MODEL_EXERCISES = {"encoder": "MyEncoder", "decoder": "MyDecoder", "seq2seq": "MySeq2Seq"}


DEFINITIONS = (ast.Import, ast.ImportFrom, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _definitions(cell: str, name: str) -> Any:
    """The kept cell's imports, classes and functions, compiled; calls, prints and a check call
    in the same cell are left out (run again here, they would do what they did in 04)."""
    tree = ast.parse(cell)
    tree.body = [node for node in tree.body if isinstance(node, DEFINITIONS)]
    return compile(tree, f"<笔记本 04 的 {name}>", "exec")


def _rebuild(model_cfg: ModelConfig, src_vocab_size: int, trg_vocab_size: int,
             folder: Path | None) -> nn.Module:
    """The learner's model from the kept cells of notebook 04, or a ValueError saying why not."""
    if model_cfg.attention != "none" or model_cfg.bidirectional:
        raise ValueError("这个配置要注意力或双向编码器，笔记本 04 的类是单向、没有注意力的 GRU")
    missing = [cls for name, cls in MODEL_EXERCISES.items() if kept_solution(name, folder) is None]
    if missing:
        raise ValueError(f"{'、'.join(missing)} 的检查还没有通过（笔记本 04）")
    namespace: dict[str, Any] = {}
    for name in MODEL_EXERCISES:
        exec(_definitions(kept_solution(name, folder) or "", name), namespace)
    sizes = (model_cfg.emb_dim, model_cfg.hid_dim, model_cfg.n_layers, model_cfg.dropout)
    encoder = namespace["MyEncoder"](src_vocab_size, *sizes)
    decoder = namespace["MyDecoder"](trg_vocab_size, *sizes)
    return namespace["MySeq2Seq"](encoder, decoder)


def _same_outputs(mine: nn.Module, library: Seq2Seq) -> bool:
    """Whether the two models score a small batch alike (eval mode, no gradients)."""
    src = torch.tensor([[2, 2], [4, 5], [5, 3], [3, 1]])  # [src_len, batch], padded
    trg = torch.tensor([[2, 2], [4, 6], [3, 4], [1, 3]])
    src = src.clamp(max=library.encoder.embedding.num_embeddings - 1)  # any vocabulary size
    trg = trg.clamp(max=library.decoder.fc_out.out_features - 1)
    lens = torch.tensor([4, 3])
    with torch.no_grad():
        ours = library.eval()(src, lens, trg, 1.0, pad_id=Vocab.pad_id)
        theirs = mine.eval()(src, lens, trg, 1.0, pad_id=Vocab.pad_id)
    library.train()
    mine.train()
    return isinstance(theirs, torch.Tensor) and theirs.shape == ours.shape and bool(
        torch.allclose(theirs, ours, atol=1e-5))


def learner_model(model_cfg: ModelConfig, src_vocab_size: int, trg_vocab_size: int,
                  seed: int = 0, folder: Path | None = None) -> tuple[nn.Module, str]:
    """The model notebook 05 trains: the learner's ``MySeq2Seq(MyEncoder, MyDecoder)`` from
    notebook 04 when all three checks passed there (their cells were kept), else the library's.

    Both start from the same weights: the library's model seeded with ``seed``
    (:func:`~seq2seq_lib.recipe.new_model`), loaded into the learner's by name, so the two
    train alike, and a checkpoint of the learner's model loads into the library's classes.
    :param folder: where the kept cells are (default: the checkpoint folder's ``exercises/``).
    :return: the model (in train mode) and one sentence, in Chinese, saying which one it is.
    """
    set_seed(seed)
    library = build_model(model_cfg, src_vocab_size, trg_vocab_size)
    try:
        mine = _rebuild(model_cfg, src_vocab_size, trg_vocab_size, folder)
        mine.load_state_dict(library.state_dict())
        if not _same_outputs(mine, library):
            raise ValueError("记下的代码和库的模型算出的结果不同")
    except Exception as exc:  # anything the kept code does wrong: train the library's model
        reason = str(exc) if isinstance(exc, ValueError) else f"运行记下的代码时出错 {_one_line(exc)}"
        return library.train(), f"训练的是库里的模型（seq2seq_lib.Seq2Seq）：{reason}。"
    names = "、".join(MODEL_EXERCISES.values())
    return mine.train(), (f"训练的是你在笔记本 04 写的 {names}（三个检查都通过了），"
                          "初始权重和库的模型相同。")


def train_learner_model(data: PreparedData, data_cfg: DataConfig, model_cfg: ModelConfig,
                        train_cfg: TrainConfig, **fit_kwargs: Any
                        ) -> tuple[Translator, FitResult, str]:
    """Train :func:`learner_model` with the course's loaders and :func:`~seq2seq_lib.trainer.fit`
    (checkpoints where ``train_cfg`` says), as ``course.train_translator`` trains the library's.

    :return: a :class:`~seq2seq_lib.translator.Translator` around the trained model, what
        ``fit`` reported, and the sentence saying whose model was trained.
    """
    model, message = learner_model(model_cfg, len(data.src_vocab), len(data.trg_vocab),
                                   train_cfg.seed)
    train_loader, valid_loader = make_loaders(data, train_cfg)
    info = CheckpointInfo(data.src_vocab, data.trg_vocab, data_cfg, model_cfg, data.truecaser)
    result = fit(model, train_loader, valid_loader, train_cfg, info, **fit_kwargs)
    device = next(model.parameters()).device
    return (Translator(model, data.src_vocab, data.trg_vocab, data_cfg, model_cfg, device,
                       data.truecaser), result, message)
