"""The record of every validation, beside the checkpoint: ``MODEL.metrics.jsonl`` (one JSON object
a line) and ``MODEL.metrics.csv``, appended to on ``--resume``, and TensorBoard event files in
``MODEL.tensorboard/`` when ``torch.utils.tensorboard`` can be imported (optional)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

COLUMNS = ("epoch", "step", "train_loss", "valid_loss", "valid_ppl", "valid_bleu", "lr",
           "seconds", "tokens_per_s")


def metrics_paths(checkpoint: str | Path) -> tuple[Path, Path]:
    """``checkpoints/model.pt`` → (``model.metrics.jsonl``, ``model.metrics.csv``) beside it."""
    checkpoint = Path(checkpoint)
    return (checkpoint.with_name(f"{checkpoint.stem}.metrics.jsonl"),
            checkpoint.with_name(f"{checkpoint.stem}.metrics.csv"))


def _number(key: str, value: Any) -> Any:
    """A JSON-safe value: epoch and step as integers, a NaN or infinite number as None."""
    if key in ("epoch", "step"):
        return int(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsLog:
    """A ``trainer`` hook (``on_validation``) that writes ``trainer.record``.

    :param append: continue the files of an earlier run (a resume); else start them afresh.
    """

    def __init__(self, checkpoint: str | Path, append: bool = False):
        self.jsonl, self.csv = metrics_paths(checkpoint)
        self.jsonl.parent.mkdir(parents=True, exist_ok=True)
        if not append:
            for path in (self.jsonl, self.csv):
                path.unlink(missing_ok=True)
        self.columns = self._csv_header() or list(COLUMNS)
        self.board = _tensorboard(Path(checkpoint).with_suffix(".tensorboard"))

    def _csv_header(self) -> list[str] | None:
        if not self.csv.is_file():
            return None
        with self.csv.open(encoding="utf-8", newline="") as fh:
            return next(csv.reader(fh), None)

    def __call__(self, trainer: Any) -> None:
        record = {k: _number(k, v) for k, v in trainer.record.items()}
        with self.jsonl.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        new = not self.csv.is_file()
        with self.csv.open("a", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, self.columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(record)
        if self.board is not None:
            for key, value in record.items():
                if key not in ("epoch", "step") and isinstance(value, (int, float)):
                    self.board.add_scalar(key, value, int(record["step"]))
            self.board.flush()

    def close(self) -> None:
        if self.board is not None:
            self.board.close()


def _tensorboard(log_dir: Path) -> Any:
    """A ``SummaryWriter`` when TensorBoard is installed, else None (it is optional)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # noqa: BLE001 - not installed, or an incompatible version
        return None
    return SummaryWriter(log_dir=str(log_dir))
