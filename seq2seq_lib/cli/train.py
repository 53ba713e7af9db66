"""``train``: train a model, keep its best and last checkpoints, print test BLEU and samples.

Settings come in layers (see :mod:`.settings`); the resolved ones are printed first and saved
beside the checkpoint (``MODEL.config.yaml``), and every validation goes to ``MODEL.metrics.*``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..config import PRESETS, DataConfig, ModelConfig, TrainConfig
from .common import add_decode_args, report
from .flags import add_flags, given
from .preprocess import check_one_source
from .settings import (
    Layer,
    build,
    config_path,
    configs_layer,
    default_layer,
    derive_source,
    preset_layer,
    read_config_file,
    save_config,
    to_yaml,
)

SAMPLE_SENTENCES = ["我喜欢学习机器学习。", "你好，老师！", "今天天气很好。", "我想喝一杯咖啡。",
                    "他每天早上去学校。"]
CACHE_ONLY = ("max_tokens", "loader_workers")
SOURCE_KEYS = ("source", "src_path", "trg_path", "tsv_path", "limit")


def add_parser(sub: argparse._SubParsersAction) -> None:
    tr = sub.add_parser("train", help="train a model and save its best checkpoint", allow_abbrev=False,
                        description="Train on a corpus, keep the best checkpoint by validation "
                                    "loss, then print test BLEU and sample translations. Each "
                                    "setting comes from its flag, else --config, else --preset, "
                                    "else the default.")
    g = tr.add_argument_group("settings")
    g.add_argument("--config", metavar="YAML",
                   help="settings from this file: sections data, model, train whose keys are "
                        "the config fields (MODEL.config.yaml, written by every run, repeats it); "
                        "flags given here win")
    g.add_argument("--preset", choices=PRESETS,
                   help="starting values for every setting: the lesson's (default), the model "
                        "'make demo' trains (characters, bidirectional encoder, attention, 14 "
                        "epochs) or a Transformer for --max-minutes 10 (transformer); --config "
                        "and flags still win")
    g.add_argument("--resume", metavar="CKPT",
                   help="continue training from this checkpoint, with its vocabularies and data "
                        "and model settings (training flags given here still apply), writing to "
                        "where it came from unless --out says otherwise: MODEL.last.pt continues "
                        "exactly where the run stopped, MODEL.pt from its best validation")
    add_flags(tr.add_argument_group("data (default: the embedded HSK corpus)"), "data",
              skip=("data_dir",))
    add_flags(tr.add_argument_group("model"), "model")
    g = tr.add_argument_group("training, validation and stopping")
    add_flags(g, "train", skip=CACHE_ONLY)
    g.add_argument("--amp", dest="train.precision", action="store_const", const="amp",
                   default=argparse.SUPPRESS, help="the same as --precision amp")
    g = tr.add_argument_group("output")
    g.add_argument("--plot", metavar="PNG", help="also save the loss curves to this PNG file")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    add_decode_args(tr)  # how the test BLEU and the samples at the end are decoded
    g = tr.add_argument_group("training from a preprocessed cache (see 'preprocess')")
    add_flags(g, "data", only=("data_dir",))
    add_flags(g, "train", only=CACHE_ONLY)
    tr.set_defaults(run=run)


@dataclass
class Plan:
    """What a run trains: its settings, and on ``--resume`` the checkpoint's vocabularies."""

    data_cfg: DataConfig
    model_cfg: ModelConfig
    train_cfg: TrainConfig
    explicit: list[Layer]  # the config file and the flags: what the user wrote
    vocabs: tuple[Any, Any] | None = None
    resumed_cache: bool = False  # the cache comes from the resumed checkpoint, not from a setting


def plan(args: argparse.Namespace) -> Plan:
    """The settings of this run from its layers (refusing senseless ones before any data is read)."""
    flags = Layer("the command line", given(args), is_flags=True)
    check_one_source(flags)
    derive_source(flags)
    if "seed" in flags.values["data"]:  # one --seed: the split and the training
        flags.values["train"]["seed"] = flags.values["data"]["seed"]
    upper = [read_config_file(args.config)] if args.config else []
    upper.append(flags)
    if args.resume:
        return _resume_plan(args, upper)
    lower = [default_layer()] + ([preset_layer(args.preset)] if args.preset else [])
    return _with_paths(Plan(*build(lower + upper), upper))


def _with_paths(p: Plan) -> Plan:
    """The last state always lies beside the best checkpoint."""
    from ..checkpoint import last_checkpoint_path

    out = p.train_cfg.checkpoint_path or "checkpoints/model.pt"
    p.train_cfg = replace(p.train_cfg, checkpoint_path=str(out),
                          last_checkpoint_path=str(last_checkpoint_path(out)))
    return p


