"""Loss curves (and, with attention, heat-maps) drawn with matplotlib."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure


def plot_history(history: Sequence[dict[str, float]], ax: Axes | None = None,
                 title: str = "loss per epoch") -> Figure:
    """Train and validation loss per epoch on one axis; returns the figure."""
    if ax is None:
        fig = Figure(figsize=(6, 3.5))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    ax.clear()
    epochs = [r["epoch"] for r in history]
    ax.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    ax.plot(epochs, [r["valid_loss"] for r in history], "s-", label="valid")
    if history:
        best = min(history, key=lambda r: r["valid_loss"])
        ax.axvline(best["epoch"], color="grey", ls=":", lw=1, label=f"best (epoch {best['epoch']})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig
