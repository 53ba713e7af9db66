"""Notebook 05 trains the learner's own notebook-04 classes when their checks passed (their cells
kept), else the library's model, and says which; every way the kept code can fail falls back."""

import linecache
from dataclasses import replace

import pytest
import torch

from seq2seq_lib import ModelConfig, Seq2Seq, TrainConfig, Translator, build_model, set_seed
from seq2seq_lib.exercises import EXERCISES, answer_source, learner_model, train_learner_model
from seq2seq_lib.exercises.keep import kept_solution, solutions_dir

ALL = EXERCISES
CFG = ModelConfig(emb_dim=8, hid_dim=12, n_layers=2, dropout=0.1)
NAMES = {"encoder": "MyEncoder", "decoder": "MyDecoder", "seq2seq": "MySeq2Seq"}


@pytest.fixture(autouse=True)
def checkpoint_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQ2SEQ_CHECKPOINTS", str(tmp_path))
    return tmp_path


def pass_in_cells(sources=None, capsys=None):
    """Run notebook 04's three exercise cells (as IPython would) and their checks."""
    for i, (name, cls) in enumerate(NAMES.items()):
        source = (sources or {}).get(name, answer_source(name))
        cell = f"<ipython-input-{i}-cell>"
        linecache.cache[cell] = (len(source), None, source.splitlines(True), cell)
        namespace: dict = {f"check_{n}": ALL[n].check for n in NAMES}  # what 04 imports
        exec(compile(source, cell, "exec"), namespace)
        ALL[name].check(namespace[cls])


def test_nothing_kept_trains_the_library_model(capsys):
    model, message = learner_model(CFG, 20, 30)
    assert type(model) is Seq2Seq and model.training
    assert message.startswith("训练的是库里的模型") and "MyEncoder、MyDecoder、MySeq2Seq" in message
    assert "检查还没有通过" in message


def test_three_passing_checks_train_the_learners_classes(checkpoint_folder, capsys):
    pass_in_cells()
    assert "已记下你的 MySeq2Seq" in capsys.readouterr().out
    assert solutions_dir() == checkpoint_folder / "exercises"
    model, message = learner_model(CFG, 20, 30, seed=5)
    assert type(model).__name__ == "MySeq2Seq" and type(model.encoder).__name__ == "MyEncoder"
    assert message.startswith("训练的是你在笔记本 04 写的 MyEncoder、MyDecoder、MySeq2Seq")
    set_seed(5)
    library = build_model(CFG, 20, 30)
    assert model.state_dict().keys() == library.state_dict().keys()  # loads into the library's
    for key, value in library.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key  # the same start


def test_one_check_missing_or_failed_since_trains_the_library_model(capsys):
    pass_in_cells()
    broken = answer_source("decoder").replace("self.rnn(embedded, hidden)", "self.rnn(embedded)")
    pass_in_cells({"decoder": broken})  # the decoder's check now fails: its cell is forgotten
    assert kept_solution("decoder") is None
    model, message = learner_model(CFG, 20, 30)
    assert type(model) is Seq2Seq and "MyDecoder 的检查还没有通过" in message


@pytest.mark.parametrize("change, reason", [
    (("super().__init__()", "raise RuntimeError('boom')"), "运行记下的代码时出错 RuntimeError: boom"),
    (("\nclass MySeq2Seq(", "\nclass MySeq2Seq(:\n"), "运行记下的代码时出错 SyntaxError"),
    (("import torch\n", "%matplotlib inline\nimport torch\n"), "运行记下的代码时出错 SyntaxError"),
    (("class MySeq2Seq(", "class OtherName("), "运行记下的代码时出错 KeyError: 'MySeq2Seq'"),
])
def test_kept_code_that_fails_to_run_falls_back(change, reason, capsys):
    pass_in_cells()
    kept = answer_source("seq2seq").replace(*change, 1)
    (solutions_dir() / "seq2seq.py").write_text(kept, encoding="utf-8")
    model, message = learner_model(CFG, 20, 30)
    assert type(model) is Seq2Seq and reason in message, message


def test_a_cell_that_also_calls_its_check_or_prints_is_rebuilt_from_its_definitions(capsys):
    pass_in_cells({"encoder": answer_source("encoder") + "\ncheck_encoder(MyEncoder)\nprint(1)\n"})
    assert "check_encoder(MyEncoder)" in kept_solution("encoder")
    model, message = learner_model(CFG, 20, 30)
    assert type(model).__name__ == "MySeq2Seq", message


