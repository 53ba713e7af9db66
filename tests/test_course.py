"""The notebooks' shared helpers: the training recipe, load-or-train, tables, timed decoding,
and the evidence helpers (source display, progress lines, the library's training step, BLEU
statistics from scratch, paired bootstrap)."""

import dataclasses
import random
import time
from itertools import islice

import pytest
import torch
from conftest import DATA, TINY_MODEL
from torch import nn

from seq2seq_lib import (
    DataConfig,
    Encoder,
    TrainConfig,
    Translator,
    Vocab,
    corpus_bleu,
    load_checkpoint,
    make_loader,
)
from seq2seq_lib.course import (
    Table,
    ablation_recipes,
    attention_recipe,
    best_time,
    bleu_statistics,
    bleu_tokens,
    decoding_runs,
    gru_recipe,
    library_step_losses,
    load_or_train,
    new_model,
    paired_bootstrap_by_length,
    print_progress,
    show_source,
    train_translator,
    training_summary,
)
from seq2seq_lib.exercises import bleu_from_scratch
from seq2seq_lib.metrics import bleu_by_length

TINY_DATA = DataConfig(source="parallel", src_path=str(DATA / "tiny.zh"),
                       trg_path=str(DATA / "tiny.en"), valid_frac=0.2, test_frac=0.0, min_freq=1)


def test_train_translator_repeats_exactly(tiny_data):
    data_cfg, data = tiny_data
    cfg = TrainConfig(epochs=2, batch_size=8, lr=1e-2, device="cpu")
    a, ra = train_translator(data, data_cfg, TINY_MODEL, cfg, progress=False)
    b, rb = train_translator(data, data_cfg, TINY_MODEL, cfg, progress=False)
    assert [r["train_loss"] for r in ra.history] == [r["train_loss"] for r in rb.history]
    assert isinstance(a, Translator) and a.translate("请坐。") == b.translate("请坐。")


def test_load_or_train_trains_once_then_loads(tmp_path):
    path = tmp_path / "sub" / "m.pt"
    cfg = TrainConfig(epochs=2, batch_size=8, lr=1e-2, device="cpu")
    first = load_or_train(path, TINY_DATA, TINY_MODEL, cfg, progress=False)
    assert path.is_file() and len(load_checkpoint(path)["history"]) == 2
    stamp = path.stat().st_mtime_ns
    # a second call loads the saved model (even with other settings) and trains nothing
    again = load_or_train(path, TINY_DATA, TINY_MODEL, TrainConfig(epochs=50))
    assert path.stat().st_mtime_ns == stamp
    sentences = ["他是老师。", "我喜欢学习机器学习。"]
    assert again.translate_batch(sentences) == first.translate_batch(sentences)


def test_table_html_and_text():
    table = Table(["word", "p"], [["I", "0.41"], ["<unk>", 0.1]], caption="step 1")
    html = table._repr_html_()
    assert "<caption>step 1</caption>" in html and "<td>&lt;unk&gt;</td>" in html
    assert repr(table).splitlines() == ["step 1", "word   p", "-----  ----", "I      0.41",
                                        "<unk>  0.1"]


def test_gru_recipe_is_the_lessons_model():
    data_cfg, model_cfg, train_cfg = gru_recipe()
    assert (data_cfg.source, data_cfg.min_freq, data_cfg.zh_tokens) == ("hsk", 2, "word")
    assert (model_cfg.emb_dim, model_cfg.hid_dim, model_cfg.n_layers, model_cfg.attention) == (
        256, 512, 2, "none")
    assert train_cfg.epochs == 8 and train_cfg.checkpoint_path is None


def test_attention_recipe_is_notebook_07s_model():
    data_cfg, model_cfg, train_cfg = attention_recipe()
    assert (data_cfg.min_freq, data_cfg.source) == (1, "hsk")
    assert (model_cfg.attention, model_cfg.bidirectional, model_cfg.n_layers) == ("bahdanau", True, 1)
    assert (model_cfg.emb_dim, model_cfg.hid_dim, model_cfg.dropout) == (256, 256, 0.5)
    assert (train_cfg.epochs, train_cfg.lr) == (10, 2e-3)
    model_cfg.hid_dim = 8  # every call hands out fresh objects
    assert attention_recipe()[1].hid_dim == 256


