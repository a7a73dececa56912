# rtbridge: the two commands the README starts with are `make run` and `make test`.
# Everything is installed into a dedicated virtual environment (.venv): our top-level
# `sip` package would shadow PyQt's `sip` in a shared site-packages.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test test-fast install peers lint typecheck unit bench clean

run: install
	$(BIN)/rtbridge serve $(ARGS)

# The full test command: installs Python and Debian peers when missing, then lint, types, tests.
test: install peers lint typecheck unit

# The fast tier for the inner loop: lint, types, and every test that needs no real peer
# (unit, fixture and paired tests: a couple of minutes). See tests/conftest.py.
test-fast: install lint typecheck
	$(BIN)/python -m pytest -m "not peer" -q $(PYTEST_ARGS)

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
