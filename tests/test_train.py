import math

import pytest
import torch
from conftest import tiny_setup, train_tiny

from seq2seq_lib import TrainingError, choose_device, fit, greedy_decode, load_checkpoint
from seq2seq_lib.lesson import lesson_shifted_loss


def decode_all(model, data):
    from seq2seq_lib import collate

    b = collate([data.train[i] for i in range(len(data.train))])
    hyps = greedy_decode(model, b.src, b.src_lens, max_len=20)
    return [data.trg_vocab.decode(h.ids) for h in hyps]


def test_tiny_model_memorizes_and_greedy_decodes_exactly(memorized, tiny_data):
    model, result, _ = memorized
    _, data = tiny_data
    assert result.history[-1]["train_loss"] < 0.05
    assert decode_all(model, data) == data.tokens["train"][1]


def test_the_lessons_shifted_target_cannot_be_learned(tiny_data):
    """The same training with the lesson's misaligned loss does not reproduce the targets."""
    data_cfg, data = tiny_data
    model, result, *_ = train_tiny(data_cfg, data, epochs=80, loss_fn=lesson_shifted_loss)
    outputs = decode_all(model, data)
    exact = sum(o == t for o, t in zip(outputs, data.tokens["train"][1]))
    assert exact <= 2


def test_same_seed_same_run(tiny_data):
    data_cfg, data = tiny_data
    _, a, *_ = train_tiny(data_cfg, data, epochs=3, seed=5)
    _, b, *_ = train_tiny(data_cfg, data, epochs=3, seed=5)
    _, c, *_ = train_tiny(data_cfg, data, epochs=3, seed=6)
    losses = lambda r: [(h["train_loss"], h["valid_loss"]) for h in r.history]  # noqa: E731
    assert losses(a) == losses(b)
    assert losses(a) != losses(c)


def test_checkpoint_holds_everything_and_no_temp_file_is_left(tiny_data, tmp_path):
    data_cfg, data = tiny_data
    path = tmp_path / "ck" / "m.pt"
    model, result, *_ = train_tiny(data_cfg, data, epochs=4, checkpoint_path=path)
    assert result.checkpoint == path
    assert [p.name for p in path.parent.iterdir()] == ["m.pt"]
    ck = load_checkpoint(path)
    assert ck["epoch"] == result.best_epoch
    assert len(ck["history"]) == 4
    assert ck["info"].src_vocab.itos == data.src_vocab.itos
    assert ck["info"].trg_vocab.itos == data.trg_vocab.itos
    assert ck["library_version"] and "optimizer_state" in ck
    for k, v in model.state_dict().items():  # the model holds the best weights after fit
        torch.testing.assert_close(v, ck["model_state"][k])


def test_interrupt_keeps_best_weights_and_history(tiny_data, tmp_path):
    data_cfg, data = tiny_data
    path = tmp_path / "m.pt"

    def interrupt_at_3(record, history):
        if record["epoch"] == 3:
            raise KeyboardInterrupt

    model, result, *_ = train_tiny(data_cfg, data, epochs=10, checkpoint_path=path,
                                   callbacks=[interrupt_at_3])
    assert result.stopped == "interrupted"
    assert len(result.history) == 3
    ck = load_checkpoint(path)
    assert len(ck["history"]) == 3
    assert ck["epoch"] == result.best_epoch
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, ck["model_state"][k])


def test_nan_loss_stops_with_a_clear_message_and_keeps_best(tiny_data, tmp_path):
    data_cfg, data = tiny_data
    path = tmp_path / "m.pt"
    model, train_loader, valid_loader, cfg, info = tiny_setup(data_cfg, data, 5, checkpoint_path=path)

    def poison(record, history):
        if record["epoch"] == 2:
            with torch.no_grad():
                for p in model.parameters():
                    p.fill_(float("nan"))

    with pytest.raises(TrainingError, match=r"epoch 3, batch \d+: the training loss became nan"):
        fit(model, train_loader, valid_loader, cfg, info, callbacks=[poison], progress=False)
    ck = load_checkpoint(path)
    assert ck["epoch"] == 2 and len(ck["history"]) == 2
    assert all(torch.isfinite(v).all() for v in ck["model_state"].values())
    assert all(torch.isfinite(p).all() for p in model.parameters())  # best weights are back


