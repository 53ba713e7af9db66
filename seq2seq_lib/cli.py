"""Command line: ``python -m seq2seq_lib preprocess | train | translate | evaluate``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

SAMPLE_SENTENCES = ["我喜欢学习机器学习。", "你好，老师！", "今天天气很好。", "我想喝一杯咖啡。",
                    "他每天早上去学校。"]


def _add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data (default: the embedded HSK corpus)")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--data", choices=["hsk"], help="use the embedded HSK sentence corpus")
    src.add_argument("--src", metavar="FILE", help="Chinese side: one sentence a line (use with --trg)")
    src.add_argument("--tsv", metavar="FILE", help="Tatoeba-style file: English<TAB>Chinese per line")
    g.add_argument("--trg", metavar="FILE", help="English side, aligned line by line with --src")
    g.add_argument("--limit", type=int, help="use a random sample of this many pairs (quick runs)")
    g.add_argument("--seed", type=int, default=0, help="seed for the split, sampling and training")


def _add_decode_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("decoding")
    g.add_argument("--beam", type=int, default=1, metavar="N",
                   help="beam size; 1 = greedy decoding (default 1)")
    g.add_argument("--length-penalty", type=float, default=0.6, metavar="ALPHA",
                   help="GNMT length-penalty exponent for beam search; 0 = none (default 0.6)")


def _build_parser(train_defaults: dict[str, object] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq_lib", allow_abbrev=False,
        description="Chinese-to-English translation with a GRU encoder-decoder.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tr = sub.add_parser("train", help="train a model and save its best checkpoint", allow_abbrev=False,
                        description="Train on a corpus, keep the best checkpoint by validation "
                                    "loss, then print test BLEU and sample translations.")
    _add_data_args(tr)
    tr.add_argument("--preset", choices=["lesson", "demo"], default="lesson",
                    help="starting values for every setting below: the lesson's (default) or the "
                         "model 'make demo' trains (characters, bidirectional encoder, attention, "
                         "14 epochs); flags given explicitly still win")
    g = tr.add_argument_group("model")
    g.add_argument("--emb-dim", type=int, default=256, help="word-vector size (default 256)")
    g.add_argument("--hid-dim", type=int, default=512, help="GRU hidden size (default 512)")
    g.add_argument("--n-layers", type=int, default=2, help="stacked GRU layers (default 2)")
    g.add_argument("--dropout", type=float, default=0.5, help="dropout probability (default 0.5)")
    g.add_argument("--attention", choices=["none", "bahdanau", "dot", "general"], default="none",
                   help="attention over the source words (default none)")
    g.add_argument("--bidirectional", action="store_true", help="bidirectional encoder")
    g.add_argument("--zh-tokens", choices=["word", "char"], default="word",
                   help="Chinese tokens: jieba words or single characters (default word)")
    g.add_argument("--min-freq", type=int, default=2, help="rarer words become <unk> (default 2)")
    g.add_argument("--max-size", type=int, default=10_000,
                   help="largest vocabulary, specials included (default 10000)")
    g = tr.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=10, help="passes over the data (default 10)")
    g.add_argument("--batch-size", type=int, default=64, help="sentences per batch (default 64)")
    g.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 0.001)")
    g.add_argument("--clip", type=float, default=1.0, help="gradient-norm clipping, 0 = off (default 1)")
    g.add_argument("--teacher-forcing", type=float, default=1.0,
                   help="probability of feeding the true previous word (default 1.0; the lesson used 0.5)")
    g.add_argument("--no-bucket", action="store_true", help="plain shuffled batches, no length buckets")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 or mps (default auto)")
    _add_precision_arg(g)
    g.add_argument("--amp", dest="precision", action="store_const", const="amp",
                   help="mixed precision: bf16 where native, else fp16 on a CUDA GPU (an alias)")
    g.add_argument("--resume", metavar="CKPT",
                   help="continue training from this checkpoint, with its vocabularies and "
                        "data and model settings (training flags given here still apply): "
                        "MODEL.last.pt continues exactly where the run stopped, MODEL.pt from "
                        "its best validation")
    g = tr.add_argument_group("validation, schedule and stopping")
    g.add_argument("--valid-every", type=int, default=0, metavar="N",
                   help="also validate and write the checkpoints every N steps (default 0: "
                        "once per epoch)")
    g.add_argument("--valid-bleu-sample", type=int, default=500, metavar="N",
                   help="greedy BLEU on N validation pairs at every validation, 0 = none "
                        "(default 500)")
    g.add_argument("--best-metric", choices=["loss", "bleu"], default="loss",
                   help="which validation keeps the best checkpoint: lowest loss or highest "
                        "BLEU (default loss)")
    g.add_argument("--lr-schedule", choices=["none", "plateau"], default="none",
                   help="plateau: multiply the learning rate by --lr-factor when the best "
                        "metric stops improving (default none)")
    g.add_argument("--lr-factor", type=float, default=0.5, help="plateau factor (default 0.5)")
    g.add_argument("--lr-patience", type=int, default=0, metavar="N",
                   help="plateau: validations without improvement tolerated before each cut "
                        "(default 0)")
    g.add_argument("--patience", type=int, default=0, metavar="N",
                   help="early stopping: end after N validations without a new best "
                        "(default 0: off)")
    g.add_argument("--max-minutes", type=float, metavar="M",
                   help="time budget: stop after the step that crosses M minutes, keeping the "
                        "best checkpoint")
    g = tr.add_argument_group("output")
    g.add_argument("--out", default="checkpoints/model.pt",
                   help="best checkpoint (default %(default)s); the last state goes beside it "
                        "(model.last.pt)")
    g.add_argument("--plot", metavar="PNG", help="also save the loss curves to this PNG file")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_decode_args(tr)  # how the test BLEU and the samples at the end are decoded
    _add_cache_train_args(tr)
    tr.set_defaults(**(train_defaults or {}))

    tl = sub.add_parser("translate", help="translate Chinese sentences with a checkpoint",
                        allow_abbrev=False,
                        description="Translate the sentences given as arguments, or else every "
                                    "line of --input (or standard input), in batches: exactly "
                                    "one output line per input line, blank for blank.")
    tl.add_argument("--checkpoint", required=True, help="checkpoint written by 'train'")
    tl.add_argument("--max-len", type=int, default=50, help="most output words (default 50)")
    tl.add_argument("--input", metavar="FILE", help="a file of Chinese sentences, one a line")
    tl.add_argument("--chunk", type=int, default=256, metavar="N",
                    help="lines decoded together (default 256)")
    tl.add_argument("sentences", nargs="*", help="Chinese sentences (default: read the input)")
    _add_decode_args(tl)
    _add_precision_arg(tl)

    ev = sub.add_parser("evaluate", help="BLEU and perplexity of a checkpoint on its test split",
                        allow_abbrev=False,
                        description="Rebuild the checkpoint's corpus split and score the test part.")
    ev.add_argument("--checkpoint", required=True, help="checkpoint written by 'train'")
    ev.add_argument("--split", choices=["test", "valid"], default="test",
                    help="which held-out split to score (default test)")
    ev.add_argument("--examples", type=int, default=5, help="sample translations to show (default 5)")
    ev.add_argument("--data-dir", metavar="DIR",
                    help="score the split of this preprocessed cache (default: the cache the "
                         "checkpoint was trained on, if any)")
    _add_decode_args(ev)
    _add_precision_arg(ev)
    _add_preprocess_parser(sub)
    return parser


def _add_precision_arg(g) -> None:
    from .device import PRECISIONS

    g.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="number format: auto = bf16 where the device computes it natively, "
                        "else fp32 (default auto)")


def _data_config(args: argparse.Namespace):
    from .config import DataConfig

    if args.src or args.trg:
        if not (args.src and args.trg):
            raise ValueError("--src and --trg must be given together")
        return DataConfig(source="parallel", src_path=args.src, trg_path=args.trg,
                          seed=args.seed, limit=args.limit)
    if args.tsv:
        return DataConfig(source="tsv", tsv_path=args.tsv, seed=args.seed, limit=args.limit)
    return DataConfig(source="hsk", seed=args.seed, limit=args.limit)


def _report(translator, pairs, n_examples: int, label: str, beam: int = 1,
            length_penalty: float = 0.6) -> None:
    from .metrics import bleu_signature, corpus_bleu

    score, hyps = translator.bleu(pairs, beam_size=beam, length_penalty=length_penalty)
    how = "greedy" if beam == 1 else f"beam {beam}, length penalty {length_penalty:g}"
    lowercase = translator.data_cfg.lowercase
    cased = corpus_bleu(hyps, [en for _, en in pairs]) if lowercase else score
    print(f"{label} BLEU = {score.score:.2f} {'case-insensitive, ' if lowercase else ''}"
          f"{cased.score:.2f} cased  ({len(pairs)} sentences, {how}; "
          f"sacreBLEU {bleu_signature(lowercase)})")
    for (zh, en), hyp in list(zip(pairs, hyps))[:n_examples]:
        print(f"  {zh}\n    reference: {en}\n    model:     {hyp}")


# flags that shape the data or the model: a resumed run takes them from its checkpoint
_DATA_FLAGS = {"--seed": "seed", "--limit": "limit", "--min-freq": "min_freq",
               "--max-size": "max_size", "--zh-tokens": "zh_tokens", "--src": "src_path",
               "--trg": "trg_path", "--tsv": "tsv_path"}
_MODEL_FLAGS = {"--emb-dim": "emb_dim", "--hid-dim": "hid_dim", "--n-layers": "n_layers",
                "--dropout": "dropout", "--attention": "attention",
                "--bidirectional": "bidirectional"}
# training settings: config field -> (flag, argparse dest); also how a bad value is named
_TRAIN_FLAGS = {"epochs": ("--epochs", "epochs"), "batch_size": ("--batch-size", "batch_size"),
                "lr": ("--lr", "lr"), "clip": ("--clip", "clip"),
                "teacher_forcing_ratio": ("--teacher-forcing", "teacher_forcing"),
                "device": ("--device", "device"), "precision": ("--precision", "precision"),
                "valid_every": ("--valid-every", "valid_every"),
                "valid_bleu_sample": ("--valid-bleu-sample", "valid_bleu_sample"),
                "best_metric": ("--best-metric", "best_metric"),
                "lr_schedule": ("--lr-schedule", "lr_schedule"),
                "lr_factor": ("--lr-factor", "lr_factor"),
                "lr_patience": ("--lr-patience", "lr_patience"),
                "patience": ("--patience", "patience"), "max_minutes": ("--max-minutes", "max_minutes")}


def _resumed_configs(args: argparse.Namespace, explicit: set[str]):
    """Data, model and training settings for ``--resume``: the checkpoint's, with the training
    flags given on this command line; a data or model flag that contradicts it is refused."""
    from dataclasses import replace

    from .checkpoint import last_checkpoint_path, load_checkpoint

    ckpt = load_checkpoint(args.resume)
    info = ckpt["info"]
    for flags, cfg in ((_DATA_FLAGS, info.data_cfg), (_MODEL_FLAGS, info.model_cfg)):
        for flag, name in flags.items():
            value = getattr(args, flag[2:].replace("-", "_"))
            if flag in explicit and value != getattr(cfg, name):
                raise ValueError(
                    f"{flag} {value} does not match the checkpoint {args.resume} "
                    f"({name}={getattr(cfg, name)!r}): leave the flag out to resume, or train a "
                    "new model without --resume")
    if "--data" in explicit and info.data_cfg.source != "hsk":
        raise ValueError(f"--data hsk does not match the checkpoint {args.resume} "
                         f"(source={info.data_cfg.source!r})")
    given = {name: getattr(args, dest) for name, (flag, dest) in _TRAIN_FLAGS.items()
             if flag in explicit or (flag == "--precision" and "--amp" in explicit)}
    if "--no-bucket" in explicit:
        given["bucket"] = False
    train_cfg = replace(ckpt["train_cfg"], checkpoint_path=args.out,
                        last_checkpoint_path=str(last_checkpoint_path(args.out)), **given)
    return info, train_cfg


def cmd_train(args: argparse.Namespace, explicit: set[str] = frozenset()) -> None:
    """Train; under ``torchrun`` every process runs this, and only the first one prints and
    writes (the others' standard output is discarded)."""
    import contextlib
    import os

    from .parallel import init_distributed, shutdown_distributed

    _check_beam(args)
    configs = _train_configs(args, explicit)  # refuse senseless settings before anything else
    ctx, device = init_distributed(args.device)
    try:
        with contextlib.ExitStack() as stack:
            if not ctx.is_main:
                devnull = stack.enter_context(open(os.devnull, "w", encoding="utf-8"))
                stack.enter_context(contextlib.redirect_stdout(devnull))
            _train_and_report(args, *configs, ctx, device)
    finally:
        shutdown_distributed(ctx)


def _train_configs(args: argparse.Namespace, explicit: set[str]):
    """(data, model, train configs, vocabularies or None) from the flags or the checkpoint."""
    from dataclasses import replace

    from .checkpoint import last_checkpoint_path
    from .config import ModelConfig, TrainConfig

    if args.resume:
        info, train_cfg = _resumed_configs(args, explicit)
        return info.data_cfg, info.model_cfg, train_cfg, (info.src_vocab, info.trg_vocab)
    data_cfg = replace(_data_config(args), min_freq=args.min_freq, max_size=args.max_size,
                       zh_tokens=args.zh_tokens)
    model_cfg = ModelConfig(args.emb_dim, args.hid_dim, args.n_layers, args.dropout,
                            args.bidirectional, args.attention)
    train_cfg = TrainConfig(**{name: getattr(args, dest) for name, (_, dest) in _TRAIN_FLAGS.items()},
                            bucket=not args.no_bucket, seed=args.seed, checkpoint_path=args.out,
                            last_checkpoint_path=str(last_checkpoint_path(args.out)))
    return data_cfg, model_cfg, train_cfg, None


def _train_and_report(args, data_cfg, model_cfg, train_cfg, vocabs, ctx, device) -> None:
    from tqdm.auto import tqdm

    from .pipeline import prepare_data
    from .plots import plot_history
    from .recipe import train_model
    from .translator import Translator

    if args.resume:
        print(f"resuming {args.resume}: its vocabularies, data and model settings")
    if ctx.enabled:
        print(f"{ctx.world_size} processes (torchrun), {train_cfg.batch_size} sentences per "
              f"batch in each: {ctx.world_size * train_cfg.batch_size} per step")
    t0 = time.perf_counter()
    if args.data_dir:  # a preprocessed cache: its own settings replace the data flags
        if ctx.enabled:
            raise ValueError("--data-dir does not share its batches among torchrun processes "
                             "yet: train from a cache in one process")
        data = _cached_training_data(args)
        data_cfg = data.data_config()
        print(data.summary(), f"\n(opened in {time.perf_counter() - t0:.1f} s)")
    else:
        _check_no_cache_args(args)
        data = prepare_data(data_cfg, vocabs=vocabs)
        print(data.summary(), f"\n(tokenized in {time.perf_counter() - t0:.1f} s)")
    vocabularies = ctx.gather((data.src_vocab.itos, data.trg_vocab.itos))
    if any(v != vocabularies[0] for v in vocabularies):
        raise ValueError("the training processes built different vocabularies from the corpus")

    def log(trainer) -> None:
        r = trainer.record
        bleu = f"  BLEU {r['valid_bleu']:5.2f}" if "valid_bleu" in r else ""
        lr = f"  lr {r['lr']:.2g}" if train_cfg.lr_schedule != "none" else ""
        best = "  (best)" if trainer.state.best_step == r["step"] else ""
        tqdm.write(f"epoch {int(r['epoch']):3d}  step {int(r['step']):6d}  "
                   f"train {r['train_loss']:.3f}  valid {r['valid_loss']:.3f} "
                   f"(ppl {r['valid_ppl']:.1f}){bleu}{lr}  {r['seconds']:.1f} s  "
                   f"{r['tokens_per_s']:.0f} tok/s{best}", file=sys.stdout)  # above the bar
        sys.stdout.flush()

    if args.quiet:  # the trainer prints this banner itself when it shows progress
        from .device import describe_device, resolve_precision

        print(f"{describe_device(device)} · {resolve_precision(train_cfg.precision, device)}")
    model, result = train_model(data, data_cfg, model_cfg, train_cfg, dist=ctx, device=device,
                                hooks={"on_validation": [log]}, resume_from=args.resume,
                                progress=not args.quiet)
    if not ctx.is_main:
        return
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
    translator = Translator(model, data.src_vocab, data.trg_vocab, data_cfg, model_cfg, device,
                            data.truecaser, train_cfg.precision)
    test_pairs = data.test_pairs if args.data_dir else data.splits.test
    _report(translator, test_pairs, 3, "test", args.beam, args.length_penalty)
    print("sample translations:")
    samples = translator.translate_batch(SAMPLE_SENTENCES, beam_size=args.beam,
                                         length_penalty=args.length_penalty)
    for zh, en in zip(SAMPLE_SENTENCES, samples):
        print(f"  {zh} → {en}")


def _check_beam(args: argparse.Namespace) -> None:
    if args.beam < 1:
        raise ValueError(f"--beam must be at least 1, got {args.beam}")


def cmd_translate(args: argparse.Namespace) -> None:
    from .translator import Translator

    _check_beam(args)
    if args.chunk < 1:
        raise ValueError(f"--chunk must be at least 1, got {args.chunk}")
    if args.sentences and args.input:
        raise ValueError("give sentences as arguments or --input FILE, not both")
    translator = Translator.from_checkpoint(args.checkpoint, precision=args.precision)
    if args.sentences:
        if not all(s.strip() for s in args.sentences):
            raise ValueError("cannot translate an empty sentence: type some Chinese text")
        lines = iter(args.sentences)
    elif args.input:
        path = Path(args.input)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: input file not found")
        lines = _read_input(path.open(encoding="utf-8-sig", newline=None), str(path))
    else:
        if sys.stdin is None or sys.stdin.isatty():
            print("reading Chinese sentences from standard input, one a line (end with Ctrl-D, "
                  "or Ctrl-Z then Enter on Windows)", file=sys.stderr)
        lines = _read_input(sys.stdin, "standard input")
    n = 0
    for chunk in _chunks(lines, args.chunk):
        real = [line for line in chunk if line.strip()]
        outputs = iter(translator.translate_batch(real, args.max_len, beam_size=args.beam,
                                                  length_penalty=args.length_penalty)
                       if real else [])
        for line in chunk:
            print(next(outputs) if line.strip() else "")
        sys.stdout.flush()
        n += len(chunk)
    if n == 0:
        raise ValueError("no sentence to translate: give one as an argument or on standard input")


def _read_input(stream, name: str):
    """The lines of ``stream`` without their line ends; a line that is not UTF-8 is named."""
    number = 0
    try:
        for number, line in enumerate(stream, start=1):  # noqa: B007 - used in the message
            yield line.rstrip("\r\n")
    except UnicodeDecodeError:
        raise ValueError(f"{name}:{number + 1}: not valid UTF-8") from None


def _chunks(lines, size: int):
    chunk = []
    for line in lines:
        chunk.append(line)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def cmd_evaluate(args: argparse.Namespace) -> None:
    from .batching import make_loader
    from .data import load_corpus
    from .pipeline import prepare_data
    from .train import evaluate_loss
    from .translator import Translator

    _check_beam(args)
    translator = Translator.from_checkpoint(args.checkpoint, precision=args.precision)
    if args.data_dir or translator.data_cfg.data_dir:
        return _evaluate_cache(args, translator)
    data = prepare_data(translator.data_cfg, load_corpus(translator.data_cfg))
    pairs = getattr(data.splits, args.split)
    if not pairs:
        raise ValueError(f"the {args.split} split of this checkpoint's corpus is empty")
    # score with the checkpoint's own vocabularies, not ones rebuilt from the corpus
    from .batching import TranslationDataset

    ds = TranslationDataset(*data.tokens[args.split], translator.src_vocab, translator.trg_vocab)
    loss = evaluate_loss(translator.model, make_loader(ds, 256, bucket=False, shuffle=False),
                         translator.device)
    from .metrics import perplexity

    print(f"{args.split} loss = {loss:.3f}, perplexity = {perplexity(loss):.1f}")
    _report(translator, pairs, args.examples, args.split, args.beam, args.length_penalty)


# train flags whose defaults a preset replaces, by config field name
_PRESET_FIELDS = ("min_freq", "zh_tokens", "emb_dim", "hid_dim", "n_layers", "dropout",
                  "bidirectional", "attention", "epochs", "lr", "batch_size", "clip")


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse twice when ``train --preset demo`` is asked for: its values become the defaults."""
    args = _build_parser().parse_args(argv)
    if args.command == "train" and args.preset == "demo":
        from dataclasses import asdict

        from .config import demo_configs

        values = {k: v for cfg in demo_configs() for k, v in asdict(cfg).items()}
        args = _build_parser({name: values[name] for name in _PRESET_FIELDS}).parse_args(argv)
    return args


def _explicit_flags(argv: Sequence[str] | None) -> set[str]:
    """The ``--flags`` written on the command line (abbreviations are not allowed)."""
    words = sys.argv[1:] if argv is None else list(argv)
    return {w.split("=", 1)[0] for w in words if w.startswith("--")}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 training stopped early, 2 bad input)."""
    args = _parse(argv)
    from .checkpoint import CheckpointError
    from .config import ConfigError
    from .data import CorpusError
    from .train import TrainingError

    try:
        if args.command == "train":
            cmd_train(args, _explicit_flags(argv))
        else:
            {"translate": cmd_translate, "evaluate": cmd_evaluate,
             "preprocess": cmd_preprocess}[args.command](args)
    except ConfigError as exc:
        flag = _TRAIN_FLAGS.get(exc.field, ("--" + exc.field.replace("_", "-"),))[0]
        _say(f"error: {flag} {exc.message}")
        return 2
    except (CorpusError, CheckpointError, ValueError, FileNotFoundError) as exc:
        _say(f"error: {exc}")
        return 2
    except TrainingError as exc:
        _say(f"training stopped: {exc}")
        return 1
    return 0


# ---------------------------------------------------------------- preprocessed caches


def _add_preprocess_parser(sub) -> None:
    pp = sub.add_parser(
        "preprocess", help="tokenize a corpus once into a cache folder that training streams",
        description="Read a corpus as a stream, split it, tokenize it in parallel worker processes, "
                    "and write token ids (memory-mapped NumPy arrays), both vocabularies and a "
                    "manifest to --out. Running it again on the same input reuses the folder.")
    g = pp.add_argument_group("input (one of)")
    src = g.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", choices=["hsk"], help="the embedded HSK sentence corpus")
    src.add_argument("--src", metavar="FILE", help="Chinese side: one sentence a line (with --trg)")
    src.add_argument("--tsv", metavar="FILE", help="Tatoeba-style file: English<TAB>Chinese per line")
    g.add_argument("--trg", metavar="FILE", help="English side, aligned line by line with --src")
    g = pp.add_argument_group("settings (the same defaults as train)")
    g.add_argument("--zh-tokens", choices=["word", "char"], default="word",
                   help="Chinese tokens: jieba words or single characters (default word)")
    g.add_argument("--min-freq", type=int, default=2, help="rarer words become <unk> (default 2)")
    g.add_argument("--max-size", type=int, default=10_000,
                   help="largest vocabulary, specials included (default 10000)")
    g.add_argument("--max-len", type=int, default=60,
                   help="training pairs with a longer side (in tokens) are left out (default 60)")
    g.add_argument("--valid-frac", type=float, default=0.05, help="share of pairs for validation (default 0.05)")
    g.add_argument("--test-frac", type=float, default=0.05, help="share of pairs for testing (default 0.05)")
    g.add_argument("--seed", type=int, default=0, help="seed of the hash that splits the pairs")
    g.add_argument("--user-dict", metavar="FILE", help="jieba user dictionary (one word a line)")
    g = pp.add_argument_group("output")
    g.add_argument("--out", required=True, metavar="DIR", help="the cache folder to write")
    g.add_argument("--workers", type=int, metavar="N",
                   help="tokenizer processes (default: the number of CPUs)")
    g.add_argument("--force", action="store_true",
                   help="replace a cache in --out that was built from other inputs or settings")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_cache_train_args(tr: argparse.ArgumentParser) -> None:
    g = tr.add_argument_group("training from a preprocessed cache (see 'preprocess')")
    g.add_argument("--data-dir", metavar="DIR",
                   help="read the training data from this cache folder instead of text files; "
                        "its settings replace the data flags")
    g.add_argument("--max-tokens", type=int, metavar="N",
                   help="batches of at most N padded tokens instead of --batch-size sentences")
    g.add_argument("--workers", type=int, default=0, metavar="N",
                   help="DataLoader processes that prefetch batches from the cache (default 0)")


def cmd_preprocess(args: argparse.Namespace) -> None:
    from .cache import CacheError, preprocess
    from .config import DataConfig

    if bool(args.src) != bool(args.trg):
        raise ValueError("--src and --trg must be given together")
    source = "parallel" if args.src else "tsv" if args.tsv else "hsk"
    cfg = DataConfig(source=source, src_path=args.src, trg_path=args.trg, tsv_path=args.tsv,
                     valid_frac=args.valid_frac, test_frac=args.test_frac, seed=args.seed,
                     min_freq=args.min_freq, max_size=args.max_size, max_len=args.max_len,
                     user_dict=args.user_dict, zh_tokens=args.zh_tokens)
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    try:
        result = preprocess(cfg, args.out, workers=args.workers, force=args.force,
                            progress=not args.quiet)
    except KeyboardInterrupt:
        raise CacheError(f"interrupted: nothing was written to {args.out}") from None
    print(result.summary())


def _check_no_cache_args(args: argparse.Namespace) -> None:
    if args.max_tokens is not None or args.workers:
        raise ValueError("--max-tokens and --workers read a preprocessed cache: give --data-dir too")


def _cached_training_data(args: argparse.Namespace):
    from .cache import load_cache

    given = [flag for flag, value in (("--data", args.data), ("--src", args.src), ("--trg", args.trg),
                                      ("--tsv", args.tsv), ("--limit", args.limit)) if value]
    if given:
        raise ValueError(f"--data-dir replaces {', '.join(given)}: give one or the other")
    if args.max_tokens is not None and args.max_tokens < 1:
        raise ValueError(f"--max-tokens must be at least 1, got {args.max_tokens}")
    return load_cache(args.data_dir, max_tokens=args.max_tokens, num_workers=args.workers)


def _evaluate_cache(args: argparse.Namespace, translator) -> None:
    """``evaluate`` on a split of a preprocessed cache, with the checkpoint's vocabularies."""
    from .batching import TranslationDataset, make_loader
    from .cache import CacheError, load_cache
    from .metrics import perplexity
    from .pipeline import tokenize_pairs
    from .train import evaluate_loss

    cfg = translator.data_cfg
    if not args.data_dir and not Path(cfg.data_dir).is_dir():
        raise CacheError(f"this checkpoint was trained on the cache {cfg.data_dir}, which is not "
                         "there any more: give its new place with --data-dir")
    data = load_cache(args.data_dir or cfg.data_dir)
    if cfg.cache_hash is None:
        print(f"warning: this checkpoint was trained from text files, not from a cache: the "
              f"{args.split} split of {data.path} is not the split it held out, and may contain "
              "sentences it was trained on", file=sys.stderr)
    elif cfg.cache_hash != data.cache_hash:
        print(f"warning: this checkpoint was trained on another cache ({cfg.data_dir}, hash "
              f"{cfg.cache_hash[:12]}), not on {data.path} (hash {data.cache_hash[:12]}): the "
              f"{args.split} split here is not the split it held out, and may contain sentences "
              "it was trained on", file=sys.stderr)
    pairs = data.pairs(args.split)
    if not pairs:
        raise ValueError(f"the {args.split} split of {data.path} is empty")
    same_ids = (cfg.cache_hash == data.cache_hash and data.src_vocab.itos == translator.src_vocab.itos
                and data.trg_vocab.itos == translator.trg_vocab.itos)
    if same_ids:  # the cached ids are the ones the checkpoint's vocabularies give
        ds = getattr(data, args.split)
    else:  # tokenize the held-out text as the checkpoint's training data was
        ds = TranslationDataset(*tokenize_pairs(pairs, cfg.lowercase, cfg.zh_tokens),
                                translator.src_vocab, translator.trg_vocab)
    loss = evaluate_loss(translator.model, make_loader(ds, 256, bucket=False, shuffle=False),
                         translator.device)
    print(f"{args.split} loss = {loss:.3f}, perplexity = {perplexity(loss):.1f}  ({data.path})")
    _report(translator, pairs, args.examples, args.split, args.beam, args.length_penalty)


def _say(message: str) -> None:
    """An error line on standard error, written once: by the first of several processes."""
    import os

    if os.environ.get("RANK", "0") == "0":
        print(message, file=sys.stderr)
