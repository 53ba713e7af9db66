"""The notebooks' shared helpers: the training recipe, load-or-train, tables, timed decoding."""

import time

import pytest
from conftest import DATA, TINY_MODEL

from seq2seq_lib import DataConfig, TrainConfig, Translator, load_checkpoint
from seq2seq_lib.course import (
    Table,
    attention_recipe,
    best_time,
    decoding_runs,
    gru_recipe,
    load_or_train,
    train_translator,
    training_summary,
)

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

