"""Length histograms, padding bars and the <unk> curve draw what they are given."""

from matplotlib.figure import Figure

from seq2seq_lib.plots import plot_length_histogram, plot_padding_share, plot_unk_curve


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