def test_training_summary_reads_the_history(tmp_path):
    path = tmp_path / "m.pt"
    load_or_train(path, TINY_DATA, TINY_MODEL, TrainConfig(epochs=3, batch_size=8, lr=1e-2,
                                                           device="cpu"), progress=False)
    history = load_checkpoint(path)["history"]
    summary = training_summary(path)
    assert summary["epochs"] == 3 and 1 <= summary["best_epoch"] <= 3
    assert summary["seconds"] == sum(r["seconds"] for r in history) > 0
    assert summary["best_valid_loss"] == min(r["valid_loss"] for r in history)


def test_best_time_keeps_the_fastest_run_and_the_result():
    delays = iter([0.05, 0.0, 0.05])
    seconds, result = best_time(lambda: time.sleep(next(delays)) or "done", repeats=3)
    assert seconds < 0.04 and result == "done"
    with pytest.raises(ValueError, match="repeats"):
        best_time(lambda: None, repeats=0)


def test_decoding_runs_measure_bleu_speed_and_lengths(memorized, tiny_data):
    model, _, info = memorized
    data_cfg, data = tiny_data
    translator = Translator(model, data.src_vocab, data.trg_vocab, data_cfg, info.model_cfg)
    pairs = data.splits.test
    runs = decoding_runs(translator, pairs, [(1, 0.6), (3, 0.0)], repeats=2)
    assert [(r.beam_size, r.length_penalty) for r in runs] == [(1, 0.6), (3, 0.0)]
    greedy = translator.translate_batch([zh for zh, _ in pairs])
    assert runs[0].hypotheses == greedy
    for run in runs:
        assert run.bleu > 95 and run.seconds > 0
        assert run.sentences_per_s == pytest.approx(len(pairs) / run.seconds)
        assert run.hyp_len == run.ref_len > 0 and run.length_ratio == 1.0



def test_ablation_changes_one_setting_per_row():
    recipes = ablation_recipes()
    assert [r.checkpoint for r in recipes] == ["gru_small.pt", "attention_uni.pt", "attention.pt",
                                               "attention_char.pt"]
    assert recipes[2].configs == attention_recipe()  # the row notebook 08 loads
    for before, after in zip(recipes, recipes[1:]):
        changed = [(name, field.name) for name, a, b in
                   zip(("data", "model", "train"), before.configs, after.configs)
                   for field in dataclasses.fields(a) if getattr(a, field.name) != getattr(b, field.name)]
        assert len(changed) == 1, f"{after.change}: {changed}"
    assert recipes[0].model_cfg.attention == "none" and not recipes[0].model_cfg.bidirectional


def test_show_source_renders_the_librarys_code():
    code = show_source(Encoder, Encoder.forward)
    assert "class Encoder(nn.Module):" in code.data and "pack_padded_sequence" in code.data
    assert "<span" in code._repr_html_()  # highlighted


def test_print_progress_prints_one_line_per_epoch(capsys):
    callback = print_progress("m.pt")
    assert callback({"epoch": 3, "train_loss": 3.5, "valid_loss": 3.25, "seconds": 2.04}, []) is None
    assert capsys.readouterr().out == ("m.pt · epoch 3: train loss 3.500, valid loss 3.250 "
                                       "(2.0 s)\n")


