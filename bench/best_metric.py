"""Which checkpoint should "best" mean: the lowest validation loss or the highest validation BLEU?

    python bench/best_metric.py                    # the demo recipe, seeds 0 1 2 (~12 min on a quiet 2-core CPU)
    python bench/best_metric.py --seeds 0 --epochs 3 --limit 600   # a smoke run

Each seed trains the ``make demo`` recipe once (``train --preset demo --seed S``: the seed sets the
split and the training), with greedy validation BLEU on 500 validation pairs after every epoch.
Both candidates come from the same run, so only the selection rule differs: the weights of the
epoch with the lowest validation loss, and those of the epoch with the highest validation BLEU.
Each is scored on that seed's test split (greedy and beam 5, case-insensitive sacreBLEU), with a
paired-bootstrap interval of the difference (BLEU-best minus loss-best). The pooled row puts the
three test splits together as one corpus, so its interval covers the seeds' variation too.

It prints a table and writes it, with the command, to ``bench/BEST_METRIC.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from seq2seq_lib import Translator, prepare_data
from seq2seq_lib.config import demo_configs
from seq2seq_lib.metrics import paired_bootstrap
from seq2seq_lib.recipe import train_model

HERE = Path(__file__).resolve().parent
VALID_BLEU_SAMPLE = 500


class KeepBoth:
    """A validation hook that keeps a CPU copy of the weights best by loss and best by BLEU."""

    def __init__(self) -> None:
        self.best: dict[str, tuple[float, int, dict[str, torch.Tensor]]] = {}

    def __call__(self, trainer: Any) -> None:
        r = trainer.record
        for metric, value in (("loss", -r["valid_loss"]), ("bleu", r["valid_bleu"])):
            if metric not in self.best or value > self.best[metric][0]:
                weights = {k: v.detach().to("cpu", copy=True)
                           for k, v in trainer.model.state_dict().items()}
                self.best[metric] = (value, int(r["epoch"]), weights)


def run_seed(seed: int, epochs: int | None, limit: int | None) -> dict[str, Any]:
    """Train one seed; test both selections greedy and with beam 5."""
    data_cfg, model_cfg, train_cfg = demo_configs()
    data_cfg = replace(data_cfg, seed=seed, limit=limit)
    train_cfg = replace(train_cfg, seed=seed, valid_bleu_sample=VALID_BLEU_SAMPLE,
                        epochs=epochs or train_cfg.epochs)
    data = prepare_data(data_cfg)
    keep = KeepBoth()
    t0 = time.perf_counter()
    model, result = train_model(data, data_cfg, model_cfg, train_cfg,
                                hooks={"on_validation": [keep]}, progress=False)
    seconds = time.perf_counter() - t0
    translator = Translator(model, data.src_vocab, data.trg_vocab, data_cfg, model_cfg,
                            next(model.parameters()).device, data.truecaser, train_cfg.precision)
    pairs = data.splits.test
    out: dict[str, Any] = {"seed": seed, "test_sentences": len(pairs), "train_s": seconds,
                           "references": [en for _, en in pairs],
                           "history": [{k: r[k] for k in ("epoch", "valid_loss", "valid_bleu")}
                                       for r in result.history]}
    for metric, (_, epoch, weights) in keep.best.items():
        model.load_state_dict(weights)
        out[f"{metric}_epoch"] = epoch
        for beam in (1, 5):
            score, hyps = translator.bleu(pairs, beam_size=beam)
            out[f"{metric}_beam{beam}"] = score.score
            out[f"{metric}_beam{beam}_hyps"] = hyps
    return out


def compare(runs: list[dict[str, Any]], beam: int) -> dict[str, Any]:
    """Paired bootstrap of BLEU-best minus loss-best, per seed and pooled over the seeds."""
    rows = []
    for r in runs:
        pb = paired_bootstrap(r[f"loss_beam{beam}_hyps"], r[f"bleu_beam{beam}_hyps"],
                              r["references"], lowercase=True)
        rows.append({"seed": r["seed"], "loss": pb.bleu_a, "bleu": pb.bleu_b, "delta": str(pb),
                     "epochs": f"{r['loss_epoch']} / {r['bleu_epoch']}"})
    pool = lambda key: [h for r in runs for h in r[key]]
    pb = paired_bootstrap(pool(f"loss_beam{beam}_hyps"), pool(f"bleu_beam{beam}_hyps"),
                          pool("references"), lowercase=True)
    rows.append({"seed": "pooled", "loss": pb.bleu_a, "bleu": pb.bleu_b, "delta": str(pb),
                 "epochs": ""})
    mean = lambda key: sum(r[f"{key}_beam{beam}"] for r in runs) / len(runs)
    return {"beam": beam, "rows": rows, "mean_loss": mean("loss"), "mean_bleu": mean("bleu"),
            "pooled_low": pb.low, "pooled_high": pb.high, "pooled_delta": pb.delta}


def verdict(low: float, high: float) -> str:
    if low > 0:
        return "best-by-BLEU is better"
    if high < 0:
        return "best-by-loss is better"
    return "no difference these test sets can show"


def render(comparisons: list[dict[str, Any]], command: str) -> str:
    lines = ["# Best by validation loss or by validation BLEU", "",
             f"Command: `{command}`", "",
             "Test BLEU (case-insensitive sacreBLEU) of the two checkpoints one training run keeps; "
             "Δ = BLEU-best − loss-best with its 95 % paired-bootstrap interval (1,000 "
             "resamplings). Epochs: loss-best / BLEU-best.", ""]
    for c in comparisons:
        how = "greedy" if c["beam"] == 1 else f"beam {c['beam']}"
        lines += [f"## {how}", "", "| seed | best by loss | best by BLEU | Δ [95 %] | epochs |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['seed']} | {r['loss']:.2f} | {r['bleu']:.2f} | {r['delta']} | "
                  f"{r['epochs']} |" for r in c["rows"]]
        lines += ["", f"Mean over seeds: {c['mean_loss']:.2f} (loss) vs {c['mean_bleu']:.2f} "
                  f"(BLEU). Pooled: {verdict(c['pooled_low'], c['pooled_high'])}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, help="default: the demo recipe's")
    p.add_argument("--limit", type=int, help="sample this many pairs (smoke runs)")
    p.add_argument("--out", default=str(HERE / "BEST_METRIC.md"))
    args = p.parse_args(argv)
    runs = []
    for seed in args.seeds:
        run = run_seed(seed, args.epochs, args.limit)
        print(json.dumps({k: v for k, v in run.items()
                          if not k.endswith("_hyps") and k != "references"}), flush=True)
        runs.append(run)
    comparisons = [compare(runs, beam) for beam in (1, 5)]
    command = "python bench/best_metric.py " + " ".join(sys.argv[1:] if argv is None else argv)
    text = render(comparisons, command.strip())
    print(text)
    Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