def _resume_plan(args: argparse.Namespace, upper: list[Layer]) -> Plan:
    """The checkpoint's settings under the file and flags; a data or model setting that
    contradicts it is refused (the cache folder may move: ``--data-dir`` is checked by hash)."""
    from ..checkpoint import best_checkpoint_path, load_checkpoint

    if args.preset:
        raise ValueError("--preset does not apply to --resume: the checkpoint's settings are used")
    ckpt = load_checkpoint(args.resume)
    info = ckpt["info"]
    base = configs_layer(f"the checkpoint {args.resume}", (info.data_cfg, info.model_cfg,
                                                           ckpt["train_cfg"]))
    base.values["train"]["checkpoint_path"] = str(best_checkpoint_path(args.resume))
    for layer in upper:
        for section in ("data", "model"):
            for key, value in layer.values[section].items():
                saved = base.values[section][key]
                if key not in ("data_dir", "cache_hash") and value != saved:
                    raise ValueError(
                        f"{layer.name(section, key)} {value} does not match the checkpoint "
                        f"{args.resume} ({key}={saved!r}): leave it out to resume, or train a "
                        "new model without --resume")
    resumed_cache = bool(info.data_cfg.data_dir) and not any(
        layer.sets("data", "data_dir") for layer in upper)
    return _with_paths(Plan(*build([base, *upper]), upper, (info.src_vocab, info.trg_vocab),
                            resumed_cache))


def run(args: argparse.Namespace) -> None:
    """Train; under ``torchrun`` every process runs this, and only the first one prints and
    writes (the others' standard output is discarded)."""
    import contextlib
    import os

    from ..parallel import process_group
    from .common import check_beam

    check_beam(args)
    p = plan(args)  # refuse senseless settings before anything else
    with process_group(p.train_cfg.device) as (ctx, device), contextlib.ExitStack() as stack:
        if not ctx.is_main:
            devnull = stack.enter_context(open(os.devnull, "w", encoding="utf-8"))
            stack.enter_context(contextlib.redirect_stdout(devnull))
        _train_and_report(args, p, ctx, device)


def open_data(p: Plan, ctx: Any) -> Any:
    """The training data: the cache the settings (or the resumed checkpoint) name, else the
    corpus read and tokenized in memory. ``p.data_cfg`` becomes what the data really is."""
    from ..pipeline import prepare_data

    t0 = time.perf_counter()
    if not p.data_cfg.data_dir:
        given_cache = [k for k in CACHE_ONLY if getattr(p.train_cfg, k)]
        if given_cache:
            raise ValueError("--max-tokens and --loader-workers read a preprocessed cache: give "
                             "--data-dir too")
        data = prepare_data(p.data_cfg, vocabs=p.vocabs)
        print(data.summary(), f"\n(tokenized in {time.perf_counter() - t0:.1f} s)")
        return data
    data = _open_cache(p)  # every process maps the same files and reads only its batches
    print(data.summary(), f"\n(opened in {time.perf_counter() - t0:.1f} s)")
    return data


def _open_cache(p: Plan) -> Any:
    """The cache of ``p.data_cfg.data_dir``, checked against the hash the settings recorded and
    against the data settings written in the file or on the command line."""
    from ..cache import CacheError, load_cache
    from ..data import check_held_out

    cfg, folder = p.data_cfg, p.data_cfg.data_dir
    if p.resumed_cache and not Path(folder).is_dir():
        raise CacheError(f"this checkpoint was trained on the cache {folder}, which is not there "
                         "any more: give its new place with --data-dir")
    data = load_cache(folder, max_tokens=p.train_cfg.max_tokens,
                      num_workers=p.train_cfg.loader_workers)
    if cfg.cache_hash and cfg.cache_hash != data.cache_hash:
        whose = "the checkpoint was trained on" if p.vocabs else "the settings name"
        raise CacheError(f"{folder} holds another cache (hash {data.cache_hash[:12]}) than the one "
                         f"{whose} (hash {cfg.cache_hash[:12]}): give the right --data-dir")
    cached = data.data_config()
    for layer in p.explicit:
        for key, value in sorted(layer.values["data"].items(), key=lambda kv: kv[0] == "source"):
            if key in ("data_dir", "cache_hash", "seed") or value == getattr(cached, key):
                continue
            name = layer.name("data", key)
            if key in SOURCE_KEYS:
                raise ValueError(f"--data-dir replaces {name}: give one or the other")
            raise ValueError(f"{name} {value} does not match the cache {folder} ({key}="
                             f"{getattr(cached, key)!r}): preprocess again to change it")
    check_held_out(cached, len(data.train) + len(data.valid) + len(data.test), len(data.valid),
                   len(data.test))
    p.data_cfg = cached
    return data