def test_library_step_losses_equal_the_steps_written_out(tiny_data):
    data_cfg, data = tiny_data
    cfg = TrainConfig(epochs=5, batch_size=4, lr=1e-2, seed=3)
    batches = list(islice(make_loader(data.train, 4, bucket=False, shuffle=False), 3))
    model = new_model(data, TINY_MODEL, cfg.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    mine = []
    for batch in batches:
        optimizer.zero_grad()
        logits = model(batch.src, batch.src_lens, batch.trg)
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), batch.trg[1:].flatten(),
                                           ignore_index=Vocab.pad_id)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        optimizer.step()
        mine.append(loss.item())
    lib_model, losses = library_step_losses(data, TINY_MODEL, cfg, batches)
    assert len(losses) == 3 and losses[0] != losses[-1]
    torch.testing.assert_close(mine, losses, rtol=1e-4, atol=1e-5)
    for a, b in zip(model.parameters(), lib_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def _noisy(sentences, keep, seed):
    rng = random.Random(seed)
    return [" ".join(w if rng.random() < keep else "⁇" for w in s.split()) for s in sentences]


REFS = ["He is a teacher.", "I like studying machine learning.", "The weather is nice today.",
        "We went to the library together yesterday.", "She drinks a cup of tea every morning.",
        "Don't forget to call your mother."] * 5


def test_bleu_statistics_match_sacrebleu_and_the_exercise_answer():
    hyps = _noisy(REFS, 0.7, 1)
    score = corpus_bleu(hyps, REFS, lowercase=True)
    stats = bleu_statistics(bleu_tokens(hyps), bleu_tokens(REFS))
    assert (stats.matches, stats.totals) == (list(score.counts), list(score.totals))
    assert (stats.hyp_len, stats.ref_len) == (score.sys_len, score.ref_len)
    assert stats.score == pytest.approx(score.score)  # every order has matches: no smoothing needed
    assert stats.score == pytest.approx(bleu_from_scratch(bleu_tokens(hyps), bleu_tokens(REFS)))
    assert stats.precisions == pytest.approx(score.precisions)
    assert bleu_tokens(["I don't know, really."]) == [["i", "don't", "know", ",", "really", "."]]


def test_paired_bootstrap_by_length_matches_bleu_by_length():
    worse, better = _noisy(REFS, 0.5, 4), _noisy(REFS, 0.9, 5)
    lengths = [len(r.split()) for r in REFS]
    bins = paired_bootstrap_by_length(worse, better, REFS, lengths, (4, 5, 6))
    expected = bleu_by_length(better, REFS, lengths, (4, 5, 6), lowercase=True)
    assert [(b.label, b.n) for b in bins] == [(e.label, e.n) for e in expected]
    for b, e in zip(bins, expected):
        if e.n:
            assert b.diff.bleu_b == pytest.approx(e.bleu)
        else:
            assert b.diff.samples == 0


def test_setup_returns_each_recipe_unchanged_or_tiny_in_fast_mode(monkeypatch):
    from seq2seq_lib.course import FAST_ENV, gru_recipe, setup, sized

    monkeypatch.delenv(FAST_ENV, raising=False)
    assert setup(gru_recipe()) == gru_recipe()
    assert setup()[0] == DataConfig() and sized(3, fast=1) == 3
    monkeypatch.setenv(FAST_ENV, "1")
    data_cfg, model_cfg, _ = setup(gru_recipe())
    assert data_cfg.limit == 400 and model_cfg.hid_dim < gru_recipe()[1].hid_dim
    both = setup(gru_recipe(), gru_recipe())
    assert isinstance(both, list) and len(both) == 2 and both[0] == (data_cfg, model_cfg, _)
    assert sized(3, fast=1) == 1


@pytest.mark.parametrize("low, high, word", [(0.2, 1.5, "显著更好"), (-0.4, 0.9, "分不出"),
                                             (-2.0, -0.1, "显著更差")])
def test_verdict_follows_the_interval(low, high, word):
    from seq2seq_lib.course import verdict
    from seq2seq_lib.metrics import PairedBootstrap

    result = PairedBootstrap(10.0, 10.5, 0.5, low, high, 0.1, 1000)
    text = verdict(result, "注意力", "GRU")
    assert word in text and f"[{low:+.2f}, {high:+.2f}]" in text
    assert ("区间包含 0" in text) == (word == "分不出")


def test_a_table_ends_with_its_computed_conclusion():
    table = Table(["a", "b"], [["1", "<2>"]], conclusion=["x 比 y 显著更好", "第二句"])
    assert repr(table).splitlines()[-2:] == ["x 比 y 显著更好", "第二句"]
    assert table._repr_html_().endswith("<p>x 比 y 显著更好</p><p>第二句</p>")
    assert "<p>" not in Table(["a"], [["1"]])._repr_html_()


@pytest.mark.parametrize("hyp, ref, kind", [
    ("The weather is good today!", "the weather is good today.", "exact"),
    ("I like ⁇.", "I like tea.", "unknown"),
    ("I like school school school.", "I like studying machine learning.", "repeat"),
    ("He is is a is a teacher.", "He is a teacher.", "repeat"),
    ("Exercise is good for your health.", "Exercise benefits health.", "near"),
    ("It is raining.", "He bought a car yesterday.", "miss"),
])
def test_translation_kinds(hyp, ref, kind):
    from seq2seq_lib.course import translation_kind

    assert translation_kind(hyp, ref) == kind
