# gatewatch: the README's commands. `make help` lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

TOOLS := tools
TOOLS_STAMP := $(TOOLS)/.stamp

# schemathesis (the API fuzzer) in its own virtualenv, never in .venv
FUZZ_VENV := .venv-fuzz
FUZZ_STAMP := $(FUZZ_VENV)/.installed
SCHEMATHESIS := schemathesis>=4.32,<5

.PHONY: help install tools fuzz-venv fuzz-api run test lint typecheck unit integration bench bench-load clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install gatewatch with its dev/bench extras

# Debian's prometheus/alertmanager binaries, unpacked into ./tools (no root, no services).
$(TOOLS_STAMP):
	@mkdir -p $(TOOLS)/deb $(TOOLS)/root
	@cd $(TOOLS)/deb && (apt-get download prometheus prometheus-alertmanager >/dev/null 2>&1 \
	  || { echo "apt-get download failed: run 'apt-get update' (as root) and retry"; exit 1; })
	@for f in $(TOOLS)/deb/*.deb; do dpkg -x $$f $(TOOLS)/root; done
	@# Debian's alertmanager reads its templates from this fixed directory
	@D=/usr/share/prometheus/alertmanager; if [ ! -e $$D/email.tmpl ]; then \
	  (mkdir -p $$D && cp $(TOOLS)/root$$D/*.tmpl $$D/) 2>/dev/null \
	  || echo "note: could not copy templates to $$D (needs root); Alertmanager tests will fail"; fi
	@touch $(TOOLS_STAMP)
	@echo "tools: $$(ls $(TOOLS)/root/usr/bin | tr '\n' ' ')"

tools: $(TOOLS_STAMP)  ## prometheus, promtool, alertmanager, amtool from Debian into ./tools

$(FUZZ_STAMP):
	@test -d $(FUZZ_VENV) || $(PYTHON) -m venv $(FUZZ_VENV)
	$(FUZZ_VENV)/bin/pip install --quiet --upgrade pip
	$(FUZZ_VENV)/bin/pip install --quiet '$(SCHEMATHESIS)'
	@touch $(FUZZ_STAMP)

fuzz-venv: $(FUZZ_STAMP)  ## schemathesis in its own .venv-fuzz (for the API fuzz test)

fuzz-api: $(STAMP) $(FUZZ_STAMP)  ## fuzz the JSON API from its OpenAPI document (a real worker, ~20 s)
	$(BIN)/pytest -q -s tests/integration/test_api_fuzz.py

run: $(STAMP)  ## broker, worker, simulator + a live view per gate; SCENARIO=name plays a story
	$(BIN)/gatewatch run $(if $(SCENARIO),--scenario $(SCENARIO))

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check gatewatch tests bench

typecheck: $(STAMP)  ## mypy
	$(BIN)/mypy

unit: $(STAMP)  ## fast tests only (no broker)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP)  ## tests against the embedded broker and a real worker
	$(BIN)/pytest -q tests/integration

test: $(STAMP) lint typecheck  ## ruff, mypy and the whole test suite (fetches ./tools and .venv-fuzz first)
	-@$(MAKE) --no-print-directory tools
	-@$(MAKE) --no-print-directory fuzz-venv
	$(BIN)/pytest -q

bench: $(STAMP)  ## throughput benchmark (500k events; several minutes)
	$(BIN)/python bench/throughput.py --events 500000

bench-load: $(STAMP)  ## load and scale figures: saturation, latency under load, memory, gates (~9 min)
	$(BIN)/python bench/load.py

clean:  ## remove caches (keeps .venv)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis test-output