def test_resume_continues_where_the_checkpoint_stopped(tiny_data, tmp_path):
    data_cfg, data = tiny_data
    path = tmp_path / "m.pt"
    _, first, *_ = train_tiny(data_cfg, data, epochs=4, checkpoint_path=path)
    assert first.best_epoch == 4
    _, resumed, *_ = train_tiny(data_cfg, data, epochs=6, checkpoint_path=path, resume_from=path)
    _, straight, *_ = train_tiny(data_cfg, data, epochs=6)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4, 5, 6]
    for r, s in zip(resumed.history, straight.history):
        assert math.isclose(r["train_loss"], s["train_loss"], rel_tol=1e-4)


def test_device_choice(monkeypatch):
    from seq2seq_lib import device as device_mod

    assert choose_device("cpu", verbose=False).type == "cpu"
    expected = ("cuda" if torch.cuda.is_available() else
                "mps" if device_mod._mps_available() else "cpu")
    assert choose_device("auto", verbose=False).type == expected
    # the order CUDA, then MPS, then CPU, whatever this machine has
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_mod, "_mps_available", lambda: True)
    assert choose_device("auto", verbose=False).type == "mps"
    monkeypatch.setattr(device_mod, "_mps_available", lambda: False)
    assert choose_device("auto", verbose=False).type == "cpu"
    with pytest.raises(ValueError, match="no CUDA GPU"):
        choose_device("cuda", verbose=False)
    with pytest.raises(ValueError, match="MPS is not available"):
        choose_device("mps", verbose=False)
    with pytest.raises(ValueError, match="use auto, cpu, cuda"):
        choose_device("gpu", verbose=False)


def test_loss_ignores_padding(memorized, tiny_data):
    """A padded batch's mean loss is the token-weighted mean of its sentences scored alone."""
    from seq2seq_lib import batch_loss, collate

    model, *_ = memorized
    _, data = tiny_data
    examples = [data.train[i] for i in (0, 19, 3, 7)]
    lengths = {len(trg) for _, trg in examples}
    assert len(lengths) > 1  # the batch really is padded
    model.eval()
    with torch.no_grad():
        together, n_together = batch_loss(model, collate(examples))
        alone = [batch_loss(model, collate([ex])) for ex in examples]
    assert n_together == sum(n for _, n in alone)
    weighted = sum(loss.item() * n for loss, n in alone) / n_together
    assert math.isclose(together.item(), weighted, rel_tol=1e-5, abs_tol=1e-7)


def test_resume_accepts_an_optimizer_state_saved_without_the_fused_kernel(tiny_data, tmp_path):
    """Checkpoints from before the fused Adam kernel (or from another device) still resume."""
    from seq2seq_lib import save_checkpoint

    data_cfg, data = tiny_data
    path = tmp_path / "m.pt"
    _, first, info, cfg = train_tiny(data_cfg, data, epochs=2, checkpoint_path=path)
    ck = load_checkpoint(path)
    for group in ck["optimizer_state"]["param_groups"]:
        group["fused"] = None
    save_checkpoint(path, ck["model_state"], info, cfg, ck["history"], ck["epoch"],
                    ck["optimizer_state"])
    _, resumed, *_ = train_tiny(data_cfg, data, epochs=3, checkpoint_path=path, resume_from=path)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    assert math.isfinite(resumed.history[-1]["train_loss"])


@pytest.mark.parametrize("payload, kind", [([1, 2, 3], "list"), (torch.zeros(3), "Tensor"),
                                           ("text", "str")])
