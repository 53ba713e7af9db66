"""The self-checking exercises: every checker passes its answer, rejects typical wrong answers
(naming the failing case in Chinese), turns the unsolved stub into a hint, and never raises."""

import ast
import inspect
import json
import math
import random
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
import torch
from conftest import rejects as shared_rejects
from torch import nn

from seq2seq_lib import exercises as ex
from seq2seq_lib.exercises import (
    EXERCISES,
    answer_source,
    bleu_from_scratch,
    exercise_for_cell,
    get_exercise,
    harness,
    nb07,
    sacrebleu_on_tokens,
    stub_source,
)

ALL = EXERCISES


def ex_answer(name: str):
    """The reference answer of exercise ``name`` (the library's function, not its source)."""
    return ALL[name].answer


@pytest.fixture(autouse=True)
def checkpoint_folder(tmp_path, monkeypatch):
    """Checks that keep a solution keep it here, never in the course's checkpoints/."""
    monkeypatch.setenv("SEQ2SEQ_CHECKPOINTS", str(tmp_path))
    return tmp_path


def defined(source: str, name: str):
    """Execute ``source`` in a fresh namespace, as a notebook cell would, and return ``name``."""
    namespace: dict = {}
    exec(source, namespace)
    return namespace[name]


def rejects(check, fn, case_name: str, capsys) -> str:
    """:func:`conftest.rejects`, and the message says what was expected or what went wrong."""
    out = shared_rejects(check, fn, case_name, capsys)
    assert "期望" in out or "出错" in out
    return out


# ---------------------------------------------------------------------------------------------
# Every exercise: answer passes, stub gives the hint, nothing leaks
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ALL))
def test_the_answer_passes(name, capsys):
    exercise = ALL[name]
    answer = defined(answer_source(name), exercise.function)
    assert exercise.check(answer) is True
    first, *more = capsys.readouterr().out.strip().splitlines()
    assert first.startswith("✓ 全部 ") and first.endswith(" 个用例通过")
    assert all("笔记本 05" in line for line in more)  # what a model exercise says it kept


@pytest.mark.parametrize("name", list(ALL))
def test_the_unsolved_stub_prints_a_hint_and_does_not_raise(name, capsys):
    exercise = ALL[name]
    stub = defined(stub_source(name), exercise.function)
    with pytest.raises(NotImplementedError):
        code = (stub.__init__ if isinstance(stub, type) else stub).__code__
        stub(*[None] * (code.co_argcount - isinstance(stub, type)))
    assert exercise.check(stub) is False
    out = capsys.readouterr().out
    assert f"{exercise.function} 还没有实现" in out and "要做的：" in out
    assert "Traceback" not in out and "用例" not in out


@pytest.mark.parametrize("name", list(ALL))
def test_other_errors_are_reported_with_the_case(name, capsys):
    def broken(*args, **kwargs):
        raise ValueError("oops, a bug")

    assert ALL[name].check(broken) is False
    out = capsys.readouterr().out
    assert "用例 1/" in out and "运行时出错 ValueError: oops, a bug" in out
    assert "Traceback" not in out


def test_checkers_leave_the_random_state_alone(capsys):
    torch.manual_seed(123)
    before, threads = torch.get_rng_state(), torch.get_num_threads()
    for exercise in ALL.values():
        exercise.check(defined(answer_source(exercise.name), exercise.function))
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.get_num_threads() == threads  # a check runs on one thread, then gives them back


