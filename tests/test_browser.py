"""End to end, as a learner uses the course: JupyterLab in headless Chromium, clicking widgets.

1. open notebook 05, Run → Run All Cells from the menu, wait until every cell has run;
2. change hyper-parameters in the panel, press Train, watch the loss plot and the progress bars
   update epoch by epoch, and check the settings typed in the browser were the ones used;
3. open notebook 06, run it, type a sentence into the translate box and press Translate.

Fast mode (``SEQ2SEQ_FAST=1``) keeps data and model tiny; the notebooks are served from a
temporary copy and checkpoints go to a temporary folder, so the repository is never touched.
Screenshots of every step (and of a failure) land in ``test-artifacts/browser/``.

Needs Debian's ``chromium``, a Chinese font (``fonts-noto-cjk``) and the ``playwright`` package
(``make browser-deps``); without them the test is skipped, or fails when
``SEQ2SEQ_REQUIRE_BROWSER=1`` (as in CI).
"""

from __future__ import annotations

import ast
import contextlib
import glob
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import CHROMIUM_FLAGS, LabServer, chromium_path, lab_server

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
TRAINING_NB, DECODING_NB = "05_training.ipynb", "06_greedy_decoding.ipynb"
ARTIFACTS = REPO / "test-artifacts" / "browser"

SENTENCE = "我喜欢学习机器学习。"
EPOCHS, BATCH_SIZE, LR = 4, 16, "1e-2"  # what the learner types (fast mode's defaults: 2, 64, 1e-3)

RUN_ALL_TIMEOUT = 300  # s per notebook: seconds on an idle machine, much longer on a busy one
TRAIN_TIMEOUT = 240  # s for the dashboard's training run
UI_TIMEOUT = 60_000  # ms for anything the page itself does

CJK = re.compile(r"[\u4e00-\u9fff]")
WIDGET_ERRORS = re.compile(r"Error displaying widget|model not found|Could not create (a )?(model|view)",
                           re.IGNORECASE)
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\w*(Error|Exception): ", re.MULTILINE)
RAW_TQDM = re.compile(r"\d+%\|")  # a progress bar printed as text instead of drawn as a widget


# ---------------------------------------------------------------------------------------------
# prerequisites


def _unavailable(reason: str) -> None:
    if os.environ.get("SEQ2SEQ_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (SEQ2SEQ_REQUIRE_BROWSER=1)", pytrace=False)
    pytest.skip(reason)


def _has_chinese_font() -> bool:
    if shutil.which("fc-list"):
        out = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True)
        return bool(out.stdout.strip())
    return bool(glob.glob("/usr/share/fonts/**/*CJK*", recursive=True))


def _require_browser() -> str:
    if importlib.util.find_spec("playwright") is None:
        _unavailable("the playwright package is not installed (pip install -r requirements.txt)")
    chromium = chromium_path()
    if chromium is None:
        _unavailable("chromium is not installed (make browser-deps)")
    if not _has_chinese_font():
        _unavailable("no Chinese font is installed (fonts-noto-cjk; make browser-deps)")
    return chromium


# ---------------------------------------------------------------------------------------------
# JupyterLab helpers


def _api(lab: LabServer, path: str, method: str = "GET") -> object:
    request = urllib.request.Request(f"{lab.url}/api/{path}?token={lab.token}", method=method)
    with urllib.request.urlopen(request, timeout=30) as resp:
        body = resp.read()
    return json.loads(body) if body else None


def _notebook_code_cells(name: str) -> int:
    nb = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))
    return sum(cell["cell_type"] == "code" for cell in nb["cells"])


def _panel(page):
    """The notebook panel in the current (visible) tab."""
    return page.locator(".jp-NotebookPanel").filter(visible=True)


def _prompts(page) -> list[str]:
    return _panel(page).locator(".jp-CodeCell .jp-InputPrompt").evaluate_all(
        "els => els.map(e => e.textContent.trim())")


