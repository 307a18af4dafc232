# Two commands do all the set-up: `make test` and `make run` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-from-lock
# The offline advisory database beside the project, when there is one (CI has it).
ifneq ($(wildcard ../shared/advisories/vulns),)
export OPSCTL_ADVISORIES ?= $(abspath ../shared/advisories)
endif

.PHONY: run serve test lint lock bench clean

# The venv's own pip (23.2 on Python 3.11) first installs the locked pip and setuptools, so
# what gets installed never depends on the machine's pip or on what PyPI has that day.
$(STAMP): requirements/bootstrap.txt requirements/toolkit.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements/bootstrap.txt
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/toolkit.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

## run: start the bot (the Dockerfile's gunicorn command), verify it through every gate, stop it
run: $(STAMP)
	$(BIN)/opsctl verify --env local

## serve: serve the bot on 127.0.0.1:10000 until Ctrl-C
serve: $(STAMP)
	$(BIN)/opsctl serve

## test: the whole test suite, run as the tests gate (P2.5) runs it, pytest's output shown as it
## comes; its pass is kept, and `make run` with nothing changed reuses it instead of running again
test: $(STAMP)
	$(BIN)/opsctl check tests --fresh --show-output

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## lock: regenerate the lock files from pyproject.toml (and pip's own from requirements/bootstrap.in)
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra bot --python-version 3.11 --generate-hashes -o requirements/bot.txt
	$(BIN)/uv pip compile pyproject.toml --extra bot --extra toolkit --extra dev --python-version 3.11 --generate-hashes -o requirements/toolkit.txt
	$(BIN)/uv pip compile requirements/bootstrap.in --constraint requirements/toolkit.txt --python-version 3.11 --generate-hashes -o requirements/bootstrap.txt

## bench: every benchmark in bench/, each to the end; exit 1 naming those whose bar was missed
BENCHES := webhook webhook_floor webhook_redis memory verify_concurrency verify_envs startup secrets audit_offline warmup notion
bench: $(STAMP)
	@missed=""; for b in $(BENCHES); do echo "== bench/$$b.sh"; bench/$$b.sh || missed="$$missed $$b"; done; \
	if [ -n "$$missed" ]; then echo "bench: bar missed (or could not measure):$$missed"; exit 1; fi; \
	echo "bench: every bar held"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis
