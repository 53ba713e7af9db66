"""Training speed of the two course models on HSK: ``train --preset demo`` (GRU + attention)
and ``train --preset transformer``, in fp32 and in bf16 autocast.

    python bench/bench_archs.py                       # both presets, fp32 and bf16, 1 + 2 epochs
    python bench/bench_archs.py --presets transformer --precisions bf16 --epochs 1
    python bench/bench_archs.py --device cuda --precisions fp32 bf16 fp16   # on a GPU

Each row trains its preset's model with the preset's data, sizes and schedule through
``recipe.train_model`` (what the ``train`` command runs) for one warm-up epoch and ``--epochs``
measured ones, with no validation BLEU, and reports the fastest measured epoch: target tokens
per second of training (validation excluded) and seconds per epoch. Run it on a quiet machine:
one row at a time, nothing else running.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def measure(preset: str, precision: str, epochs: int, limit: int | None,
            device: str = "cpu") -> dict:
    from seq2seq_lib import prepare_data
    from seq2seq_lib.config import preset_configs
    from seq2seq_lib.device import choose_device
    from seq2seq_lib.recipe import train_model

    data_cfg, model_cfg, train_cfg = preset_configs(preset)
    data_cfg = dataclasses.replace(data_cfg, limit=limit)
    train_cfg = dataclasses.replace(train_cfg, epochs=1 + epochs, precision=precision,
                                    valid_bleu_sample=0, max_minutes=None, patience=0,
                                    device=device)
    data = prepare_data(data_cfg)
    model, result = train_model(data, data_cfg, model_cfg, train_cfg, progress=False,
                                device=choose_device(device, verbose=False))
    measured = result.history[1:] or result.history
    best = min(measured, key=lambda r: r["seconds"])
    return {"preset": preset, "device": device, "precision": str(result.precision),
            "parameters": sum(p.numel() for p in model.parameters()),
            "tokens_per_s": best["tokens_per_s"], "epoch_s": best["seconds"],
            "epochs_s": [r["seconds"] for r in result.history]}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", nargs="+", choices=("demo", "transformer"),
                   default=["demo", "transformer"])
    p.add_argument("--precisions", nargs="+", choices=("fp32", "bf16", "fp16"),
                   default=["fp32", "bf16"], help="fp16 (with a gradient scaler) is for CUDA GPUs")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or mps")
    p.add_argument("--epochs", type=int, default=2, help="measured epochs after the warm-up")
    p.add_argument("--limit", type=int, help="a sample of N pairs (a smoke run, not figures)")
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args(argv)
    rows = []
    for preset in args.presets:
        for precision in args.precisions:
            row = measure(preset, precision, args.epochs, args.limit, args.device)
            rows.append(row)
            print(f"{preset:<12} {args.device:<6} {row['precision']:<6} {row['parameters']:>10,} parameters  "
                  f"{row['tokens_per_s']:>7,.0f} target tokens/s  {row['epoch_s']:.1f} s/epoch",
                  flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
