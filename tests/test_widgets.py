"""The widgets, driven the way a learner would: set values, click buttons, read what is shown."""

import time

import pytest
from conftest import TINY_MODEL

from seq2seq_lib import ModelConfig, TrainConfig, Translator, load_checkpoint
from seq2seq_lib.widgets import (
    EMPTY_MESSAGE,
    DecodingLab,
    HyperParameterPanel,
    TrainingDashboard,
    TranslateBox,
)


def tiny_panel(epochs, checkpoint=None):
    panel = HyperParameterPanel(ModelConfig(), TrainConfig(device="cpu", checkpoint_path=checkpoint))
    panel.emb_dim.value, panel.hid_dim.value = 32, 64
    panel.n_layers.value, panel.dropout.value = 1, 0.0
    panel.lr.value, panel.batch_size.value, panel.epochs.value = 1e-2, 8, epochs
    return panel


def test_panel_reads_back_its_widgets():
    panel = tiny_panel(epochs=7)
    panel.teacher_forcing_ratio.value, panel.clip.value = 0.5, 2.0
    model_cfg, train_cfg = panel.configs()
    assert model_cfg == ModelConfig(emb_dim=32, hid_dim=64, n_layers=1, dropout=0.0)
    assert (train_cfg.lr, train_cfg.batch_size, train_cfg.epochs) == (1e-2, 8, 7)
    assert (train_cfg.teacher_forcing_ratio, train_cfg.clip, train_cfg.device) == (0.5, 2.0, "cpu")


def test_panel_shows_values_outside_its_usual_choices():
    panel = HyperParameterPanel(ModelConfig(emb_dim=48, hid_dim=96), TrainConfig(epochs=120))
    model_cfg, train_cfg = panel.configs()
    assert (model_cfg.emb_dim, model_cfg.hid_dim, train_cfg.epochs) == (48, 96, 120)


def test_train_button_trains_plots_every_epoch_and_saves(tiny_data, tmp_path):
    data_cfg, data = tiny_data
    path = tmp_path / "dash.pt"
    board = TrainingDashboard(data, data_cfg, tiny_panel(epochs=4, checkpoint=str(path)),
                              samples=["他是老师。"])
    board.train_button.click()
    assert board.stop_button.disabled is False and board.panel.epochs.disabled
    result = board.wait(timeout=60)
    assert result.stopped == "finished"
    assert len(board.history) == 4 and board.plot_updates == 4
    assert bytes(board.plot.value).startswith(b"\x89PNG")
    assert board.epoch_bar.value == 4 and board.batch_bar.value == board.batch_bar.max
    assert load_checkpoint(path)["epoch"] == result.best_epoch
    assert isinstance(board.translator, Translator)
    assert "他是老师。" in board.sample_box.value
    assert "saved to dash.pt" in board.status.value
    assert board.train_button.disabled is False and board.stop_button.disabled
    assert not board.panel.epochs.disabled


def test_train_while_running_is_refused_and_stop_ends_early(tiny_data):
    data_cfg, data = tiny_data
    board = TrainingDashboard(data, data_cfg, tiny_panel(epochs=1000), samples=[])
    board.train()
    with pytest.raises(RuntimeError, match="already running"):
        board.train()
    deadline = time.monotonic() + 30
    while len(board.history) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    board.stop_button.click()
    result = board.wait(timeout=30)
    assert result.stopped == "stop-event"
    assert 2 <= len(result.history) < 1000
    assert board.plot_updates == len(result.history)  # the cut-short epoch is drawn too
    assert "Stop button" in board.status.value


def test_training_errors_are_shown_and_raised_by_wait(tiny_data):
    data_cfg, data = tiny_data
    panel = tiny_panel(epochs=2, checkpoint=None)

    def broken_loss(model, batch, teacher_forcing_ratio):
        raise ValueError("broken on purpose")

    board = TrainingDashboard(data, data_cfg, panel, samples=[], loss_fn=broken_loss)
    board.train()
    with pytest.raises(ValueError, match="broken on purpose"):
        board.wait(timeout=30)
    assert "training failed" in board.status.value
    assert board.train_button.disabled is False


def test_translate_box(memorized, tiny_data):
    model, _, info = memorized
    data_cfg, data = tiny_data
    translator = Translator(model, data.src_vocab, data.trg_vocab, data_cfg, TINY_MODEL)
    box = TranslateBox(translator, value="他是老师。")
    box.button.click()
    assert box.translation == "He is a teacher."
    assert "He is a teacher." in box.output.value
    box.text.value = "我有一只猫。"  # what pressing Enter after typing does
    assert box.translation == "I have a cat."
    box.text.value = "我喜欢量子力学。"  # unknown words are struck out
    assert isinstance(box.translation, str) and "<s " in box.output.value
    box.text.value = "   "
    assert box.translation is None and box.translate() == EMPTY_MESSAGE
    assert "请先输入一句中文" in box.output.value


def test_decoding_lab_compares_greedy_and_beam_and_draws_the_attention(attention_translator):
    translator, _ = attention_translator
    lab = DecodingLab(translator, value="他是老师。", beam_size=3, n_best=5)
    assert lab.greedy == lab.beam == "He is a teacher."  # decoded on creation
    assert len(lab.n_best) == 3 and lab.n_best[0] == ("He is a teacher.", lab.n_best[0][1])
    scores = [score for _, score in lab.n_best]
    assert scores == sorted(scores, reverse=True)
    assert "beam 3 (length_penalty 0.6)" in lab.output.value and "<table>" in lab.output.value
    assert bytes(lab.plot.value).startswith(b"\x89PNG")
    assert [t.get_text() for t in lab.figure.axes[0].get_xticklabels()][0] == "<sos>"
    lab.beam_size.value = 1  # moving a slider decodes again: beam 1 is greedy
    assert lab.beam == lab.greedy and len(lab.n_best) == 1
    assert "beam 1 " in lab.output.value
    lab.length_penalty.value = 1.5
    assert "length_penalty 1.5" in lab.output.value
    lab.text.value = "我有一只猫。"  # what pressing Enter after typing does
    assert lab.greedy == "I have a cat." and lab.beam == "I have a cat."
    lab.beam_size.value = 8  # n_best never exceeds its limit
    lab.button.click()
    assert len(lab.n_best) == 5 and lab.beam == "I have a cat."


def test_decoding_lab_empty_sentence_and_a_model_without_attention(memorized, tiny_data,
                                                                    attention_translator):
    translator, _ = attention_translator
    lab = DecodingLab(translator, value="   ")
    assert lab.beam is None and lab.greedy is None and lab.figure is None
    assert "请先输入一句中文" in lab.output.value and lab.decode() is None
    model, _, info = memorized
    data_cfg, data = tiny_data
    plain = Translator(model, data.src_vocab, data.trg_vocab, data_cfg, TINY_MODEL)
    lab = DecodingLab(plain, value="他是老师。", beam_size=2)
    assert lab.beam == "He is a teacher." and lab.figure is None and bytes(lab.plot.value) == b""