def test_kept_code_that_computes_something_else_falls_back(capsys):
    pass_in_cells()
    other = answer_source("seq2seq").replace("enc.hidden, enc)", "enc.hidden * 0, enc)")
    (solutions_dir() / "seq2seq.py").write_text(other, encoding="utf-8")
    model, message = learner_model(CFG, 20, 30)
    assert type(model) is Seq2Seq and "结果不同" in message


def test_attention_settings_train_the_library_model(capsys):
    pass_in_cells()
    model, message = learner_model(replace(CFG, attention="bahdanau"), 20, 30)
    assert type(model) is Seq2Seq and "注意力" in message


def replace_precision(translator: Translator) -> Translator:
    """The same translator decoding in float32 (as a loaded one is asked to)."""
    return Translator(translator.model, translator.src_vocab, translator.trg_vocab,
                      translator.data_cfg, translator.model_cfg, "cpu", translator.truecaser,
                      precision="fp32")


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model trains several times faster on a busy CPU
    yield
    torch.set_num_threads(threads)


def test_train_learner_model_trains_and_translates(tiny_data, one_thread, tmp_path, capsys):
    data_cfg, data = tiny_data
    pass_in_cells()
    cfg = TrainConfig(epochs=1, batch_size=8, lr=1e-2, device="cpu", precision="fp32",
                      checkpoint_path=str(tmp_path / "mine.pt"))
    model_cfg = ModelConfig(emb_dim=16, hid_dim=16, n_layers=1, dropout=0.0)
    translator, result, message = train_learner_model(data, data_cfg, model_cfg, cfg,
                                                      progress=False)
    assert isinstance(translator, Translator) and "你在笔记本 04 写的" in message
    assert type(translator.model).__name__ == "MySeq2Seq" and len(result.history) == 1
    zh = data.splits.train[0][0]
    # its checkpoint has the library's parameter names: the library's classes load it
    loaded = Translator.from_checkpoint(tmp_path / "mine.pt", precision="fp32")
    assert type(loaded.model) is Seq2Seq
    assert loaded.translate(zh) == replace_precision(translator).translate(zh)
    # the library's model, trained the same way from the same seed, ends with the same weights
    (solutions_dir() / "encoder.py").unlink()
    cfg = replace(cfg, checkpoint_path=None)
    library, library_result, message = train_learner_model(data, data_cfg, model_cfg, cfg,
                                                           progress=False)
    assert type(library.model) is Seq2Seq and "库里的模型" in message
    assert result.history[-1]["train_loss"] == pytest.approx(
        library_result.history[-1]["train_loss"], abs=1e-6)


def test_kept_solutions_live_in_the_course_checkpoint_folder(tmp_path, monkeypatch):
    from seq2seq_lib.course import checkpoint_dir

    assert solutions_dir() == checkpoint_dir() / "exercises"
    monkeypatch.delenv("SEQ2SEQ_CHECKPOINTS")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert solutions_dir() == checkpoint_dir() / "exercises" == tmp_path / "checkpoints" / "exercises"


def test_a_notebook_in_fast_mode_solves_class_exercises_and_keeps_the_cells(tmp_path):
    """tests/nbrun.py substitutes class exercises like functions, and in a real IPython kernel
    a passing check keeps the cell's text, which learner_model then rebuilds."""
    import nbformat
    from nbrun import PASSED, run

    from seq2seq_lib.exercises import stub_source

    cells = [nbformat.v4.new_code_cell(
        "from seq2seq_lib.exercises import check_decoder, check_encoder, check_seq2seq")]
    for name, cls in NAMES.items():
        cells += [nbformat.v4.new_code_cell(stub_source(name)),
                  nbformat.v4.new_code_cell(f"check_{name}({cls})")]
    path = tmp_path / "04_model.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    folder = tmp_path / "ckpt"
    result = run(path, fast=True, timeout=120, env={"SEQ2SEQ_CHECKPOINTS": str(folder)})
    assert set(result.checks) == set(NAMES)
    assert all(PASSED in text and "已记下你的" in text for text in result.checks.values())
    for name in NAMES:
        assert kept_solution(name, folder / "exercises") == answer_source(name)
    model, message = learner_model(CFG, 20, 30, folder=folder / "exercises")
    assert type(model).__name__ == "MySeq2Seq" and "你在笔记本 04 写的" in message