def test_registry_sources_and_cells():
    assert [e.notebook for e in EXERCISES.values()] == sorted(e.notebook for e in EXERCISES.values())
    assert {n: e.notebook for n, e in EXERCISES.items() if e.notebook != "02"} == {
        "pad_batch": "03", "gru_step": "04", "encoder": "04", "decoder": "04", "seq2seq": "04",
        "masked_loss": "05", "train_epoch": "05", "greedy_decode": "06", "bleu": "06",
        "translate_sentence": "06", "masked_softmax": "07", "additive_attention": "07",
        "attention_decoder": "07", "beam_step": "08", "learn_bpe": "09", "apply_bpe": "09",
        "scaled_dot_product_attention": "10", "causal_mask": "10"}
    assert get_exercise("my_bleu") is get_exercise("bleu") is EXERCISES["bleu"]
    with pytest.raises(KeyError, match="build_vocab"):
        get_exercise("no_such_exercise")
    for e in ALL.values():
        answer, stub = answer_source(e.name), stub_source(e.name)
        kind = "class" if isinstance(e.answer, type) else "def"
        assert f"{kind} {e.function}(" in answer and "answer_" not in answer.lower()
        unmarked = stub.replace("  # noqa: F401 (for your solution)", "")
        assert unmarked.split('"""')[0] == answer.split('"""')[0]  # same imports and signature
        todo = "method" if kind == "class" else "function"
        assert stub.rstrip().endswith(f"raise NotImplementedError(\"write this {todo}, then "
                                      "run the check below\")")
        compile(answer, e.function, "exec")
        assert exercise_for_cell(stub) is e and exercise_for_cell(answer) is e
    assert exercise_for_cell("check_build_vocab(my_build_vocab)") is None
    assert exercise_for_cell("x = 1") is None


def test_renamed_answers_keep_the_signature_and_wrap_it():
    """The answer's source is renamed through ``ast``: the same parameters, annotations and
    defaults as the library's function, re-wrapped under the new name within the line limit."""
    def signature(tree: ast.Module, name: str) -> str:
        node = next(n for n in tree.body if getattr(n, "name", None) == name)
        if isinstance(node, ast.ClassDef):  # a class: everything but its name, unchanged
            return ast.dump(ast.Module(body=node.body, type_ignores=[])) + ast.dump(node.bases[0])
        return ast.dump(node.args) + ast.dump(node.returns) if node.returns else ast.dump(node.args)

    for e in ALL.values():
        original = ast.parse(textwrap.dedent(inspect.getsource(e.answer)))
        renamed = ast.parse(answer_source(e.name))
        assert signature(renamed, e.function) == signature(original, e.answer.__name__)
        head = answer_source(e.name).split('"""')[0]
        assert all(len(line) <= 100 for line in head.splitlines()), head


def test_stub_cells_pass_the_linter_and_mark_only_the_imports_they_do_not_use(tmp_path):
    """The notebooks are linted (ruff): a stub's imports that only the solution will use are
    marked ``noqa: F401``; those the stub already uses (in annotations) are not."""
    mark = "  # noqa: F401 (for your solution)"
    for e in ALL.values():
        stub = stub_source(e.name)
        (tmp_path / f"{e.name}.py").write_text(stub, encoding="utf-8")
        (tmp_path / f"{e.name}_unmarked.py").write_text(stub.replace(mark, ""), encoding="utf-8")
    found = subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated", "--select", "F",
                            "--output-format", "json", str(tmp_path)],
                           capture_output=True, text=True)
    flagged = {(Path(d["filename"]).stem, d["location"]["row"]) for d in json.loads(found.stdout)}
    assert all(stem.endswith("_unmarked") for stem, _ in flagged), flagged
    for e in ALL.values():
        marked = {i for i, line in enumerate(stub_source(e.name).splitlines(), 1) if mark in line}
        assert {row for stem, row in flagged if stem == f"{e.name}_unmarked"} == marked, e.name


def test_not_a_function(capsys):
    assert ex.check_bleu(42) is False
    assert "需要一个函数" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# 02 build_vocab
# ---------------------------------------------------------------------------------------------

SPECIALS = ["<unk>", "<pad>", "<sos>", "<eos>"]


def vocab_max_size_without_specials(tokenized, min_freq, max_size):
    counts = Counter(t for s in tokenized for t in s if t not in SPECIALS)
    kept = sorted((t for t, f in counts.items() if f >= min_freq), key=lambda t: (-counts[t], t))
    return SPECIALS + (kept[:max_size] if max_size is not None else kept)


