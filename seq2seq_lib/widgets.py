"""ipywidgets for the notebooks: a hyper-parameter panel, a training dashboard, a translate box,
a vocabulary explorer and a decoding lab (greedy vs beam search, with the attention heat-map).

Thin wiring over :mod:`seq2seq_lib.recipe` and :mod:`seq2seq_lib.trainer` (the training recipe,
the trainer's callbacks, a background run) and :class:`Translator`. What
each button does is also a method (``train()``, ``stop()``, ``wait()``, ``translate()``), so a
notebook cell or a test can drive the widgets without a browser.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import ipywidgets as widgets

from .checkpoint import CheckpointInfo
from .config import DataConfig, ModelConfig, TrainConfig
from .device import choose_device, describe_device
from .models import Seq2Seq
from .pipeline import PreparedData
from .plots import plot_attention, plot_history, plot_unk_curve
from .recipe import make_loaders, new_model
from .runner import BackgroundRun
from .train import EpochRecord
from .trainer import FitResult, Trainer
from .translator import Translator
from .vocab import unk_rate_curve, vocab_stats

WIDE = {"description_width": "150px"}


def _choices(options: Sequence[int], current: int) -> list[int]:
    """``options`` with ``current`` added, so a dropdown can always show the configured value."""
    return sorted({*options, current})


class HyperParameterPanel(widgets.VBox):
    """Sliders and drop-downs for the model and training settings.

    :param model_cfg: / :param train_cfg: the starting values; settings without a widget
        (bidirectional, attention, device, checkpoint path, seed, ...) are kept from them.
    """

    def __init__(self, model_cfg: ModelConfig | None = None, train_cfg: TrainConfig | None = None):
        m = model_cfg or ModelConfig()
        t = train_cfg or TrainConfig()
        self.base_model_cfg, self.base_train_cfg = m, t
        self.emb_dim = widgets.Dropdown(options=_choices([32, 64, 128, 256, 512], m.emb_dim),
                                        value=m.emb_dim, description="emb_dim", style=WIDE)
        self.hid_dim = widgets.Dropdown(options=_choices([64, 128, 256, 512, 1024], m.hid_dim),
                                        value=m.hid_dim, description="hid_dim", style=WIDE)
        self.n_layers = widgets.IntSlider(value=m.n_layers, min=1, max=max(4, m.n_layers),
                                          description="n_layers", style=WIDE)
        self.dropout = widgets.FloatSlider(value=m.dropout, min=0.0, max=0.9, step=0.05,
                                           description="dropout", style=WIDE)
        self.lr = widgets.FloatLogSlider(value=t.lr, base=10, min=-5, max=-1, step=0.1,
                                         readout_format=".1e", description="lr", style=WIDE)
        self.batch_size = widgets.Dropdown(options=_choices([8, 16, 32, 64, 128, 256], t.batch_size),
                                           value=t.batch_size, description="batch_size", style=WIDE)
        self.epochs = widgets.IntSlider(value=t.epochs, min=1, max=max(50, t.epochs),
                                        description="epochs", style=WIDE)
        self.teacher_forcing_ratio = widgets.FloatSlider(
            value=t.teacher_forcing_ratio, min=0.0, max=1.0, step=0.05,
            description="teacher_forcing_ratio", style=WIDE)
        self.clip = widgets.FloatSlider(value=t.clip, min=0.0, max=5.0, step=0.1,
                                        description="clip (0 = off)", style=WIDE)
        model_box = widgets.VBox([widgets.HTML("<b>model</b>"), self.emb_dim, self.hid_dim,
                                  self.n_layers, self.dropout])
        train_box = widgets.VBox([widgets.HTML("<b>training</b>"), self.lr, self.batch_size,
                                  self.epochs, self.teacher_forcing_ratio, self.clip])
        super().__init__([widgets.HBox([model_box, train_box])])

    def __repr__(self) -> str:  # the text a notebook shows where widgets cannot be drawn
        return "HyperParameterPanel (open the notebook in Jupyter to use the controls)"

    @property
    def controls(self) -> list[widgets.ValueWidget]:
        return [self.emb_dim, self.hid_dim, self.n_layers, self.dropout, self.lr,
                self.batch_size, self.epochs, self.teacher_forcing_ratio, self.clip]

    def set_disabled(self, disabled: bool) -> None:
        """Grey the controls out (while training runs) or enable them again."""
        for control in self.controls:
            control.disabled = disabled

    def configs(self) -> tuple[ModelConfig, TrainConfig]:
        """The current widget values as (ModelConfig, TrainConfig)."""
        model_cfg = replace(self.base_model_cfg, emb_dim=int(self.emb_dim.value),
                            hid_dim=int(self.hid_dim.value), n_layers=int(self.n_layers.value),
                            dropout=round(float(self.dropout.value), 4))
        train_cfg = replace(self.base_train_cfg, lr=float(f"{self.lr.value:.3g}"),
                            batch_size=int(self.batch_size.value), epochs=int(self.epochs.value),
                            teacher_forcing_ratio=round(float(self.teacher_forcing_ratio.value), 4),
                            clip=round(float(self.clip.value), 4))
        return model_cfg, train_cfg


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()


STOPPED = {"finished": "finished", "stop-event": "stopped by the Stop button",
           "callback": "stopped by a callback", "interrupted": "interrupted",
           "early-stopping": "stopped early (the validation loss no longer improved)",
           "time-budget": "stopped at the time budget"}


class TrainingDashboard(widgets.VBox):
    """Train / Stop buttons, progress bars, a loss plot redrawn after every epoch, sample output.

    The view of a :class:`~seq2seq_lib.runner.BackgroundRun` (the training thread, its stop
    event, result and error): it draws from the trainer's callbacks (``on_step`` moves the batch
    bar, ``on_validation`` redraws the plot and the samples). Training runs in the background,
    so the kernel stays free and the Stop button works; Stop ends training after the current
    batch (the best weights are kept). ``wait()`` blocks until training is over and returns the
    :class:`FitResult`; afterwards ``translator`` holds the trained model and the best epoch is
    saved at ``TrainConfig.checkpoint_path``. While a cell blocks in ``wait()`` the kernel
    handles no button clicks: interrupting the kernel then stops training the same clean way.

    :param panel: where the settings come from (a default :class:`HyperParameterPanel` if None).
    :param samples: Chinese sentences translated after every epoch, to watch the model learn.
    """

    def __init__(self, data: PreparedData, data_cfg: DataConfig,
                 panel: HyperParameterPanel | None = None,
                 samples: Sequence[str] = ("我喜欢学习机器学习。",), device: str | None = None,
                 **fit_kwargs: Any):
        self.data, self.data_cfg = data, data_cfg
        self.panel = panel if panel is not None else HyperParameterPanel()
        self.samples = list(samples)
        self.device = device
        self.fit_kwargs = fit_kwargs  # e.g. loss_fn=...
        self.run = BackgroundRun()
        self.train_button = widgets.Button(description="Train", icon="play", button_style="success")
        self.stop_button = widgets.Button(description="Stop", icon="stop", button_style="danger",
                                          disabled=True)
        self.train_button.on_click(lambda _: self.train())
        self.stop_button.on_click(lambda _: self.stop())
        self.epoch_bar = widgets.IntProgress(value=0, min=0, max=1, description="epochs")
        self.batch_bar = widgets.IntProgress(value=0, min=0, max=1, description="batches")
        self.status = widgets.HTML("press <b>Train</b> to start")
        self.plot = widgets.Image(format="png", layout=widgets.Layout(max_width="520px"))
        self.sample_box = widgets.HTML()
        self.history: list[EpochRecord] = []
        self.model: Seq2Seq | None = None
        self.translator: Translator | None = None
        self.plot_updates = 0
        super().__init__([self.panel, widgets.HBox([self.train_button, self.stop_button]),
                          widgets.HBox([self.epoch_bar, self.batch_bar]), self.status,
                          self.plot, self.sample_box])

    def __repr__(self) -> str:
        return "TrainingDashboard (open the notebook in Jupyter to press Train and Stop)"

    @property
    def running(self) -> bool:
        return self.run.running

    @property
    def result(self) -> FitResult | None:
        return self.run.result

    @property
    def error(self) -> BaseException | None:
        return self.run.error

    def train(self) -> None:
        """Start training a new model with the panel's current settings (in the background)."""
        if self.running:
            raise RuntimeError("training is already running: press Stop or call wait() first")
        model_cfg, train_cfg = self.panel.configs()
        device = choose_device(self.device or train_cfg.device, verbose=False)
        self.model = new_model(self.data, model_cfg, train_cfg.seed)
        train_loader, valid_loader = make_loaders(self.data, train_cfg)
        info = CheckpointInfo(self.data.src_vocab, self.data.trg_vocab, self.data_cfg, model_cfg,
                              self.data.truecaser)
        trainer = Trainer(self.model, train_loader, valid_loader, train_cfg, info, device=device,
                          progress=False, stop=self.run.stop_event, **self.fit_kwargs)
        translator = Translator(self.model, self.data.src_vocab, self.data.trg_vocab,
                                self.data_cfg, model_cfg, device, self.data.truecaser,
                                train_cfg.precision)
        trainer.add_callback("on_step", self._on_step)
        trainer.add_callback("on_validation", lambda t: self._on_validation(t, translator))
        self.history, self.translator, self.plot_updates = [], None, 0
        self.epoch_bar.value, self.epoch_bar.max = 0, train_cfg.epochs
        self.batch_bar.value, self.batch_bar.max = 0, len(train_loader)
        self.status.value = (f"training on {html.escape(describe_device(device))}: "
                             f"{sum(p.numel() for p in self.model.parameters()):,} parameters")
        self.panel.set_disabled(True)
        self.train_button.disabled, self.stop_button.disabled = True, False
        self.run.start(lambda stop: trainer.fit(),
                       on_done=lambda run: self._on_done(run, translator, train_cfg))

    def stop(self) -> None:
        """Ask training to end after the current batch."""
        self.run.stop()
        if self.running:
            self.status.value += " · stopping after this batch…"

    def wait(self, timeout: float | None = None) -> FitResult:
        """Block until training has ended; returns its :class:`FitResult`.

        Interrupting the kernel while waiting stops training cleanly, like the Stop button.
        """
        return self.run.wait(timeout)

    def _on_step(self, trainer: Trainer) -> None:
        self.batch_bar.value = trainer.state.batch

    def _on_validation(self, trainer: Trainer, translator: Translator) -> None:
        record = trainer.record
        assert record is not None
        self.history = list(trainer.state.history)
        self.epoch_bar.value = int(record["epoch"]) - (trainer.state.batch < self.batch_bar.max)
        self._draw()
        self.status.value = (f"epoch {record['epoch']}/{self.epoch_bar.max} · "
                             f"train loss {record['train_loss']:.3f} · "
                             f"valid loss {record['valid_loss']:.3f} · "
                             f"{record['seconds']:.1f} s")
        self._show_samples(translator)

    def _on_done(self, run: BackgroundRun, translator: Translator,
                 train_cfg: TrainConfig) -> None:
        if run.result is not None:
            self.history = run.result.history
            if self.plot_updates < len(self.history):
                self._draw()
            self.translator = translator
            self._show_samples(translator)  # the best weights are back in the model now
            status = self._summary(run.result)
        else:
            status = (f"<span style='color:#b00'>training failed: "
                      f"{html.escape(str(run.error))}</span>")
        # buttons first, so the final message is shown with the final button states
        self.panel.set_disabled(False)
        self.train_button.disabled, self.stop_button.disabled = False, True
        self.status.value = status

    def _draw(self) -> None:
        self.plot.value = _png(plot_history(self.history))
        self.plot_updates += 1

    def _show_samples(self, translator: Translator) -> None:
        if not self.samples:
            return
        rows = "".join(f"<li>{html.escape(zh)} → <i>{html.escape(en)}</i></li>"
                       for zh, en in zip(self.samples, translator.translate_batch(self.samples)))
        self.sample_box.value = f"<ul>{rows}</ul>"

    @staticmethod
    def _summary(result: FitResult) -> str:
        saved = f", saved to {result.checkpoint.name}" if result.checkpoint else ""
        return (f"{STOPPED.get(result.stopped, result.stopped)} after {len(result.history)} "
                f"epoch(s) in {result.seconds:.0f} s · best epoch {result.best_epoch} "
                f"(valid loss {result.best_valid_loss:.3f}){saved}")


