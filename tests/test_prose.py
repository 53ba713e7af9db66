"""What the notebooks' prose may say: the d2l-zh terms, and no measured figure typed into
markdown that no output of the same notebook shows (a re-run that changes a figure fails here
instead of silently contradicting the text)."""

import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
GLOSSARY = "## 术语表"  # the one cell that gives each English term once (notebook 01)

# alternates of the d2l-zh terms: 词元, 填充, 批量, 隐状态, 强制教学, 暂退法, 束搜索 / 束宽
ALTERNATES = {
    "补齐": "填充", "批次": "批量", "隐藏状态": "隐状态", "隐层状态": "隐状态", "教师强制": "强制教学",
    "集束搜索": "束搜索", "波束搜索": "束搜索", "束大小": "束宽", "令牌": "词元",
    r"(?i)\btokens?\b": "词元", r"(?i)\bpadding\b": "填充", r"(?i)\bdropout\b": "暂退法",
    r"(?i)\bteacher[ -]forcing\b": "强制教学", r"(?i)\bbeam search\b": "束搜索",
    r"(?i)\bhidden states?\b": "隐状态",
}

# figures in markdown that are not measurements: formula constants and names
ALLOWED_NUMBERS = {
    "01": {"3.0"},  # "HSK 3.0", the name of the syllabus
    "04": {"0.08"},  # the U(-0.08, 0.08) initialisation some tutorials use (a constant)
    "06": {"100%"},  # the 1-gram precision of "the the the" against "the cat" (by definition)
    "08": {"36.1"},  # OPUS-MT zho-eng on Tatoeba, cited from its model card (not ours to measure)
}
NUMBER = re.compile(r"(?<![\w.])(\d+\.\d+|\d+(?:\.\d+)?\s?%)")


def prose(source: str) -> str:
    """Markdown without code spans, fenced code and math: what a learner reads as claims."""
    return re.sub(r"```.*?```|`[^`]*`|\$\$.*?\$\$|\$[^$\n]*\$", " ", source, flags=re.S)


def outputs(nb: nbformat.NotebookNode) -> str:
    """Everything the notebook's code cells printed or displayed, as text."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            parts.append(out.get("text", ""))
            for kind in ("text/plain", "text/markdown", "text/html"):
                value = out.get("data", {}).get(kind, "")
                parts.append("".join(value) if isinstance(value, list) else value)
    return "\n".join(parts)


def markdown_cells(path: Path) -> list[tuple[int, str]]:
    nb = nbformat.read(path, as_version=4)
    return [(i, prose(c.source)) for i, c in enumerate(nb.cells) if c.cell_type == "markdown"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_markdown_uses_the_d2l_terms(path):
    found = [f"cell [{i}]: {m.group(0)!r} (write {term})"
             for i, text in markdown_cells(path) if not text.lstrip().startswith(GLOSSARY)
             for pattern, term in ALTERNATES.items() for m in re.finditer(pattern, text)]
    assert not found, f"{path.name}: " + "; ".join(found)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_figure_in_markdown_is_printed_by_the_notebook(path):
    nb = nbformat.read(path, as_version=4)
    shown = outputs(nb)
    printed = {n.replace(" ", "") for n in NUMBER.findall(shown)}
    allowed = ALLOWED_NUMBERS.get(path.name[:2], set())
    missing = [f"cell [{i}]: {n}" for i, text in markdown_cells(path)
               for n in (m.replace(" ", "") for m in NUMBER.findall(text))
               if n not in printed and n not in allowed and n not in shown]
    assert not missing, (f"{path.name}: figures typed into markdown that no output shows "
                         f"(print them from the cell that measures them): " + "; ".join(missing))


def test_the_glossary_gives_every_term_once():
    cells = [text for path in NOTEBOOKS for _, text in markdown_cells(path)
             if text.lstrip().startswith(GLOSSARY)]
    assert len(cells) == 1
    for term in ("词元", "填充", "批量", "隐状态", "强制教学", "暂退法", "束搜索"):
        assert term in cells[0]


def test_the_checks_catch_what_they_are_for():
    """The two checks above, on a made-up cell: an alternate term, an unprinted figure."""
    text = prose("每个批次补齐到 7.5 个 token；`dropout=0.5` 是代码，$0.25$ 是公式")
    assert [p for p in ALTERNATES if re.search(p, text)] == ["补齐", "批次", r"(?i)\btokens?\b"]
    assert NUMBER.findall(text) == ["7.5"]