def vocab_most_common(tokenized, min_freq, max_size):
    counts = Counter(t for s in tokenized for t in s if t not in SPECIALS)
    kept = [t for t, f in counts.most_common() if f >= min_freq]  # ties: first appearance
    return SPECIALS + (kept[: max_size - 4] if max_size is not None else kept)


def vocab_specials_twice(tokenized, min_freq, max_size):
    counts = Counter(t for s in tokenized for t in s)
    kept = sorted((t for t, f in counts.items() if f >= min_freq), key=lambda t: (-counts[t], t))
    return SPECIALS + (kept[: max_size - 4] if max_size is not None else kept)


def test_build_vocab_rejects_typical_mistakes(capsys):
    check = ex.check_build_vocab
    rejects(check, vocab_max_size_without_specials, "max_size 包含 4 个特殊符号", capsys)
    out = rejects(check, vocab_most_common, "频次相同时按字母序排列", capsys)
    assert "'b', 'c', 'a'" in out  # what came back is shown
    rejects(check, vocab_specials_twice, "数据里出现了特殊符号", capsys)
    rejects(check, lambda t, m, s: {tok: i for i, tok in enumerate(SPECIALS)}, "基本情况：频次各不相同",
            capsys)


# ---------------------------------------------------------------------------------------------
# 03 pad_batch
# ---------------------------------------------------------------------------------------------


def pad_batch_major(seqs, pad_id):
    padded, mask = ex_answer("pad_batch")(seqs, pad_id)
    return padded.t(), mask.t()  # [batch, max_len]


def pad_inverted_mask(seqs, pad_id):
    padded, mask = ex_answer("pad_batch")(seqs, pad_id)
    return padded, ~mask


def pad_with_one(seqs, pad_id):
    return ex_answer("pad_batch")(seqs, 1)


def pad_first_length(seqs, pad_id):
    padded = torch.full((len(seqs[0]), len(seqs)), pad_id)
    for b, s in enumerate(seqs):
        padded[: len(s), b] = s
    return padded, padded != pad_id


def test_pad_batch_rejects_typical_mistakes(capsys):
    check = ex.check_pad_batch
    out = rejects(check, pad_batch_major, "三句长度不同，最长的在最后", capsys)
    assert "形状应为 [6, 3]，得到 [3, 6]" in out
    rejects(check, pad_inverted_mask, "三句长度不同，最长的在最后", capsys)
    rejects(check, pad_with_one, "pad_id 不是 1（用 0 填充）", capsys)
    out = rejects(check, pad_first_length, "三句长度不同，最长的在最后", capsys)
    assert "运行时出错 RuntimeError" in out
    out = rejects(check, lambda seqs, pad_id: ex_answer("pad_batch")(seqs, pad_id)[0],
                  "三句长度不同，最长的在最后", capsys)
    assert "应返回 2 个值" in out


# ---------------------------------------------------------------------------------------------
# 04 gru_step
# ---------------------------------------------------------------------------------------------


def gru_parts(x, h, w_ih, w_hh, b_ih, b_hh):
    return (x @ w_ih.T + b_ih).chunk(3, 1), (h @ w_hh.T + b_hh).chunk(3, 1), h @ w_hh.T


def gru_gate_order_zrn(x, h, w_ih, w_hh, b_ih, b_hh):
    (i_z, i_r, i_n), (h_z, h_r, h_n), _ = gru_parts(x, h, w_ih, w_hh, b_ih, b_hh)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    return (1 - z) * torch.tanh(i_n + r * h_n) + z * h


def gru_reset_outside_bias(x, h, w_ih, w_hh, b_ih, b_hh):
    (i_r, i_z, i_n), (h_r, h_z, _), hh = gru_parts(x, h, w_ih, w_hh, b_ih, b_hh)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    hid = h.shape[1]
    n = torch.tanh(i_n + r * hh[:, 2 * hid:] + b_hh[2 * hid:])  # b_hn not scaled by r
    return (1 - z) * n + z * h