EMPTY_MESSAGE = "请先输入一句中文。(Type a Chinese sentence first.)"


def _sentence_box(value: str) -> widgets.Text:
    """The text box of :class:`TranslateBox` and :class:`DecodingLab`: Enter submits."""
    return widgets.Text(value=value, placeholder="输入一句中文，按 Enter", continuous_update=False,
                        description="中文", layout=widgets.Layout(width="480px"))


class TranslateBox(widgets.VBox):
    """A text box for a Chinese sentence, a Translate button (or Enter), and the translation.

    Under the translation it lists the jieba tokens the model saw, marking the ones its
    vocabulary does not know (they became ``<unk>``).
    """

    def __init__(self, translator: Translator, value: str = "我喜欢学习机器学习。",
                 max_len: int = 50):
        self.translator, self.max_len = translator, max_len
        self.text = _sentence_box(value)
        self.button = widgets.Button(description="Translate", icon="language")
        self.output = widgets.HTML()
        self.translation: str | None = None
        self.button.on_click(lambda _: self.translate())
        self.text.observe(lambda _: self.translate(), names="value")  # Enter submits
        super().__init__([widgets.HBox([self.text, self.button]), self.output])

    def __repr__(self) -> str:
        return "TranslateBox (open the notebook in Jupyter to type a sentence)"

    def translate(self) -> str:
        """Translate the text box's sentence, show it, and return it (or the hint if empty)."""
        sentence = self.text.value
        try:
            tokens = self.translator.src_tokens(sentence)  # ValueError for an empty sentence
        except ValueError:
            self.translation = None
            self.output.value = f"<i>{html.escape(EMPTY_MESSAGE)}</i>"
            return EMPTY_MESSAGE
        self.translation = self.translator.translate(sentence, self.max_len)
        shown = " ".join(html.escape(t) if t in self.translator.src_vocab
                         else f"<s title='&lt;unk&gt;'>{html.escape(t)}</s>" for t in tokens)
        self.output.value = (f"<b>{html.escape(self.translation)}</b><br>"
                             f"<small>tokens: {shown} (struck out = unknown → &lt;unk&gt;)</small>")
        return self.translation


