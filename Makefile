# Everything runs inside .venv, created on first use from requirements.txt.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
DEMO   := checkpoints/demo.pt

.PHONY: install demo test lint lab notebooks browser-deps bench clean

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install requirements.txt

demo: $(STAMP) ## train on the embedded HSK corpus (about 5 minutes on a 2-core CPU), then translate
	$(PY) -m seq2seq_lib train --data hsk --preset demo --beam 5 --out $(DEMO) --plot checkpoints/demo_loss.png
	$(PY) -m seq2seq_lib translate --checkpoint $(DEMO) --beam 5 我喜欢学习机器学习。 你好，老师！ 明天我们一起去图书馆吧。

browser-deps: ## Chromium and a CJK font for the end-to-end test (installed with apt-get when root)
	@if command -v chromium >/dev/null 2>&1 && dpkg -s fonts-noto-cjk >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium and fonts-noto-cjk with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; \
	else echo "note: chromium or fonts-noto-cjk missing and not root: the browser test will be skipped"; fi

test: $(STAMP) browser-deps ## the whole test suite
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check seq2seq_lib tests bench notebooks

notebooks: $(STAMP) ## re-run every notebook top to bottom (default settings) and store the outputs
	$(PY) tests/nbrun.py notebooks/[0-9][0-9]_*.ipynb

bench: $(STAMP) ## speed, memory and BLEU on the HSK corpus (~35 min on 2 cores); writes bench/RESULTS.md
	$(PY) bench/bench.py $(if $(REFERENCE),--reference $(REFERENCE))  # REFERENCE=the lesson's code

lab: $(STAMP) ## open the course in JupyterLab
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf checkpoints .pytest_cache .ruff_cache
