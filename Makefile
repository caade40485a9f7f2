# Two commands for a newcomer: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck unit papers clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

PLOT_STAMP := $(VENV)/.installed-plot

$(PLOT_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,plot]'
	touch $(PLOT_STAMP)

demo: $(STAMP)
	$(BIN)/blindsum simulate --clients 100 --dim 100000 --dropout 0.1 --drop-stage masked --seed 1
	$(BIN)/python examples/quickstart/run.py

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest -q

# Every reproduction under papers/ at its quick size; tables and PNGs in papers/*/out/.
# Flower's baseline needs its own venv (FLWR_PYTHON, default /work/venvs/flwr/bin/python)
# and fails loudly without it; `make papers PAPERS_SKIP_FLOWER=1` leaves it out.
papers: $(PLOT_STAMP)
	$(BIN)/python -m papers.bonawitz2017.reproduce --quick
	$(BIN)/python -m papers.bell2020.reproduce --quick
	@if [ -f papers/abadi2016/reproduce.py ]; then $(BIN)/python papers/abadi2016/reproduce.py; fi
	@if [ -f papers/kairouz2021/reproduce.py ]; then $(BIN)/python papers/kairouz2021/reproduce.py --quick; fi
	@if [ -z "$(PAPERS_SKIP_FLOWER)" ]; then $(BIN)/python -m papers.flower_baseline.reproduce --quick; fi

test: lint typecheck unit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
