# Two commands do all the set-up: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-from-lock

.PHONY: run test lint lock bench clean

$(STAMP): requirements/toolkit.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/toolkit.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

## run: serve the bot locally with the Dockerfile's gunicorn command and print its URL
run: $(STAMP)
	$(BIN)/opsctl serve

## test: the whole test suite
test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## lock: regenerate both lock files from pyproject.toml
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra bot --python-version 3.11 --generate-hashes -o requirements/bot.txt
	$(BIN)/uv pip compile pyproject.toml --extra bot --extra toolkit --extra dev --python-version 3.11 --generate-hashes -o requirements/toolkit.txt

bench: $(STAMP)
	bench/webhook.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis
