# Two entry points on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck slow chaos browser system deb clean observability

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/qwend --demo

test: $(STAMP) build/typing/qwen_tui
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP) build/typing/qwen_tui
	$(BIN)/mypy

# mypy sees the TUI under its import name through this link.
build/typing/qwen_tui:
	mkdir -p build/typing
	ln -sfn ../../tui build/typing/qwen_tui

slow: $(STAMP)
	$(BIN)/pytest -q -m slow

# /metrics, alert rules and the Grafana dashboard, checked with promtool (apt: prometheus).
observability: $(STAMP)
	$(BIN)/pytest -q tests/observability

# Faults under load and fuzzing: a few minutes; prints the per-fault table.
chaos: $(STAMP)
	$(BIN)/pytest -q -m chaos tests/chaos

# The web console in Debian's Chromium (apt-get install chromium; no browser download).
browser: $(STAMP)
	$(BIN)/pytest -q -s -m browser tests/browser

system: deb
	$(BIN)/pytest -q -m system

deb:
	packaging/build-deb

clean:
	rm -rf $(VENV) build dist *.egg-info