def gru_swapped_mix(x, h, w_ih, w_hh, b_ih, b_hh):
    (i_r, i_z, i_n), (h_r, h_z, h_n), _ = gru_parts(x, h, w_ih, w_hh, b_ih, b_hh)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    return z * torch.tanh(i_n + r * h_n) + (1 - z) * h


def test_gru_step_rejects_typical_mistakes(capsys):
    check = ex.check_gru_step
    rejects(check, gru_gate_order_zrn, "第一步：零初始状态，批量 1，偏置为 0", capsys)
    rejects(check, gru_reset_outside_bias, "偏置较大", capsys)
    out = rejects(check, gru_swapped_mix, "第一步：零初始状态，批量 1，偏置为 0", capsys)
    assert "个位置不同，最大相差" in out


def test_gru_step_reference_is_pytorchs():
    x, h = torch.randn(2, 3), torch.randn(2, 4)
    cell = nn.GRUCell(3, 4)
    args = (x, h, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    assert torch.allclose(ex_answer("gru_step")(*args), cell(x, h), atol=1e-6)


# ---------------------------------------------------------------------------------------------
# 05 masked_loss
# ---------------------------------------------------------------------------------------------

ce = nn.functional.cross_entropy


def loss_unshifted(logits, trg, pad_id):
    return ce(logits.flatten(0, 1), trg[:-1].flatten(), ignore_index=pad_id)


def loss_lesson_shift(logits, trg, pad_id):  # row t scored against trg[t + 2]
    return ce(logits[:-1].flatten(0, 1), trg[2:].flatten(), ignore_index=pad_id)


def loss_no_mask(logits, trg, pad_id):
    return ce(logits.flatten(0, 1), trg[1:].flatten())


def loss_per_sentence(logits, trg, pad_id):
    nll = ce(logits.permute(1, 2, 0), trg[1:].t(), reduction="none")  # [batch, len]
    mask = trg[1:].t() != pad_id
    return ((nll * mask).sum(1) / mask.sum(1)).mean()


def loss_drops_unk(logits, trg, pad_id):
    nll = ce(logits.flatten(0, 1), trg[1:].flatten(), reduction="none")
    keep = trg[1:].flatten() > pad_id  # also drops <unk> (id 0)
    return nll[keep].mean()


def loss_naive_log(logits, trg, pad_id):
    probs = logits.softmax(-1).gather(-1, trg[1:].unsqueeze(-1)).squeeze(-1)
    mask = trg[1:] != pad_id
    return -probs.log()[mask].mean()


def test_masked_loss_rejects_typical_mistakes(capsys):
    check = ex.check_masked_loss
    rejects(check, loss_unshifted, "没有填充，批量 1", capsys)
    rejects(check, loss_lesson_shift, "没有填充，批量 1", capsys)
    rejects(check, loss_no_mask, "第二句较短，有填充", capsys)
    rejects(check, loss_per_sentence, "第二句较短，有填充", capsys)
    rejects(check, loss_drops_unk, "目标里有 <unk>（id 0）", capsys)
    rejects(check, loss_naive_log, "logits 很大（数值稳定性）", capsys)
    out = rejects(check, lambda lg, t, p: ex_answer("masked_loss")(lg, t, p).item(), "没有填充，批量 1",
                  capsys)
    assert "应返回 torch.Tensor" in out
    out = rejects(check, lambda lg, t, p: ex_answer("masked_loss")(lg, t, p).detach(),
                  "没有填充，批量 1", capsys)
    assert "断开了计算图" in out


# ---------------------------------------------------------------------------------------------
# 06 greedy_decode
# ---------------------------------------------------------------------------------------------


def greedy_feeds_sos(model, src, src_lens, max_len, sos_id, eos_id):
    model.eval()
    enc = model.encode(src, src_lens)
    hidden, sos = enc.hidden, torch.full((src.shape[1],), sos_id)
    out, done = [[] for _ in range(src.shape[1])], [False] * src.shape[1]
    for _ in range(max_len):
        state, hidden, _ = model.decoder(sos.unsqueeze(0), hidden, enc)  # never fed back
        for b, w in enumerate(model.decoder.project(state[0]).argmax(-1).tolist()):
            done[b] = done[b] or w == eos_id
            if not done[b]:
                out[b].append(w)
    return out


def greedy_without_eval(model, *args):
    was = model.training
    model.eval = lambda: model  # the learner forgot model.eval()
    model.train(was)
    return ex_answer("greedy_decode")(model, *args)


def greedy_keeps_going(model, src, src_lens, max_len, sos_id, eos_id):
    model.eval()
    enc = model.encode(src, src_lens)
    hidden, inp = enc.hidden, torch.full((src.shape[1],), sos_id)
    out = [[] for _ in range(src.shape[1])]
    for _ in range(max_len):
        state, hidden, _ = model.decoder(inp.unsqueeze(0), hidden, enc)
        inp = model.decoder.project(state[0]).argmax(-1)
        if int(inp[0]) == eos_id:  # stops when the first sentence ends
            break
        for b, w in enumerate(inp.tolist()):
            if w != eos_id:
                out[b].append(w)
    return out


def test_greedy_decode_rejects_typical_mistakes(capsys):
    check = ex.check_greedy_decode
    out = rejects(check, greedy_feeds_sos, "一句话，第 4 步输出 <eos>", capsys)
    assert "期望：[[5, 6, 7]]" in out and "得到：[[5, 0, 0" in out
    rejects(check, greedy_keeps_going, "三句话在不同的步结束（一句第 1 步就结束）", capsys)
    rejects(check, greedy_without_eval, "模型处于训练模式", capsys)
    rejects(check, lambda *a: [ids + [3] for ids in ex_answer("greedy_decode")(*a)],
            "一句话，第 4 步输出 <eos>", capsys)

    def greedy_without_unsqueeze(model, src, src_lens, max_len, sos_id, eos_id):
        enc = model.encode(src, src_lens)
        model.decoder(torch.full((src.shape[1],), sos_id), enc.hidden, enc)

    out = rejects(check, greedy_without_unsqueeze, "一句话，第 4 步输出 <eos>", capsys)
    assert "应是 [1, batch]" in out


def test_greedy_answer_matches_the_library_on_a_real_model():
    """The checker's reference is the library's greedy_decode; the answer agrees with it on a
    real (untrained) Seq2Seq too, not only on the scripted model."""
    from seq2seq_lib import ModelConfig, build_model, greedy_decode

    torch.manual_seed(0)
    model = build_model(ModelConfig(emb_dim=8, hid_dim=8, n_layers=1, dropout=0.0), 12, 9)
    src = torch.randint(4, 12, (5, 3))
    lens = torch.tensor([5, 3, 1])
    mine = ex_answer("greedy_decode")(model, src, lens, 6)
    assert mine == [h.ids for h in greedy_decode(model, src, lens, 6)]


# ---------------------------------------------------------------------------------------------
# 06 BLEU
# ---------------------------------------------------------------------------------------------


def ngram_stats(hyps, refs, clip=True):
    matches, totals = [0] * 4, [0] * 4
    for hyp, ref in zip(hyps, refs):
        for n in range(1, 5):
            h = Counter(tuple(hyp[i:i + n]) for i in range(len(hyp) - n + 1))
            r = Counter(tuple(ref[i:i + n]) for i in range(len(ref) - n + 1))
            matches[n - 1] += sum(min(c, r[g]) if clip else c * (g in r) for g, c in h.items())
            totals[n - 1] += sum(h.values())
    return matches, totals


def bleu_variant(hyps, refs, clip=True, bp="right", skip_zero=False):
    matches, totals = ngram_stats(hyps, refs, clip)
    pairs = [(m, t) for m, t in zip(matches, totals) if m > 0 or not skip_zero]
    if not pairs or min(m for m, _ in pairs) == 0:
        return 0.0
    c, r = sum(map(len, hyps)), sum(map(len, refs))
    penalty = {"right": 1.0 if c >= r else math.exp(1 - r / c), "none": 1.0,
               "always": math.exp(1 - r / c)}[bp]
    return 100 * penalty * math.exp(sum(math.log(m / t) for m, t in pairs) / len(pairs))


def bleu_sentence_average(hyps, refs):
    return sum(bleu_from_scratch([h], [r]) for h, r in zip(hyps, refs)) / len(hyps)


def test_bleu_rejects_typical_mistakes(capsys):
    check = ex.check_bleu
    assert check(bleu_variant) is True
    capsys.readouterr()
    rejects(check, lambda h, r: bleu_variant(h, r, bp="none"), "译文比参考短：简短惩罚", capsys)
    rejects(check, lambda h, r: bleu_variant(h, r, clip=False), "有一句全是重复的词：计数要截断",
            capsys)
    rejects(check, lambda h, r: bleu_variant(h, r, bp="always"), "译文比参考长：没有惩罚", capsys)
    rejects(check, lambda h, r: bleu_variant(h, r, skip_zero=True),
            "没有任何 4-gram 匹配：BLEU 为 0", capsys)
    rejects(check, bleu_sentence_average, "语料级 BLEU，不是逐句平均", capsys)
    rejects(check, lambda h, r: bleu_variant(h, r) / 100, "译文与参考完全相同", capsys)


def random_corpus(rng, n_sents, words):
    refs = [[rng.choice(words) for _ in range(rng.randint(1, 12))] for _ in range(n_sents)]
    hyps = [[w if rng.random() < 0.7 else rng.choice(words) for w in ref][: rng.randint(0, 14)]
            + [rng.choice(words) for _ in range(rng.randint(0, 2))] for ref in refs]
    return hyps, refs


def test_bleu_from_scratch_equals_sacrebleu_on_random_corpora():
    rng = random.Random(0)
    words = "the a cat dog sat on mat 我 们 是 , .".split()
    scored = 0
    for _ in range(30):
        hyps, refs = random_corpus(rng, rng.randint(1, 30), words)
        ours = bleu_from_scratch(hyps, refs)
        assert ours == pytest.approx(sacrebleu_on_tokens(hyps, refs), abs=1e-6)
        matches, _ = ngram_stats(hyps, refs)
        if min(matches) > 0:  # every order matched: sacreBLEU's default smoothing changes nothing
            scored += 1
            assert ours == pytest.approx(sacrebleu_on_tokens(hyps, refs, "exp"), abs=1e-6)
    assert scored >= 10


# ---------------------------------------------------------------------------------------------
# 07 masked_softmax
# ---------------------------------------------------------------------------------------------


def softmax_then_zero(scores, mask):
    return scores.softmax(-1) * mask.unsqueeze(1)


def softmax_zero_renormalise(scores, mask):
    w = scores.softmax(-1) * mask.unsqueeze(1)
    return w / w.sum(-1, keepdim=True)


def softmax_fill_zero(scores, mask):
    return scores.masked_fill(~mask.unsqueeze(1), 0.0).softmax(-1)


def softmax_manual_exp(scores, mask):
    e = scores.exp() * mask.unsqueeze(1)
    return e / e.sum(-1, keepdim=True)


def softmax_wrong_axis(scores, mask):
    return scores.masked_fill(~mask.unsqueeze(2), float("-inf")).softmax(-1)


def test_masked_softmax_rejects_typical_mistakes(capsys):
    check = ex.check_masked_softmax
    rejects(check, lambda s, m: s.softmax(-1), "第二句有填充", capsys)
    rejects(check, softmax_then_zero, "第二句有填充", capsys)
    rejects(check, softmax_fill_zero, "第二句有填充", capsys)
    out = rejects(check, softmax_zero_renormalise, "填充位置的分数最大", capsys)
    assert "nan" in out
    rejects(check, softmax_manual_exp, "填充位置的分数最大", capsys)
    out = rejects(check, softmax_wrong_axis, "没有填充", capsys)
    out = rejects(check, lambda s, m: ex_answer("masked_softmax")(s, m) + 1e-9 * (~m).unsqueeze(1),
                  "第二句有填充", capsys)
    assert "填充位置的权重应正好是 0" in out


def test_masked_softmax_wrong_axis_without_an_error_is_caught(capsys):
    """When batch = steps = src_len the transposed mask broadcasts silently."""
    def transposed(scores, mask):
        return scores.masked_fill(~mask.unsqueeze(2), float("-inf")).softmax(-1)

    cases = nb07._masked_softmax_cases()
    last = cases[-1]
    assert last.run(transposed).shape == (3, 3, 3)
    assert harness._compare(last.run(nb07.masked_softmax), last.run(transposed)) is not None
    capsys.readouterr()


# ---------------------------------------------------------------------------------------------
# 08 beam_step
# ---------------------------------------------------------------------------------------------


def beam_no_penalty(scores, log_probs, lengths, finished, k, alpha):
    return ex_answer("beam_step")(scores, log_probs, lengths, finished, k, 0.0)


def beam_ties_reversed(scores, log_probs, lengths, finished, k, alpha):
    vocab = log_probs.shape[1]
    cand = (scores.unsqueeze(1) + log_probs).flatten()
    penalty = (((5.0 + lengths + (~finished).long()) / 6.0) ** alpha).repeat_interleave(vocab)
    ranked = sorted(zip((cand / penalty).tolist(), range(len(cand))), reverse=True)[:k]
    best = torch.tensor([i for _, i in ranked])
    return cand[best], best // vocab, best % vocab


def beam_returns_penalised(scores, log_probs, lengths, finished, k, alpha):
    new_scores, beam, token = ex_answer("beam_step")(scores, log_probs, lengths, finished, k, alpha)
    new_lengths = lengths[beam] + (~finished[beam]).long()
    return new_scores / ((5.0 + new_lengths) / 6.0) ** alpha, beam, token


def beam_index_modulo(scores, log_probs, lengths, finished, k, alpha):
    new_scores, beam, token = ex_answer("beam_step")(scores, log_probs, lengths, finished, k, alpha)
    flat = beam * log_probs.shape[1] + token
    return new_scores, flat % log_probs.shape[0], flat // log_probs.shape[0]


def test_beam_step_rejects_typical_mistakes(capsys):
    check = ex.check_beam_step
    rejects(check, beam_no_penalty, "同样的束，α = 1：长度惩罚", capsys)
    out = rejects(check, beam_ties_reversed, "分数相同（平局）", capsys)
    assert "torch.sort" in out
    out = rejects(check, beam_returns_penalised, "同样的束，α = 1：长度惩罚", capsys)
    assert "第 1 个返回值" in out
    rejects(check, beam_index_modulo, "第一步：只有第 0 束是活的", capsys)


def test_beam_step_answer_by_brute_force():
    """The answer against an explicit sort over all candidates, on random beams."""
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        beam, vocab, k = 3, 5, 4
        scores = -torch.rand(beam, generator=gen) * 5
        log_probs = torch.randn(beam, vocab, generator=gen).log_softmax(-1)
        lengths = torch.randint(1, 6, (beam,), generator=gen)
        finished = torch.rand(beam, generator=gen) < 0.3
        log_probs[finished] = float("-inf")
        log_probs[finished, 3] = 0.0
        alpha = float(torch.rand(1, generator=gen)) * 2
        cands = []
        for b in range(beam):
            for w in range(vocab):
                s = float(scores[b] + log_probs[b, w])
                length = int(lengths[b]) + (0 if finished[b] else 1)
                cands.append((-s / ((5 + length) / 6) ** alpha, b * vocab + w, s, b, w))
        best = sorted(cands)[:k]
        new_scores, beam_index, token = ex_answer("beam_step")(scores, log_probs, lengths, finished,
                                                            k, alpha)
        assert beam_index.tolist() == [c[3] for c in best]
        assert token.tolist() == [c[4] for c in best]
        assert torch.allclose(new_scores, torch.tensor([c[2] for c in best]), atol=1e-5)