class VocabExplorer(widgets.VBox):
    """Sliders for ``min_freq`` and ``max_size`` that redraw the vocabulary size and the
    validation ``<unk>`` rate; the numbers come from :func:`seq2seq_lib.vocab.vocab_stats`.

    ``stats`` holds the numbers of the current setting; ``summary`` (HTML) and ``plot`` (PNG)
    show them, so a test can move the sliders and read the result without a browser.
    """

    def __init__(self, train_tokens: Sequence[list[str]], valid_tokens: Sequence[list[str]],
                 min_freq: int = 2, max_size: int = 10_000, max_min_freq: int = 10):
        self.train_tokens, self.valid_tokens = train_tokens, valid_tokens
        self.full_curve = unk_rate_curve(train_tokens, valid_tokens, min_freq=1)
        largest = self.full_curve[0][-1]  # every training type kept
        self.min_freq = widgets.IntSlider(value=min_freq, min=1, max=max(max_min_freq, min_freq),
                                          description="min_freq", continuous_update=False,
                                          style=WIDE)
        step = next((s for s in (1, 5, 10, 25, 50, 100, 500) if largest <= 300 * s), 1000)
        self.max_size = widgets.IntSlider(value=min(max_size, largest), min=max(4, step),
                                          max=largest, step=step,
                                          description="max_size", continuous_update=False,
                                          style=WIDE, layout=widgets.Layout(width="520px"))
        self.summary = widgets.HTML()
        self.plot = widgets.Image(format="png", layout=widgets.Layout(max_width="520px"))
        self.stats: dict[str, float] = {}
        for slider in (self.min_freq, self.max_size):
            slider.observe(lambda _: self.update(), names="value")
        super().__init__([self.min_freq, self.max_size, self.summary, self.plot])
        self.update()

    def update(self) -> dict[str, float]:
        """Recount with the sliders' values, redraw, and return the new :attr:`stats`."""
        min_freq, max_size = int(self.min_freq.value), int(self.max_size.value)
        self.stats = vocab_stats(self.train_tokens, self.valid_tokens, min_freq, max_size)
        s = self.stats
        reachable = s["size"] + s["cut_by_max_size"]
        self.summary.value = (
            f"vocabulary: <b>{s['size']:,}</b> tokens (of {s['train_types']:,} training types: "
            f"{s['cut_by_min_freq']:,} cut by min_freq, {s['cut_by_max_size']:,} by max_size)"
            f" · &lt;unk&gt; rate: <b>{100 * s['valid_unk_rate']:.1f}%</b> on validation, "
            f"{100 * s['train_unk_rate']:.1f}% on training")
        sizes, rates = self.full_curve
        self.plot.value = _png(plot_unk_curve(sizes, rates, reachable=int(reachable),
                                              current=(int(s["size"]), s["valid_unk_rate"])))
        return s