def _print_and_save_settings(p: Plan) -> None:
    """The resolved settings, saved beside the checkpoint and shown, a section a paragraph."""
    import textwrap
    from dataclasses import asdict

    configs = (p.data_cfg, p.model_cfg, p.train_cfg)
    path = save_config(config_path(p.train_cfg.checkpoint_path), to_yaml(configs))
    print(f"settings (saved to {path}; 'train --config {path}' repeats the run):")
    for section, cfg in zip(("data", "model", "train"), configs):
        shown = " ".join(f"{k}={v}" for k, v in asdict(cfg).items()
                         if v is not None and k != "last_checkpoint_path")
        print(textwrap.fill(shown, 100, initial_indent=f"  {section + ':':7}",
                            subsequent_indent=" " * 9, break_on_hyphens=False))


def _log_line(trainer: Any, lr_schedule: str) -> None:
    """One line per validation, written above the progress bar."""
    from tqdm.auto import tqdm

    r = trainer.record
    bleu = f"  BLEU {r['valid_bleu']:5.2f}" if "valid_bleu" in r else ""
    lr = f"  lr {r['lr']:.2g}" if lr_schedule != "none" else ""
    best = "  (best)" if trainer.state.best_step == r["step"] else ""
    tqdm.write(f"epoch {int(r['epoch']):3d}  step {int(r['step']):6d}  "
               f"train {r['train_loss']:.3f}  valid {r['valid_loss']:.3f} "
               f"(ppl {r['valid_ppl']:.1f}){bleu}{lr}  {r['seconds']:.1f} s  "
               f"{r['tokens_per_s']:.0f} tok/s{best}", file=sys.stdout)
    sys.stdout.flush()


def _train_and_report(args: argparse.Namespace, p: Plan, ctx: Any, device: Any) -> None:
    from ..recipe import train_model
    from .metrics_log import MetricsLog

    if args.resume:
        print(f"resuming {args.resume}: its vocabularies, data and model settings; writing "
              f"{p.train_cfg.checkpoint_path}")
    cfg = p.train_cfg
    per_batch = f"{cfg.max_tokens} tokens" if cfg.max_tokens else f"{cfg.batch_size} sentences"
    if ctx.enabled or cfg.accumulate > 1:
        procs = f"{ctx.world_size} process{'es' if ctx.world_size > 1 else ''}"
        batches = f"{cfg.accumulate} batch{'es' if cfg.accumulate > 1 else ''}"
        print(f"{procs}{' (torchrun)' if ctx.enabled else ''} x {batches} of {per_batch} each: "
              f"{ctx.world_size * cfg.accumulate} batches per step")
    data = open_data(p, ctx)
    vocabularies = ctx.gather((data.src_vocab.itos, data.trg_vocab.itos))
    if any(v != vocabularies[0] for v in vocabularies):
        raise ValueError("the training processes built different vocabularies from the corpus")
    hooks: list[Any] = [lambda trainer: _log_line(trainer, p.train_cfg.lr_schedule)]
    metrics = None
    if ctx.is_main:  # only the first process writes
        _print_and_save_settings(p)
        metrics = MetricsLog(p.train_cfg.checkpoint_path, append=bool(args.resume))
        hooks.append(metrics)
    if args.quiet:  # the trainer prints this banner itself when it shows progress
        from ..device import describe_device, resolve_precision

        print(f"{describe_device(device)} · {resolve_precision(p.train_cfg.precision, device)}")
    try:
        model, result = train_model(data, p.data_cfg, p.model_cfg, p.train_cfg, dist=ctx,
                                    device=device, hooks={"on_validation": hooks},
                                    resume_from=args.resume, progress=not args.quiet)
    finally:
        if metrics is not None:
            metrics.close()
    if ctx.is_main:
        _final_report(args, p, data, model, result, device)


def _final_report(args: argparse.Namespace, p: Plan, data: Any, model: Any, result: Any,
                  device: Any) -> None:
    """How the run ended, the loss curves, test BLEU and a few sample translations."""
    from ..plots import plot_history
    from ..translator import Translator

    train_s = sum(r["seconds"] for r in result.history)
    best = (f"valid loss {result.best_valid_loss:.3f}" if result.best_metric == "loss"
            else f"valid BLEU {result.best_score:.2f}")
    print(f"stopped: {result.stopped}; best epoch {result.best_epoch}, step {result.best_step} "
          f"({best}); training time {train_s:.0f} s; checkpoint: {result.checkpoint}"
          + (f" (last state: {result.last_checkpoint})" if result.last_checkpoint else ""))
    if args.plot:
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        plot_history(result.history).savefig(args.plot, dpi=120)
        print(f"loss curves: {args.plot}")
    translator = Translator(model, data.src_vocab, data.trg_vocab, p.data_cfg, p.model_cfg,
                            device, data.truecaser, p.train_cfg.precision)
    test_pairs = data.test_pairs if p.data_cfg.data_dir else data.splits.test
    report(translator, test_pairs, 3, "test", args.beam, args.length_penalty)
    print("sample translations:")
    samples = translator.translate_batch(SAMPLE_SENTENCES, beam_size=args.beam,
                                         length_penalty=args.length_penalty)
    for zh, en in zip(SAMPLE_SENTENCES, samples):
        print(f"  {zh} → {en}")
