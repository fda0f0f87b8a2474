# Dropsight: `make run` sets up and runs the service, `make test` sets up and runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
WATCH ?= $(HOME)/Pictures/Dropsight

.PHONY: run test check lint typecheck pytest

$(VENV)/.run-deps: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[models]'
	touch $@

$(VENV)/.dev-deps: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.run-deps

## run: install into .venv and run the service on $(WATCH) (override: make run WATCH=~/Photos)
run: $(VENV)/.run-deps
	mkdir -p "$(WATCH)"
	$(BIN)/dropsight service --watch "$(WATCH)"

## test: install dev tools into .venv, then lint, type-check and run the whole test suite
test: $(VENV)/.dev-deps lint typecheck pytest

check: test

lint: $(VENV)/.dev-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev-deps
	$(BIN)/mypy

pytest: $(VENV)/.dev-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)
