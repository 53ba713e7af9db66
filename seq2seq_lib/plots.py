"""Loss curves and attention heat-maps drawn with matplotlib (Chinese labels included)."""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from numpy.typing import ArrayLike

# Noto Sans CJK SC, shipped inside the pip package ``mplfonts`` (see requirements.txt)
CJK_FONT_PACKAGE, CJK_FONT_FILE = "mplfonts", "fonts/NotoSansCJKsc-Regular.otf"


def _figure_and_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """A new figure of ``figsize`` with one axis, or the figure of ``ax`` (cleared for redrawing)."""
    if ax is None:
        fig = Figure(figsize=figsize)
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    ax.clear()
    return fig, ax


def _grouped_bars(ax: Axes, n_groups: int, values_by_name: dict[str, Sequence[float]],
                  labels: Callable[[Sequence[float]], list[str]]) -> None:
    """Side-by-side bars: one group per x position, one colour per entry of ``values_by_name``;
    ``nan`` draws no bar; ``labels`` gives the text over each bar of one series."""
    width = 0.8 / max(len(values_by_name), 1)
    for k, (name, values) in enumerate(values_by_name.items()):
        xs = [i + (k - (len(values_by_name) - 1) / 2) * width for i in range(n_groups)]
        bars = ax.bar(xs, [0.0 if np.isnan(v) else v for v in values], width, label=name)
        ax.bar_label(bars, labels=labels(values), fontsize=8)


