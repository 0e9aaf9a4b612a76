# Two commands on a fresh machine: `make run` and `make test`. Each makes .venv as needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

## run: install, migrate the SQLite default and start the service in dev mode
run: $(VENV)/.installed
	$(BIN)/ticketing migrate
	$(BIN)/ticketing serve

# Tests run on every core (pytest-xdist, each worker with its own databases and ports);
# `make test PYTEST_ARGS="tests/mail -k refused"` runs a part in one process.
PYTEST_ARGS ?= -n auto

## test: install with the test extra, lint, check the import contract (pyproject.toml), run the whole suite
test: $(VENV)/.installed-test
	bash scripts/ensure-chromium
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## bench: print throughput and latency figures (see bench/README.md)
bench: $(VENV)/.installed-test
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache
