# Two commands for a newcomer: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck unit flower-tests papers flower-venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

# The whole suite runs the optional extras' tests too: PyTorch (the CPU build, pinned to
# 2.13.0; PyPI's Linux wheel of torch pulls CUDA libraries of several GB) and Opacus, for
# the model adapters and the Opacus example. PyTorch's CPU index offers 2.13.0+cpu, which
# pip prefers to PyPI's 2.13.0 and which satisfies the extra's torch==2.13.0.
TEST_STAMP := $(VENV)/.installed-test
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -c "import torch, sys; sys.exit(torch.__version__ != '2.13.0+cpu')" 2>/dev/null \
		|| $(BIN)/python -m pip install -q torch==2.13.0 --extra-index-url $(TORCH_CPU_INDEX)
	$(BIN)/python -m pip install -q -e '.[dev,torch]'
	touch $(TEST_STAMP)

PLOT_STAMP := $(VENV)/.installed-plot

$(PLOT_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,plot]'
	touch $(PLOT_STAMP)

demo: $(STAMP)
	$(BIN)/blindsum simulate --clients 100 --dim 100000 --dropout 0.1 --drop-stage masked --seed 1
	$(BIN)/python examples/quickstart/run.py

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

unit: $(TEST_STAMP)
	$(BIN)/python -m pytest -q

FLWR_VENV := .venv-flwr
FLWR_STAMP := $(FLWR_VENV)/.installed-blindsum-flower

# Flower in its own virtual environment, blindsum installed there with its `flower` extra (which
# checks that the extra resolves: flwr 1.42 needs protobuf 6, which blindsum's generated code
# supports as well as 7), kept apart from .venv so the dev tools don't carry Flower's web stack:
# for the side-by-side baseline and for the Flower interoperability tests.
flower-venv: $(FLWR_STAMP)

$(FLWR_STAMP): pyproject.toml
	$(PYTHON) -m venv $(FLWR_VENV)
	$(FLWR_VENV)/bin/python -m pip install -q --upgrade pip
	$(FLWR_VENV)/bin/python -m pip install -q -e '.[flower]' flwr==1.42.0 'pytest>=8'
	touch $(FLWR_STAMP)

flower-tests: $(FLWR_STAMP)
	$(FLWR_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/strategies/test_strategies_flower.py

# Every reproduction under papers/ at its quick size; tables and PNGs in papers/*/out/.
# Flower's baseline installs flwr into .venv-flwr first (FLWR_PYTHON overrides it);
# `make papers PAPERS_SKIP_FLOWER=1` leaves it out.
papers: $(PLOT_STAMP)
	@if [ -z "$(PAPERS_SKIP_FLOWER)" ]; then $(MAKE) --no-print-directory flower-venv; fi
	$(BIN)/blindsum bench --quick $(if $(PAPERS_SKIP_FLOWER),--skip-flower)

test: lint typecheck unit flower-tests

clean:
	rm -rf $(VENV) $(FLWR_VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