def plot_history(history: Sequence[dict[str, float]], ax: Axes | None = None,
                 title: str = "loss per epoch") -> Figure:
    """Train and validation loss per epoch on one axis; returns the figure.

    A record validated in the middle of an epoch (``TrainConfig.valid_every``) is drawn where
    it was taken: at its ``progress`` (epochs done, e.g. 2.5).
    """
    fig, ax = _figure_and_axes(ax, (6, 3.5))
    epochs = [r.get("progress", r["epoch"]) for r in history]
    ax.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    ax.plot(epochs, [r["valid_loss"] for r in history], "s-", label="valid")
    if history:
        best = min(history, key=lambda r: r["valid_loss"])
        ax.axvline(best.get("progress", best["epoch"]), color="grey", ls=":", lw=1,
                   label=f"best (epoch {best['epoch']})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no "epoch 2.5" ticks
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy")
    ax.set_title(title, fontfamily=font_families())
    ax.grid(alpha=0.3)
    ax.legend(prop={"family": font_families()})  # names may be Chinese
    fig.tight_layout()
    return fig


def packaged_cjk_font_file() -> Path | None:
    """The Noto Sans CJK SC file inside the ``mplfonts`` package, or None when not installed."""
    spec = importlib.util.find_spec(CJK_FONT_PACKAGE)  # finds the package without importing it
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    return next((p for p in (Path(f) / CJK_FONT_FILE for f in folders) if p.is_file()), None)


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """Register the packaged Chinese font with matplotlib (once) and return its family name.

    The font file comes with the ``mplfonts`` package, so nothing is downloaded and no set-up
    command is needed. Returns None (with a warning) when the package is not installed.
    """
    path = packaged_cjk_font_file()
    if path is None:
        warnings.warn(f"the font package {CJK_FONT_PACKAGE!r} is not installed: Chinese labels "
                      "may show as empty boxes (pip install -r requirements.txt)", stacklevel=2)
        return None
    return prefer_font_file(path)


def prefer_font_file(path: Path) -> str:
    """Make ``path`` the font matplotlib uses for its family name, and return that name.

    A machine may have another font of the same family (e.g. Debian's ``fonts-noto-cjk``
    installs a Noto Sans CJK SC of its own); matplotlib takes the first best match in its list,
    so the packaged file is put first and figures look the same on every machine.
    """
    manager = font_manager.fontManager
    manager.addfont(str(path))
    ours = [f for f in manager.ttflist if Path(f.fname) == path]
    manager.ttflist = ours + [f for f in manager.ttflist if Path(f.fname) != path]
    font_manager.FontManager._findfont_cached.cache_clear()  # earlier look-ups are stale now
    return font_manager.FontProperties(fname=str(path)).get_name()


def font_families() -> list[str]:
    """Font families for text that mixes Latin and Chinese: matplotlib's default sans-serif
    font first, the CJK font as the fallback for the characters it lacks."""
    cjk = cjk_font()
    return ["DejaVu Sans", cjk] if cjk else ["DejaVu Sans"]


def use_cjk_font() -> None:
    """Make every later matplotlib text able to show Chinese (changes ``rcParams``)."""
    import matplotlib

    cjk = cjk_font()
    families = list(matplotlib.rcParams["font.sans-serif"])
    if cjk and cjk not in families:
        matplotlib.rcParams["font.sans-serif"] = [*families, cjk]


def plot_attention(attention: ArrayLike, src_tokens: Sequence[str], trg_tokens: Sequence[str],
                   ax: Axes | None = None, title: str | None = None) -> Figure:
    """Heat-map of attention weights: one row per output word, one column per source word.

    :param attention: [out_len, src_len] weights (a tensor or an array; rows sum to 1).
    :param src_tokens: the ``src_len`` source labels (x axis), e.g. ``["<sos>", "我", ..., "<eos>"]``.
    :param trg_tokens: the ``out_len`` output labels (y axis), ending with ``"<eos>"``.
    """
    if hasattr(attention, "detach"):  # a torch tensor, possibly on a GPU
        attention = attention.detach().cpu().float().numpy()
    weights = np.asarray(attention, dtype=float)  # [out_len, src_len]
    if weights.ndim != 2 or weights.shape != (len(trg_tokens), len(src_tokens)):
        raise ValueError(f"attention has shape {weights.shape}, but there are {len(trg_tokens)} "
                         f"output and {len(src_tokens)} source tokens")
    if ax is None:
        fig = Figure(figsize=(1.0 + 0.45 * max(len(src_tokens), 4),
                              1.0 + 0.4 * max(len(trg_tokens), 4)))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    ax.clear()
    image = ax.imshow(weights, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    families = font_families()
    ax.set_xticks(range(len(src_tokens)), list(src_tokens), rotation=45, ha="right",
                  rotation_mode="anchor", fontfamily=families)
    ax.set_yticks(range(len(trg_tokens)), list(trg_tokens), fontfamily=families)
    ax.set_xlabel("source (Chinese)")
    ax.set_ylabel("output (English)")
    if title:
        ax.set_title(title, fontfamily=families)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="attention weight")
    fig.tight_layout()
    return fig


def plot_length_histogram(lengths_by_name: dict[str, Sequence[int]], ax: Axes | None = None,
                          title: str = "sentence length", xlabel: str = "tokens per sentence"
                          ) -> Figure:
    """Overlaid histograms (one bin per length) of several sets of sentence lengths.

    :param lengths_by_name: e.g. ``{"zh words": [...], "zh chars": [...], "en words": [...]}``;
        each legend entry shows the mean and the longest length.
    """
    fig, ax = _figure_and_axes(ax, (7, 3.5))
    filled = [v for v in lengths_by_name.values() if len(v)]
    shortest = min((min(v) for v in filled), default=0)
    longest = max((max(v) for v in filled), default=1)
    bins = [b - 0.5 for b in range(shortest, longest + 2)]
    for name, lengths in lengths_by_name.items():
        if not len(lengths):
            continue
        mean = sum(lengths) / len(lengths)
        ax.hist(lengths, bins=bins, histtype="step", linewidth=1.8,
                label=f"{name} (mean {mean:.1f}, max {max(lengths)})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("sentences")
    ax.set_title(title, fontfamily=font_families())
    ax.grid(alpha=0.3)
    ax.legend(prop={"family": font_families()})  # names may be Chinese
    fig.tight_layout()
    return fig


def plot_padding_share(batch_sizes: Sequence[int], shares_by_name: dict[str, Sequence[float]],
                       ax: Axes | None = None, title: str = "padding share of the batches"
                       ) -> Figure:
    """Grouped bars: the share of padded positions (in %) for each batch size and loader kind.

    :param shares_by_name: e.g. ``{"random batches": [...], "length buckets": [...]}``, one share
        (0..1) per entry of ``batch_sizes``.
    """
    fig, ax = _figure_and_axes(ax, (7, 3.5))
    percent = {name: [100 * s for s in shares] for name, shares in shares_by_name.items()}
    _grouped_bars(ax, len(batch_sizes), percent, lambda vs: [f"{v:.0f}%" for v in vs])
    ax.set_xticks(range(len(batch_sizes)), [str(b) for b in batch_sizes])
    ax.set_xlabel("batch size")
    ax.set_ylabel("padding (% of positions)")
    ax.set_title(title, fontfamily=font_families())
    ax.grid(axis="y", alpha=0.3)
    ax.legend(prop={"family": font_families()})  # names may be Chinese
    fig.tight_layout()
    return fig


def plot_unk_curve(sizes: Sequence[int], rates: Sequence[float], reachable: int | None = None,
                   current: tuple[int, float] | None = None, ax: Axes | None = None,
                   title: str = "validation <unk> rate vs vocabulary size") -> Figure:
    """The ``<unk>`` rate as the vocabulary grows (see :func:`seq2seq_lib.vocab.unk_rate_curve`).

    :param reachable: the largest size ``min_freq`` allows; the curve beyond it is drawn faint.
    :param current: ``(size, rate)`` of the chosen setting, marked with a dot.
    """
    fig, ax = _figure_and_axes(ax, (6, 3.5))
    pct = [100 * r for r in rates]
    ax.plot(sizes, pct, color="lightgrey", lw=2, label="all training tokens")
    if reachable is not None:
        keep = [i for i, s in enumerate(sizes) if s <= reachable]
        ax.plot([sizes[i] for i in keep], [pct[i] for i in keep], color="C0", lw=2,
                label=f"allowed by min_freq (up to {reachable})")
    if current is not None:
        ax.plot([current[0]], [100 * current[1]], "o", color="C3", ms=8,
                label=f"chosen: size {current[0]}, {100 * current[1]:.1f}% <unk>")
    ax.set_xscale("log")
    ax.set_xlabel("vocabulary size (log scale)")
    ax.set_ylabel("<unk> (% of valid tokens)")
    ax.set_title(title, fontfamily=font_families())
    ax.grid(alpha=0.3, which="both")
    ax.legend(prop={"family": font_families()})  # names may be Chinese
    fig.tight_layout()
    return fig


def plot_bleu_by_length(labels: Sequence[str], bleu_by_name: dict[str, Sequence[float]],
                        counts: Sequence[int] | None = None, ax: Axes | None = None,
                        title: str = "test BLEU by source length") -> Figure:
    """Grouped bars: BLEU per source-length bin, one colour per model.

    :param labels: the bins, e.g. ``["≤5", "6–8", "9–12", ">12"]``.
    :param bleu_by_name: e.g. ``{"GRU": [...], "GRU + attention": [...]}``, one BLEU per bin
        (``nan`` for an empty bin draws no bar).
    :param counts: sentences per bin, shown under the bin labels.
    """
    fig, ax = _figure_and_axes(ax, (7, 3.5))
    _grouped_bars(ax, len(labels), bleu_by_name,
                  lambda vs: ["" if np.isnan(v) else f"{v:.1f}" for v in vs])
    ticks = list(labels) if counts is None else [f"{b}\n({n} sent.)" for b, n in zip(labels, counts)]
    ax.set_xticks(range(len(labels)), ticks, fontfamily=font_families())
    ax.set_xlabel("source length (Chinese tokens)")
    ax.set_ylabel("BLEU")
    ax.set_title(title, fontfamily=font_families())
    ax.grid(axis="y", alpha=0.3)
    ax.legend(prop={"family": font_families()})  # names may be Chinese
    fig.tight_layout()
    return fig


def plot_beam_sizes(beam_sizes: Sequence[int], bleu_by_name: dict[str, Sequence[float]],
                    sentences_per_s: Sequence[float],
                    title: str = "beam size: quality and speed") -> Figure:
    """Two panels over the beam size: BLEU (left, one line per evaluation set, e.g.
    ``{"test": [...], "valid": [...]}``) and decoding speed in sentences/s (right)."""
    fig = Figure(figsize=(9, 3.2))
    ax_bleu, ax_speed = fig.subplots(1, 2)
    for k, (name, scores) in enumerate(bleu_by_name.items()):
        ax_bleu.plot(beam_sizes, scores, "o-", color=f"C{k}", label=name)
    ax_bleu.set_ylabel("BLEU")
    ax_bleu.legend(prop={"family": font_families()})
    ax_speed.plot(beam_sizes, sentences_per_s, "s-", color="C3")
    ax_speed.set_ylabel("sentences / second")
    ax_speed.set_ylim(bottom=0)
    for ax in (ax_bleu, ax_speed):
        ax.set_xticks(list(beam_sizes))
        ax.set_xlabel("beam size (1 = greedy)")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
