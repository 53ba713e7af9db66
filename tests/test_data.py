from pathlib import Path

import pytest

from seq2seq_lib import (
    CorpusError,
    DataConfig,
    load_corpus,
    load_hsk,
    read_parallel,
    read_tsv,
    split_pairs,
)

DATA = Path(__file__).parent / "data"


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_hsk_corpus_drops_placeholders():
    corpus = load_hsk()
    assert corpus.dropped["placeholder translations"] == 65
    assert corpus.dropped["numbered placeholders"] == 15  # "placeholder-p1" ... "placeholder-q1"
    assert len(corpus) == 4354 - 65 - 15
    assert not any(en.lower().startswith("placeholder") for _, en in corpus.pairs)
    assert ("老师，您好！", "Hello, teacher!") in corpus.pairs
    assert "65 placeholder translations, 15 numbered placeholders" in corpus.summary()


def test_parallel_files_read_in_order(tiny_corpus):
    assert len(tiny_corpus) == 20
    assert tiny_corpus.pairs[0] == ("我喜欢学习。", "I like studying.")


def test_line_count_mismatch_names_both_files_and_counts(tmp_path):
    zh = write(tmp_path / "a.zh", "一\n二\n三\n".encode())
    en = write(tmp_path / "a.en", b"one\ntwo\n")
    with pytest.raises(CorpusError) as err:
        read_parallel(zh, en)
    msg = str(err.value)
    assert "a.zh has 3 lines" in msg and "a.en has 2" in msg


def test_undecodable_bytes_name_file_and_line(tmp_path):
    zh = write(tmp_path / "b.zh", "一\n二\n".encode() + b"\xff\xfe bad\n")
    en = write(tmp_path / "b.en", b"one\ntwo\nthree\n")
    with pytest.raises(CorpusError, match=r"b\.zh:3: not valid UTF-8"):
        read_parallel(zh, en)


def test_missing_file(tmp_path):
    with pytest.raises(CorpusError, match=r"nope\.zh: file not found"):
        read_parallel(tmp_path / "nope.zh", DATA / "tiny.en")


def test_bom_and_crlf_are_accepted(tmp_path):
    zh = write(tmp_path / "c.zh", "\ufeff你好\r\n谢谢\r\n".encode())
    en = write(tmp_path / "c.en", "\ufeffHello\r\nThanks\r\n".encode())
    assert read_parallel(zh, en).pairs == [("你好", "Hello"), ("谢谢", "Thanks")]


def test_empty_pairs_are_dropped_and_counted(tmp_path):
    zh = write(tmp_path / "d.zh", "你好\n\n谢谢\n再见\n".encode())
    en = write(tmp_path / "d.en", b"Hello\nNothing\nThanks\n  \n")
    corpus = read_parallel(zh, en)
    assert corpus.pairs == [("你好", "Hello"), ("谢谢", "Thanks")]
    assert corpus.dropped["empty pairs"] == 2
    assert "dropped 2 empty pairs" in corpus.summary()


def test_tsv_reads_english_tab_chinese():
    corpus = read_tsv(DATA / "tiny.tsv")
    assert len(corpus) == 20
    assert corpus.pairs[1] == ("他是老师。", "He is a teacher.")


def test_tsv_line_without_tab_names_line(tmp_path):
    tsv = write(tmp_path / "e.tsv", "Hi.\t嗨。\nno tab here\n".encode())
    with pytest.raises(CorpusError, match=r"e\.tsv:2: no tab found"):
        read_tsv(tsv)


def test_load_corpus_checks_its_arguments():
    with pytest.raises(CorpusError, match="needs both src_path and trg_path"):
        load_corpus(DataConfig(source="parallel", src_path="x.zh"))
    with pytest.raises(CorpusError, match="needs tsv_path"):
        load_corpus(DataConfig(source="tsv"))


def test_split_is_deterministic_and_disjoint():
    pairs = [(str(i), str(i)) for i in range(1000)]
    a = split_pairs(pairs, 0.1, 0.05, seed=3)
    b = split_pairs(pairs, 0.1, 0.05, seed=3)
    c = split_pairs(pairs, 0.1, 0.05, seed=4)
    assert a == b and a.test != c.test
    assert (len(a.train), len(a.valid), len(a.test)) == (850, 100, 50)
    assert set(a.train) | set(a.valid) | set(a.test) == set(pairs)
    assert not set(a.train) & set(a.test)


def test_split_rejects_fractions_that_leave_no_training_data():
    with pytest.raises(ValueError, match="must leave a training part"):
        split_pairs([("a", "b")], 0.6, 0.5)


def test_whole_file_readers_are_the_streams_read_whole(tmp_path):
    """load_corpus is the stream, collected: the same pairs, drop counts and errors on nasty input."""
    from seq2seq_lib.data import stream_corpus

    tsv = write(tmp_path / "n.tsv", "\ufeffHi.\t嗨。\tCC-BY\r\n\r\n  \t 你好 \n Bye \t\t\nOK\t好\n".encode())
    cfg = DataConfig(source="tsv", tsv_path=str(tsv))
    corpus, stream = load_corpus(cfg), stream_corpus(cfg)
    assert corpus.pairs == list(stream) == [("嗨。", "Hi."), ("好", "OK")]
    assert corpus.dropped == stream.dropped == {"empty pairs": 3}
    zh = write(tmp_path / "n.zh", "一\n二\n三\n".encode())
    en = write(tmp_path / "n.en", b"one\ntwo\nthree\nfour\n")
    with pytest.raises(CorpusError, match=r"n\.zh has 3 lines but .*n\.en has 4"):
        load_corpus(DataConfig(source="parallel", src_path=str(zh), trg_path=str(en)))
    hsk = load_hsk()
    assert hsk.dropped == {"placeholder translations": 65, "numbered placeholders": 15,
                           "empty pairs": 0}


def test_one_check_of_the_fractions_everywhere():
    from seq2seq_lib.config import ConfigError
    from seq2seq_lib.data import split_of

    message = r"valid_frac and test_frac must be in \[0, 1\) and must leave a training part"
    for call in (lambda: DataConfig(valid_frac=0.5, test_frac=0.5),
                 lambda: split_pairs([("a", "b")], 0.5, 0.5), lambda: split_of(1, 0, 0.5, 0.5)):
        with pytest.raises(ConfigError, match=message):
            call()
