# Two commands for a newcomer: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck unit papers flower-venv clean

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

FLWR_VENV := .venv-flwr
FLWR_STAMP := $(FLWR_VENV)/.installed

# Flower in its own virtual environment, for the side-by-side baseline only.
flower-venv: $(FLWR_STAMP)

$(FLWR_STAMP):
	$(PYTHON) -m venv $(FLWR_VENV)
	$(FLWR_VENV)/bin/python -m pip install -q --upgrade pip
	$(FLWR_VENV)/bin/python -m pip install -q flwr==1.42.0
	touch $(FLWR_STAMP)

# Every reproduction under papers/ at its quick size; tables and PNGs in papers/*/out/.
# Flower's baseline installs flwr into .venv-flwr first (FLWR_PYTHON overrides it);
# `make papers PAPERS_SKIP_FLOWER=1` leaves it out.
papers: $(PLOT_STAMP)
	$(BIN)/python -m papers.bonawitz2017.reproduce --quick
	$(BIN)/python -m papers.bell2020.reproduce --quick
	@if [ -f papers/abadi2016/reproduce.py ]; then $(BIN)/python papers/abadi2016/reproduce.py; fi
	@if [ -f papers/kairouz2021/reproduce.py ]; then $(BIN)/python papers/kairouz2021/reproduce.py --quick; fi
	@if [ -z "$(PAPERS_SKIP_FLOWER)" ]; then $(MAKE) --no-print-directory flower-venv && $(BIN)/python -m papers.flower_baseline.reproduce --quick; fi

test: lint typecheck unit

clean:
	rm -rf $(VENV) $(FLWR_VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