def vocab_explorer(train_tokens: Sequence[list[str]], valid_tokens: Sequence[list[str]],
                   min_freq: int = 2, max_size: int = 10_000) -> VocabExplorer:
    """A :class:`VocabExplorer` for one language's training and validation tokens."""
    return VocabExplorer(train_tokens, valid_tokens, min_freq, max_size)


class DecodingLab(widgets.VBox):
    """Type a sentence, move the beam-size and length-penalty sliders, compare the decoders.

    Every change (Enter in the text box, a slider released, the Decode button) decodes the
    sentence greedily and with beam search, lists the beam's n-best translations with their
    scores, and, for a model with attention, draws the beam output's attention heat-map.
    ``greedy``, ``beam``, ``n_best`` and ``figure`` hold what is shown, so a test or a notebook
    cell can read it without a browser.

    :param n_best: at most this many beam hypotheses are listed (never more than the beam size).
    """

    def __init__(self, translator: Translator, value: str = "我喜欢学习机器学习。",
                 beam_size: int = 5, length_penalty: float = 0.6, n_best: int = 5,
                 max_beam_size: int = 10, max_len: int = 50):
        self.translator, self.max_len, self.max_n_best = translator, max_len, n_best
        self.text = _sentence_box(value)
        self.beam_size = widgets.IntSlider(value=beam_size, min=1,
                                           max=max(max_beam_size, beam_size),
                                           description="beam_size", continuous_update=False,
                                           style=WIDE)
        self.length_penalty = widgets.FloatSlider(value=length_penalty, min=0.0, max=2.0,
                                                  step=0.1, description="length_penalty",
                                                  continuous_update=False, style=WIDE)
        self.button = widgets.Button(description="Decode", icon="language")
        self.output = widgets.HTML()
        self.plot = widgets.Image(format="png", layout=widgets.Layout(max_width="560px"))
        self.greedy: str | None = None
        self.beam: str | None = None
        self.n_best: list[tuple[str, float]] = []
        self.figure: Any = None
        self.button.on_click(lambda _: self.decode())
        for control in (self.text, self.beam_size, self.length_penalty):
            control.observe(lambda _: self.decode(), names="value")
        super().__init__([widgets.HBox([self.text, self.button]), self.beam_size,
                          self.length_penalty, self.output, self.plot])
        self.decode()

    def __repr__(self) -> str:
        return "DecodingLab (open the notebook in Jupyter to type a sentence and move the sliders)"

    def decode(self) -> str | None:
        """Decode the text box's sentence with the sliders' settings; returns the beam output
        (None, with a hint shown, when the box is empty)."""
        sentence = self.text.value
        try:
            self.translator.src_tokens(sentence)  # ValueError for an empty sentence
        except ValueError:
            self.greedy, self.beam, self.n_best, self.figure = None, None, [], None
            self.output.value = f"<i>{html.escape(EMPTY_MESSAGE)}</i>"
            self.plot.value = b""
            return None
        beam_size, alpha = int(self.beam_size.value), round(float(self.length_penalty.value), 4)
        self.greedy = self.translator.translate(sentence, self.max_len)
        self.n_best = self.translator.translate_n_best(
            sentence, n=min(self.max_n_best, beam_size), beam_size=beam_size,
            max_len=self.max_len, length_penalty=alpha)
        self.beam = self.n_best[0][0]
        rows = "".join(f"<tr><td>{rank}</td><td>{html.escape(text)}</td><td>{score:.3f}</td></tr>"
                       for rank, (text, score) in enumerate(self.n_best, start=1))
        self.output.value = (
            f"greedy: <b>{html.escape(self.greedy)}</b><br>"
            f"beam {beam_size} (length_penalty {alpha}): <b>{html.escape(self.beam)}</b>"
            f"<table><tr><th>#</th><th>n-best</th><th>score</th></tr>{rows}</table>")
        self._draw(sentence, beam_size, alpha)
        return self.beam

    def _draw(self, sentence: str, beam_size: int, alpha: float) -> None:
        if not self.translator.has_attention:
            self.figure, self.plot.value = None, b""  # a plain GRU has no weights to show
            return
        src, trg, weights = self.translator.attention_map(sentence, beam_size, self.max_len, alpha)
        self.figure = plot_attention(weights, src, trg, title=f"beam {beam_size}: {sentence}")
        self.plot.value = _png(self.figure)
