# Everything runs inside .venv, created on first use from requirements.txt.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
DEMO   := checkpoints/demo.pt

.PHONY: install demo test lint lab clean

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install requirements.txt

demo: $(STAMP) ## train on the embedded HSK corpus (a few minutes on a CPU), then translate
	$(PY) -m seq2seq_lib train --data hsk --epochs 8 --out $(DEMO) --plot checkpoints/demo_loss.png
	$(PY) -m seq2seq_lib translate --checkpoint $(DEMO) 我喜欢学习机器学习。 你好，老师！ 明天我们一起去图书馆吧。

test: $(STAMP) ## the whole test suite
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check seq2seq_lib tests

lab: $(STAMP) ## open the course in JupyterLab
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf checkpoints .pytest_cache .ruff_cache
