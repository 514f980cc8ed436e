# gatewatch: the README's commands. `make help` lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install run test lint typecheck unit integration bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install gatewatch with its dev/bench extras

run: $(STAMP)  ## broker + worker + simulated Lạng Sơn traffic on 127.0.0.1 (Ctrl-C stops)
	$(BIN)/gatewatch run

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check gatewatch tests bench

typecheck: $(STAMP)  ## mypy
	$(BIN)/mypy

unit: $(STAMP)  ## fast tests only (no broker)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP)  ## tests against the embedded broker and a real worker
	$(BIN)/pytest -q tests/integration

test: $(STAMP) lint typecheck  ## ruff, mypy and the whole test suite
	$(BIN)/pytest -q

bench: $(STAMP)  ## throughput benchmark (500k events; several minutes)
	$(BIN)/python bench/throughput.py --events 500000

clean:  ## remove caches (keeps .venv)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis test-output
