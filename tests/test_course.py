"""The notebooks' shared helpers: the training recipe, load-or-train, tables."""

from conftest import DATA, TINY_MODEL

from seq2seq_lib import DataConfig, TrainConfig, Translator, load_checkpoint
from seq2seq_lib.course import Table, load_or_train, train_translator

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
