# rtbridge: the two commands the README starts with are `make run` and `make test`.
# Everything is installed into a dedicated virtual environment (.venv): our top-level
# `sip` package would shadow PyQt's `sip` in a shared site-packages.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test install peers lint typecheck unit bench clean

run: install
	$(BIN)/rtbridge serve $(ARGS)

# The full test command: installs Python and Debian peers when missing, then lint, types, tests.
test: install peers lint typecheck unit

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

peers:
	bash tests/peers/install.sh

lint: install
	$(BIN)/ruff check bridge sip media tests
	$(BIN)/ruff format --check bridge sip media tests

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/rtbridge bench $(NAME) --json

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