def _open_notebook(page, lab: LabServer, name: str, from_file_browser: bool = False) -> None:
    """Open ``name`` (by its URL, or by double-clicking it in the file browser) and wait until
    its kernel is ready."""
    from playwright.sync_api import expect

    if from_file_browser:
        page.locator(".jp-DirListing-itemText", has_text=name).dblclick()
    else:
        page.goto(lab.page_url(name))
    tab = page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel")
    expect(tab).to_have_text(name, timeout=UI_TIMEOUT)
    panel = _panel(page)
    panel.locator(".jp-Cell").first.wait_for(timeout=UI_TIMEOUT)
    # the page started the kernel named in the notebook's metadata, and it is ready: asking to
    # run cells any earlier gets a 'Select Kernel' dialog instead
    deadline = time.monotonic() + UI_TIMEOUT / 1000
    while True:
        kernels = [s["kernel"] for s in _api(lab, "sessions") if s["path"] == name]
        if kernels and kernels[0]["execution_state"] == "idle":
            break
        assert time.monotonic() < deadline, f"no idle kernel for {name}: {kernels}"
        time.sleep(0.5)
    assert kernels[0]["name"] == "python3", f"{name} started kernel {kernels[0]['name']!r}"
    panel.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for()


def _dialog_text(page) -> str:
    dialogs = page.locator(".jp-Dialog")
    return " / ".join(dialogs.all_inner_texts()) if dialogs.count() else ""


def _run_all(page, name: str) -> None:
    """Run → Run All Cells, then wait until every code cell shows its execution count."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    n_code = _notebook_code_cells(name)
    # the committed outputs already show [1]..[n]: first see the cells queued ([*]) ...
    deadline = time.monotonic() + 30
    while "[*]:" not in _prompts(page):
        assert time.monotonic() < deadline, (
            f"Run All Cells queued nothing in {name}: {_prompts(page)}; "
            f"dialog: {_dialog_text(page) or 'none'}")
        time.sleep(0.2)
    # ... then wait for a fresh kernel's counts 1..n and an idle kernel
    expected = [f"[{i}]:" for i in range(1, n_code + 1)]
    deadline = time.monotonic() + RUN_ALL_TIMEOUT
    while True:
        prompts = _prompts(page)
        idle = _panel(page).locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").count()
        if prompts == expected and idle:
            break
        if "[*]:" not in prompts and idle:  # stopped early: show the error, if there is one
            _check_page_clean(page, name, [])
            pytest.fail(f"cells stopped running in {name}: {prompts}; "
                        f"dialog: {_dialog_text(page) or 'none'}")
        assert time.monotonic() < deadline, (
            f"{name} did not finish within {RUN_ALL_TIMEOUT} s; prompts {prompts}")
        time.sleep(1)


def _check_page_clean(page, where: str, console: list[str]) -> None:
    """No error output, no widget that failed to render, no progress bar printed as text."""
    text = page.locator("body").inner_text()
    found = WIDGET_ERRORS.search(text)
    assert not found, f"{where}: the page shows {found.group(0)!r}"
    bad_console = [m for m in console if WIDGET_ERRORS.search(m)]
    assert not bad_console, f"{where}: widget errors in the browser console: {bad_console}"
    outputs = _panel(page).locator(".jp-OutputArea-output").evaluate_all(
        "els => els.map(e => e.innerText)")
    for out in outputs:
        assert not TRACEBACK.search(out), f"{where}: a cell failed:\n{out[:2000]}"
        assert not RAW_TQDM.search(out), f"{where}: a progress bar printed as text:\n{out[:500]}"


@contextlib.contextmanager
def _kernels_shut_down(lab: LabServer) -> Iterator[None]:
    """Shut the kernels down through the server before it is stopped: kernels run in their own
    process groups, so stopping the server's group alone could leave them behind."""
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            for kernel in _api(lab, "kernels"):
                _api(lab, f"kernels/{kernel['id']}", "DELETE")


def _kernel_eval(lab: LabServer, runtime_dir: Path, notebook: str,
                 expressions: dict[str, str]) -> dict[str, object]:
    """Evaluate expressions in the notebook's own kernel (silently: no cell, no history)."""
    from jupyter_client import BlockingKernelClient

    sessions = _api(lab, "sessions")
    kernels = [s["kernel"]["id"] for s in sessions if s["path"] == notebook]
    assert len(kernels) == 1, f"expected one kernel session for {notebook}: {sessions}"
    client = BlockingKernelClient()
    client.load_connection_file(str(runtime_dir / f"kernel-{kernels[0]}.json"))
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        msg_id = client.execute("", silent=True, store_history=False, user_expressions=expressions)
        while True:
            reply = client.get_shell_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
    finally:
        client.stop_channels()
    values = {}
    for key, result in reply["content"]["user_expressions"].items():
        assert result["status"] == "ok", f"{key}: {result.get('ename')}: {result.get('evalue')}"
        values[key] = ast.literal_eval(result["data"]["text/plain"])
    return values


# ---------------------------------------------------------------------------------------------
# what the page shows


def _check_chinese_renders(page, where: str) -> None:
    """The first markdown cell holds Chinese prose, visible, drawn with real glyphs (no tofu)."""
    from playwright.sync_api import expect

    heading = _panel(page).locator(".jp-MarkdownCell .jp-RenderedMarkdown").first
    heading.scroll_into_view_if_needed()
    expect(heading).to_be_visible()
    # innerText stays empty until the cell is laid out (cells off screen are skipped)
    expect(heading).to_contain_text("学习目标", use_inner_text=True)
    text = heading.inner_text()
    assert len(CJK.findall(text)) > 20, (
        f"{where}: no Chinese prose shown in the first markdown cell: {text[:200]!r}")
    # Draw two different characters in the cell's font: real glyphs differ from each other and
    # from the 'missing glyph' box that an unassigned code point gets.
    glyphs = heading.evaluate("""el => {
        const font = getComputedStyle(el).fontFamily;
        const canvas = document.createElement('canvas');
        canvas.width = canvas.height = 64;
        const ctx = canvas.getContext('2d');
        const draw = ch => {
            ctx.clearRect(0, 0, 64, 64);
            ctx.font = `48px ${font}`;
            ctx.fillText(ch, 4, 52);
            const alpha = ctx.getImageData(0, 0, 64, 64).data.filter((_, i) => i % 4 === 3);
            return {ink: alpha.reduce((a, b) => a + (b > 0), 0), key: alpha.join(',')};
        };
        const a = draw('训'), b = draw('练'), missing = draw('\\u{10FFFD}');
        return {font, ink: a.ink, distinct: a.key !== b.key,
                tofu: a.key === missing.key || b.key === missing.key};
    }""")
    assert glyphs["ink"] > 0 and glyphs["distinct"] and not glyphs["tofu"], (
        f"{where}: Chinese characters are not drawn with a Chinese font "
        f"(font-family {glyphs['font']!r}): {glyphs}")


# A MutationObserver records every value the dashboard shows, so that epochs finishing faster
# than the test polls are still seen: each new plot (a new blob: URL per PNG), each status line,
# each width of the epoch progress bar, each state of the Stop button.
WATCH_DASHBOARD = """([img, status, bar, stop]) => {
    const log = window.__dashboard = {plots: [], statuses: [], widths: [], stop: []};
    const push = (list, value) => { if (value && list[list.length - 1] !== value) list.push(value); };
    new MutationObserver(() => push(log.plots, img.getAttribute('src')))
        .observe(img, {attributes: true, attributeFilter: ['src']});
    new MutationObserver(() => push(log.statuses, status.innerText))
        .observe(status, {childList: true, subtree: true, characterData: true});
    new MutationObserver(() => push(log.widths, bar.style.width))
        .observe(bar, {attributes: true, attributeFilter: ['style']});
    new MutationObserver(() => push(log.stop, stop.disabled ? 'disabled' : 'enabled'))
        .observe(stop, {attributes: true, attributeFilter: ['disabled']});
    return img.getAttribute('src');
}"""


