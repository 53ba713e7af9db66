"""Length histograms, padding bars, the <unk> curve, BLEU by length and beam-size panels draw
what they are given."""

from matplotlib.figure import Figure

from seq2seq_lib.plots import (
    plot_beam_sizes,
    plot_bleu_by_length,
    plot_history,
    plot_length_histogram,
    plot_padding_share,
    plot_unk_curve,
)


def test_length_histogram_has_one_series_per_name_and_integer_bins():
    fig = plot_length_histogram({"zh": [1, 2, 2, 5], "en": [3, 3], "none": []})
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["zh (mean 2.5, max 5)", "en (mean 3.0, max 3)"]
    assert len(ax.patches) == 2  # two step outlines
    assert ax.get_xlabel() == "tokens per sentence"


def test_length_histogram_draws_on_a_given_axis():
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_length_histogram({"a": [4]}, ax=ax) is fig


def test_padding_share_bars_are_percentages():
    fig = plot_padding_share([16, 32], {"random": [0.5, 0.6], "buckets": [0.1, 0.12]})
    ax = fig.axes[0]
    heights = sorted(round(p.get_height(), 6) for p in ax.patches)
    assert heights == [10.0, 12.0, 50.0, 60.0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["16", "32"]


def test_unk_curve_marks_the_chosen_setting():
    fig = plot_unk_curve([4, 5, 6, 7], [1.0, 0.5, 0.3, 0.2], reachable=6, current=(5, 0.5))
    lines = fig.axes[0].get_lines()
    assert len(lines) == 3
    assert list(lines[1].get_xdata()) == [4, 5, 6]
    assert list(lines[2].get_ydata()) == [50.0]


def test_bleu_by_length_bars_skip_empty_bins_and_show_counts():
    fig = plot_bleu_by_length(["≤5", "6–8", ">8"], {"GRU": [3.0, 1.5, float("nan")],
                                                   "attention": [6.0, 4.5, 2.0]},
                              counts=[10, 7, 0])
    ax = fig.axes[0]
    assert sorted(round(p.get_height(), 6) for p in ax.patches) == [0.0, 1.5, 2.0, 3.0, 4.5, 6.0]
    assert [t.get_text() for t in ax.get_xticklabels()][2] == ">8\n(0 sent.)"
    texts = [t.get_text() for t in ax.texts]  # bar labels: no label on the empty bin
    assert "6.0" in texts and "nan" not in texts and "" in texts
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["GRU", "attention"]


def test_beam_size_panels():
    fig = plot_beam_sizes([1, 2, 5], {"test": [4.0, 4.3, 4.5], "valid": [3.0, 2.9, 3.1]},
                          [900.0, 400.0, 150.0])
    ax_bleu, ax_speed = fig.axes
    assert [list(line.get_ydata()) for line in ax_bleu.get_lines()] == [[4.0, 4.3, 4.5],
                                                                         [3.0, 2.9, 3.1]]
    assert [t.get_text() for t in ax_bleu.get_legend().get_texts()] == ["test", "valid"]
    assert list(ax_speed.get_lines()[0].get_xdata()) == [1, 2, 5]
    assert ax_speed.get_ylim()[0] == 0


def test_history_ticks_are_whole_epochs():
    history = [{"epoch": e, "train_loss": 5.0 - e, "valid_loss": 5.5 - e} for e in (1, 2, 3)]
    fig = plot_history(history)
    ticks = fig.axes[0].get_xticks()
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)


def test_chinese_series_names_and_titles_have_a_font(recwarn):
    """The legend and the title use the CJK fallback too: names such as 注意力 drew empty boxes
    (matplotlib warned "Glyph ... missing from font(s) DejaVu Sans")."""
    fig = plot_bleu_by_length(["≤5", ">5"], {"GRU，无注意力": [3.0, 1.5], "+ 注意力": [6.0, 4.5]},
                              counts=[10, 7], title="按源句长度的 BLEU")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    missing = [str(w.message) for w in recwarn if "missing from font" in str(w.message)]
    assert not missing, missing[:2]
