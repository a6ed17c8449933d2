# Two entry points on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck slow chaos system deb clean real real-vllm

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

# Faults under load and fuzzing: a few minutes; prints the per-fault table.
chaos: $(STAMP)
	$(BIN)/pytest -q -m chaos tests/chaos

# A real `transformers serve` (tiny random Qwen3.5 made locally, CPU) in its own cached
# virtualenv, then the tests against it: backend argument parsing of the shipped lane
# files, and qwend supervising, routing to and promoting real lanes.
real: $(STAMP)
	tests/integration/real/provision.sh
	QWEND_REAL_REQUIRED=1 $(BIN)/pytest -q -s -m 'real and not real_vllm' tests/integration/real

# The same, plus vLLM for the CPU (a quarter of an hour to install, cached): the vLLM
# lane files of the presets are then parsed by vLLM's own `vllm serve` parser too.
real-vllm: $(STAMP)
	QWEND_REAL_VLLM=1 tests/integration/real/provision.sh
	QWEND_REAL_REQUIRED=1 $(BIN)/pytest -q -s -m real tests/integration/real

system: deb
	$(BIN)/pytest -q -m system

deb:
	packaging/build-deb

clean:
	rm -rf $(VENV) build dist *.egg-info