def _type_into_readout(page, slider, value: str) -> None:
    """Edit a slider's number the way a learner does: click it, type, press Enter."""
    readout = slider.locator(".widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(value)
    page.keyboard.press("Enter")


# ---------------------------------------------------------------------------------------------
# the test


@contextlib.contextmanager
def _step(page, name: str) -> Iterator[None]:
    """Save ``failure_<name>.png`` when the step fails."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            page.screenshot(path=str(ARTIFACTS / f"failure_{name}.png"), full_page=True)
        raise


def test_learner_runs_trains_and_translates_in_jupyterlab(tmp_path):
    chromium = _require_browser()
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.iterdir():
        if old.is_file():
            old.unlink()
    served = tmp_path / "notebooks"  # a copy: whatever the browser saves never reaches the repo
    served.mkdir()
    for name in (TRAINING_NB, DECODING_NB):
        shutil.copy(NOTEBOOKS / name, served / name)
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    env = {"SEQ2SEQ_FAST": "1", "SEQ2SEQ_CHECKPOINTS": str(checkpoints),
           # the machine may be small and shared: one compute thread per kernel
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    workdir = tmp_path / "lab"
    console: list[str] = []
    started = time.monotonic()
    try:
        with lab_server(served, workdir, env) as lab, _kernels_shut_down(lab), \
                sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
            context = browser.new_context(viewport={"width": 1280, "height": 1500})
            context.set_default_timeout(UI_TIMEOUT)
            page = context.new_page()
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))

            # 1. notebook 05, Run All Cells from the menu
            with _step(page, "01_run_training_notebook"):
                _open_notebook(page, lab, TRAINING_NB)
                _run_all(page, TRAINING_NB)
                _check_page_clean(page, TRAINING_NB, console)
                kernel = _kernel_eval(lab, workdir / "runtime", TRAINING_NB, {
                    "prefix": "__import__('sys').prefix",
                    "lib": "__import__('seq2seq_lib').__file__",
                    "fast": "__import__('seq2seq_lib.course', fromlist=['fast_mode']).fast_mode()"})
                assert Path(kernel["prefix"]).resolve() == Path(sys.prefix).resolve(), (
                    f"the notebook kernel runs in {kernel['prefix']}, not in {sys.prefix}")
                assert Path(kernel["lib"]).resolve().parent == REPO / "seq2seq_lib", kernel
                assert kernel["fast"] is True, "the kernel did not see SEQ2SEQ_FAST=1"
                _check_chinese_renders(page, TRAINING_NB)
                page.screenshot(path=str(ARTIFACTS / "01_training_notebook_ran.png"),
                                full_page=True)

            # 2. the dashboard: set epochs, batch size and learning rate, press Train
            with _step(page, "02_dashboard_training"):
                out = _panel(page).locator(".jp-OutputArea-output").filter(
                    has=page.locator("button.widget-button", has_text=re.compile(r"^Train$")))
                expect(out).to_have_count(1)
                dashboard = out.locator(".widget-vbox:has(> img.widget-image)")
                dashboard.scroll_into_view_if_needed()

                def control(kind: str, label: str):
                    return dashboard.locator(kind).filter(
                        has=page.locator("label.widget-label", has_text=re.compile(f"^{label}$")))

                epochs = control(".widget-hslider", "epochs")
                _type_into_readout(page, epochs, str(EPOCHS))
                expect(epochs.locator("[role=slider]")).to_have_attribute(
                    "aria-valuenow", f"{EPOCHS:.1f}")
                lr = control(".widget-hslider", "lr")
                _type_into_readout(page, lr, LR)
                expect(lr.locator(".widget-readout")).to_have_text("1.0e-2")
                control(".widget-dropdown", "batch_size").locator("select").select_option(
                    str(BATCH_SIZE))

                bars = dashboard.locator(":scope > .widget-hbox .widget-hprogress")
                expect(bars).to_have_count(2)  # drawn as widgets, not as text
                expect(bars.locator(".progress-bar")).to_have_count(2)
                expect(bars.locator("label")).to_have_text(["epochs", "batches"])
                status = dashboard.locator(":scope > .widget-html").first
                plot = dashboard.locator(":scope > img.widget-image")
                old_plot = dashboard.evaluate_handle(
                    "(el) => [el.querySelector(':scope > img.widget-image'),"
                    " el.querySelector(':scope > .widget-html'),"
                    " el.querySelectorAll('.widget-hprogress .progress-bar')[0],"
                    " [...el.querySelectorAll('button')].find(b => b.innerText.trim() === 'Stop')]"
                    ).evaluate(
                    WATCH_DASHBOARD)

                train = dashboard.locator("button.widget-button", has_text=re.compile(r"^Train$"))
                stop = dashboard.locator("button.widget-button", has_text=re.compile(r"^Stop$"))
                expect(train).to_be_enabled()
                train.click()
                page.wait_for_function(  # the first epoch's plot, or an error
                    "() => window.__dashboard.plots.length >= 1"
                    " || window.__dashboard.statuses.some(s => s.includes('failed'))",
                    timeout=TRAIN_TIMEOUT * 1000)
                page.screenshot(path=str(ARTIFACTS / "02_training_started.png"), full_page=True)
                expect(status).to_contain_text(re.compile(r"finished after \d+ epoch|failed"),
                                               timeout=TRAIN_TIMEOUT * 1000)
                expect(train).to_be_enabled()
                expect(stop).to_be_disabled()
                dashboard.scroll_into_view_if_needed()
                page.screenshot(path=str(ARTIFACTS / "03_training_finished.png"), full_page=True)

                log = page.evaluate("() => window.__dashboard")
                summary = status.inner_text()
                assert f"finished after {EPOCHS} epoch(s)" in summary, (
                    f"the {EPOCHS} epochs typed into the panel were not used: {summary!r}")
                assert log["stop"] == ["enabled", "disabled"], (
                    f"Stop should be enabled while training, disabled after: {log['stop']}")
                # one status line and one plot per epoch; a busy browser may draw two updates
                # in one go, so ask for at least two of them, in order
                shown = [int(m.group(1)) for m in
                         (re.match(rf"epoch (\d+)/{EPOCHS} ", s) for s in log["statuses"]) if m]
                assert len(shown) >= 2 and shown == sorted(set(shown)) and shown[-1] == EPOCHS, (
                    f"the status did not count the epochs up to {EPOCHS}: {log['statuses']}")
                new_plots = {src for src in log["plots"] if src != old_plot}
                assert 2 <= len(new_plots) <= EPOCHS, (
                    f"the loss plot should be redrawn after every epoch ({EPOCHS}); "
                    f"saw {len(new_plots)} new images")
                assert plot.evaluate("img => img.complete && img.naturalWidth > 0"), (
                    "the final loss plot is not a loaded image")
                assert len(set(log["widths"])) >= 2 and log["widths"][-1] == "100%", (
                    f"the epoch progress bar did not fill up step by step: {log['widths']}")
                samples = dashboard.locator(":scope > .widget-html").nth(1).inner_text()
                assert SENTENCE in samples, f"no sample translations under the plot: {samples!r}"
                _check_page_clean(page, f"{TRAINING_NB} after Train", console)
                used = _kernel_eval(lab, workdir / "runtime", TRAINING_NB, {
                    "history": "len(dashboard.result.history)",
                    "lr": "dashboard.panel.configs()[1].lr",
                    "batches": "dashboard.batch_bar.max",
                    "expected_batches": f"len(s2s.make_loader(data.train, {BATCH_SIZE}, "
                                        "seed=train_cfg.seed))",
                    "saved": "str(dashboard.result.checkpoint)"})
                assert used["history"] == EPOCHS, used
                assert used["lr"] == float(LR), used
                assert used["batches"] == used["expected_batches"], (
                    f"training did not use batch_size={BATCH_SIZE}: {used}")
                assert Path(used["saved"]).parent == checkpoints, used

            # 3. notebook 06 from the file browser: run it, translate in the translate box
            with _step(page, "03_translate_box"):
                _open_notebook(page, lab, DECODING_NB, from_file_browser=True)
                _run_all(page, DECODING_NB)
                _check_page_clean(page, DECODING_NB, console)
                _check_chinese_renders(page, DECODING_NB)
                out = _panel(page).locator(".jp-OutputArea-output").filter(
                    has=page.locator("button.widget-button", has_text=re.compile(r"^Translate$")))
                expect(out).to_have_count(1)
                box = out.locator(".widget-vbox").first
                box.scroll_into_view_if_needed()
                text = box.locator(".widget-text input")
                shown = box.locator(":scope > .widget-html .widget-html-content")
                expect(text).to_have_value(SENTENCE)  # the cell's starting sentence
                # an empty sentence and Enter: the box asks for Chinese ...
                text.fill("")
                text.press("Enter")
                expect(shown).to_contain_text("请先输入一句中文")
                # ... a sentence and the Translate button: an English translation
                text.fill(SENTENCE)
                box.locator("button.widget-button", has_text="Translate").click()
                translation = shown.locator("b")
                # English words, or ⁇ for words the tiny fast-mode model does not know
                expect(translation).to_have_text(re.compile(r"[A-Za-z\u2047]"))
                english = translation.inner_text()
                assert english.replace("\u2047", "").isascii(), (
                    f"the translation is not English: {english!r}")
                tokens = shown.locator("small").inner_text()
                assert "学习" in tokens, f"the jieba tokens are not shown: {tokens!r}"
                kernel = _kernel_eval(lab, workdir / "runtime", DECODING_NB, {
                    "translation": "box.translation", "text": "box.text.value",
                    "checkpoint": "str(CHECKPOINT)"})
                assert kernel["text"] == SENTENCE, kernel
                assert kernel["translation"] == english, (kernel, english)
                assert Path(kernel["checkpoint"]).parent == checkpoints, kernel
                _check_page_clean(page, f"{DECODING_NB} after Translate", console)
                page.screenshot(path=str(ARTIFACTS / "04_translate_box.png"), full_page=True)
            browser.close()
    finally:
        (ARTIFACTS / "browser_console.log").write_text("\n".join(console), encoding="utf-8")
        if (workdir / "jupyter.log").exists():
            shutil.copy(workdir / "jupyter.log", ARTIFACTS / "jupyter.log")
    print(f"browser test: {time.monotonic() - started:.0f} s, screenshots in {ARTIFACTS}")