def test_a_payload_that_is_not_a_dict_is_a_checkpoint_error(tmp_path, payload, kind):
    from seq2seq_lib import CheckpointError

    path = tmp_path / "odd.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=f"odd.pt: not a course checkpoint .*{kind}"):
        load_checkpoint(path)


def test_a_checkpoint_gets_the_users_normal_file_permissions(memorized, tiny_data, tmp_path):
    import os
    import stat

    from seq2seq_lib import TrainConfig, save_checkpoint

    model, _, info = memorized
    old = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "p.pt", model.state_dict(), info, TrainConfig(), [], 1)
    finally:
        os.umask(old)
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's private 0600
    assert [p.name for p in tmp_path.iterdir()] == ["p.pt"]


def test_writing_a_checkpoint_never_sets_the_umask(memorized, tmp_path, monkeypatch):
    """Reading the umask by setting it (``os.umask(0)``, then back) raced with the dashboard's
    background thread: a file created in between got mode 0666. The umask is read, not set."""
    import os
    import stat

    from seq2seq_lib import TrainConfig, save_checkpoint
    from seq2seq_lib import checkpoint as checkpoint_mod

    model, _, info = memorized
    old = os.umask(0o027)

    def refuse(mask):
        raise AssertionError(f"os.umask({mask:#o}) called while writing a checkpoint")

    try:
        monkeypatch.setattr(os, "umask", refuse)
        path = save_checkpoint(tmp_path / "p.pt", model.state_dict(), info, TrainConfig(), [], 1)
        if os.name == "posix" and checkpoint_mod._read_umask() is not None:
            assert stat.S_IMODE(path.stat().st_mode) == 0o640
        monkeypatch.setattr(checkpoint_mod, "_read_umask", lambda: None)  # no /proc: the
        path = save_checkpoint(tmp_path / "q.pt", model.state_dict(), info, TrainConfig(), [], 1)
        if os.name == "posix":  # umask read once at import
            mode = 0o666 & ~checkpoint_mod._UMASK_AT_IMPORT
            assert stat.S_IMODE(path.stat().st_mode) == mode
    finally:
        monkeypatch.undo()
        os.umask(old)


def test_resume_with_other_vocabularies_is_refused(tiny_data, tmp_path):
    """Weights trained for one vocabulary must never be loaded for another of the same size."""
    from seq2seq_lib import CheckpointError, Vocab

    data_cfg, data = tiny_data
    path = tmp_path / "v.pt"
    train_tiny(data_cfg, data, epochs=1, checkpoint_path=path)
    model, train_loader, valid_loader, cfg, info = tiny_setup(data_cfg, data, epochs=2)
    shuffled = info.trg_vocab.itos[:4] + info.trg_vocab.itos[4:][::-1]  # same size, other words
    info.trg_vocab = Vocab(shuffled)
    with pytest.raises(CheckpointError, match="English vocabulary .* first difference at id 4"):
        fit(model, train_loader, valid_loader, cfg, info, resume_from=path, progress=False)


def test_run_history_reads_the_last_state_of_the_same_run(memorized, tmp_path):
    """The best file is written once, so its history ends at the best validation; the run's
    whole history is in the last state beside it (and only if that state is the same run's)."""
    from seq2seq_lib import TrainConfig, save_checkpoint
    from seq2seq_lib.checkpoint import last_checkpoint_path, run_history

    model, _, info = memorized
    r1, r2 = {"epoch": 1, "valid_loss": 2.0}, {"epoch": 2, "valid_loss": 2.5}
    best = save_checkpoint(tmp_path / "m.pt", model.state_dict(), info, TrainConfig(), [r1], 1)
    assert run_history(best) == [r1]  # no last state: the file's own
    last = save_checkpoint(last_checkpoint_path(best), model.state_dict(), info, TrainConfig(),
                           [r1, r2], 2)
    assert run_history(best) == [r1, r2]
    save_checkpoint(last, model.state_dict(), info, TrainConfig(), [r2], 2)  # another run's
    assert run_history(best) == [r1]
