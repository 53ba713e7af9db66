import io
import os
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from conftest import FRESH_CACHES
from matplotlib import font_manager
from matplotlib.figure import Figure

from seq2seq_lib import cjk_font, plot_attention, plot_history
from seq2seq_lib.plots import packaged_cjk_font_file, prefer_font_file

SRC = ["<sos>", "我", "喜欢", "学习", "机器", "学习", "。", "<eos>"]
TRG = ["i", "like", "studying", "machine", "learning", ".", "<eos>"]


def _font_file_for(family):
    return Path(font_manager.findfont(font_manager.FontProperties(family=family),
                                      fallback_to_default=False))


def test_the_cjk_font_comes_from_the_installed_package():
    family = cjk_font()
    assert family == "Noto Sans CJK SC"
    path = _font_file_for(family)
    assert path == packaged_cjk_font_file() and "mplfonts" in path.parts


def test_the_packaged_font_wins_over_a_system_font_of_the_same_family(tmp_path):
    """A machine with its own Noto Sans CJK SC (as Debian's fonts-noto-cjk installs) still draws
    with the packaged file, whichever the font list found first."""
    manager = font_manager.fontManager
    saved = list(manager.ttflist)
    system_copy = tmp_path / "NotoSansCJKsc-Regular.otf"
    shutil.copyfile(packaged_cjk_font_file(), system_copy)
    try:
        manager.addfont(str(system_copy))
        manager.ttflist = [f for f in manager.ttflist if Path(f.fname) == system_copy] + [
            f for f in manager.ttflist if Path(f.fname) != system_copy]
        font_manager.FontManager._findfont_cached.cache_clear()
        assert _font_file_for("Noto Sans CJK SC") == system_copy  # the situation to fix
        assert prefer_font_file(packaged_cjk_font_file()) == "Noto Sans CJK SC"
        assert _font_file_for("Noto Sans CJK SC") == packaged_cjk_font_file()
    finally:
        manager.ttflist = saved
        prefer_font_file(packaged_cjk_font_file())


def test_the_suite_runs_with_fresh_per_user_caches():
    """conftest.py points matplotlib at a new, empty config and cache folder, as on a new machine
    (a stale font cache once hid a failure)."""
    import matplotlib

    assert os.environ["MPLCONFIGDIR"] == FRESH_CACHES["MPLCONFIGDIR"]
    assert matplotlib.get_cachedir() == FRESH_CACHES["MPLCONFIGDIR"]


def test_attention_heat_map_renders_chinese_without_missing_glyphs(tmp_path):
    weights = torch.rand(len(TRG), len(SRC)).softmax(-1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a "Glyph ... missing from font(s)" warning fails here
        fig = plot_attention(weights, SRC, TRG, title="注意力 attention")
        fig.savefig(tmp_path / "attention.png", dpi=60)
    assert (tmp_path / "attention.png").stat().st_size > 5000
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == SRC
    assert [t.get_text() for t in ax.get_yticklabels()] == TRG
    image = ax.images[0].get_array()
    assert image.shape == (len(TRG), len(SRC))


def test_without_the_font_chinese_would_be_missing():
    """The check above is meaningful: matplotlib's default font has no Chinese glyphs."""
    fig = Figure()
    fig.add_subplot().set_title("我喜欢", fontfamily="DejaVu Sans")
    with pytest.warns(UserWarning, match="missing from font"):
        fig.savefig(io.BytesIO(), format="png")


def test_heat_map_on_given_axes_and_shape_check():
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_attention([[0.25, 0.75]], ["你", "好"], ["hi"], ax=ax) is fig
    with pytest.raises(ValueError, match="2 source tokens"):
        plot_attention([[1.0, 0.0, 0.0]], ["你", "好"], ["hi"])


def test_loss_curves_still_draw():
    history = [{"epoch": 1, "train_loss": 2.0, "valid_loss": 2.5},
               {"epoch": 2, "train_loss": 1.5, "valid_loss": 2.2}]
    assert plot_history(history).axes[0].get_xlabel() == "epoch"
