"""Where one training epoch spends its time: the bench's default row under ``torch.profiler``.

The default row of ``bench.py``'s training speed: the lesson's model sizes (``ModelConfig()``),
teacher forcing 1.0, length buckets of 64 sentences, Adam with clipping. One warm-up batch, then
``--batches`` optimizer steps (default: a whole epoch) are profiled; the table lists the
operators by *self* CPU time with their share of the total, so a busy machine still shows what
stands in the way (the shares, not the seconds).

    OMP_NUM_THREADS=1 python bench/profile_train.py --precision fp32
    OMP_NUM_THREADS=1 python bench/profile_train.py --precision bf16 --top 25
    OMP_NUM_THREADS=1 python bench/profile_train.py --precision fp32 --chunked-loss 0
    OMP_NUM_THREADS=1 python bench/profile_train.py --preset transformer --precision bf16
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def top_ops(prof: profile, top: int) -> list[tuple[str, float, float, int]]:
    """(operator, self CPU ms, share of all self CPU time, calls), largest first."""
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    rows = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return [(e.key, e.self_cpu_time_total / 1e3, e.self_cpu_time_total / total, e.count)
            for e in rows]


def main(argv: list[str] | None = None) -> int:
    from seq2seq_lib import prepare_data, set_seed
    from seq2seq_lib.batching import make_loader
    from seq2seq_lib.config import PRESETS, preset_configs
    from seq2seq_lib.device import resolve_precision
    from seq2seq_lib.recipe import new_model
    from seq2seq_lib.train import batch_loss
    from seq2seq_lib.trainer.compiling import maybe_compile
    from seq2seq_lib.trainer.update import Updater

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"),
                   help="fp32, or bf16 autocast (default fp32)")
    p.add_argument("--batches", type=int, default=0,
                   help="profile this many optimizer steps (0: the whole epoch)")
    p.add_argument("--top", type=int, default=20, help="operators listed (default 20)")
    p.add_argument("--limit", type=int, help="use a sample of N pairs (quick runs)")
    p.add_argument("--chunked-loss", type=int, metavar="N",
                   help="TrainConfig.loss_chunk (0: one piece); default: the library's")
    p.add_argument("--compile", action="store_true", help="torch.compile the model first")
    p.add_argument("--shapes", action="store_true",
                   help="group the operators by input shapes too (record_shapes)")
    p.add_argument("--preset", choices=PRESETS, default="lesson",
                   help="the model, data and schedule: the lesson's defaults (the bench's row), "
                        "or train --preset demo / transformer")
    args = p.parse_args(argv)

    data_cfg, model_cfg, train_cfg = preset_configs(args.preset)
    data = prepare_data(dataclasses.replace(data_cfg, limit=args.limit))
    model = new_model(data, model_cfg, seed=0)
    cfg = dataclasses.replace(train_cfg, precision=args.precision, compile=args.compile)
    if args.chunked_loss is not None:
        cfg = dataclasses.replace(cfg, loss_chunk=args.chunked_loss)
    set_seed(0)
    loader = make_loader(data.train, cfg.batch_size, bucket=cfg.bucket, seed=cfg.seed)
    device = torch.device("cpu")
    precision = resolve_precision(cfg.precision, device)
    updater = Updater(model, cfg, device, precision, batch_loss)
    step_model = maybe_compile(model, cfg.compile, device)
    model.train()
    batches = list(loader)
    updater.step(step_model, batches[0])  # warm-up: allocator, oneDNN kernels
    todo = batches if args.batches <= 0 else batches[: args.batches]
    with profile(activities=[ProfilerActivity.CPU], record_shapes=args.shapes) as prof:
        for batch in todo:
            updater.step(step_model, batch)
    print(f"{args.preset} · {precision} · {len(todo)} steps · threads {torch.get_num_threads()} · "
          f"loss_chunk {cfg.loss_chunk} · compile {cfg.compile}")
    width = 48
    print(f"{'operator':<{width}} {'self ms':>10} {'share':>7} {'calls':>7}")
    for name, ms, share, calls in top_ops(prof, args.top):
        print(f"{name[:width]:<{width}} {ms:>10.1f} {share:>6.1%} {calls:>7}")
    if args.shapes:
        print(prof.key_averages(group_by_input_shape=True).table(
            sort_by="self_cpu_time_total", row_limit=args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
