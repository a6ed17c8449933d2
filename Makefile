# Two entry points on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck slow netns chaos browser system deb clean observability completion real real-vllm real-ray

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

# Several hosts on one machine: a qwend per network namespace, joined by veth links and a
# bridge (root and iproute2; QWEND_REQUIRE_NETNS=1 turns a skip into a failure).
netns: $(STAMP)
	command -v ip >/dev/null || { apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends iproute2; }
	$(BIN)/pytest -q -m netns tests/netns

# The web console in Debian's Chromium (apt-get install chromium; no browser download).
browser: $(STAMP)
	$(BIN)/pytest -q -s -m browser tests/browser

# qwenctl's completion scripts in real bash, zsh and fish (installs the shells with
# apt-get when they are missing, so run it as root on a fresh machine).
completion: $(STAMP)
	command -v zsh >/dev/null && command -v fish >/dev/null || { apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends zsh fish; }
	QWEND_REQUIRE_SHELLS=1 $(BIN)/pytest -q tests/cli/test_completion.py

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

# Real Ray (PyPI's ray, CPU) in its own cached virtualenv, supervised by real qwends on two
# network namespaces: a Ray head and worker as a lane group, an engine lane on it (root and
# iproute2, as `make netns`; a missing venv or namespace support fails, never skips).
real-ray: $(STAMP)
	command -v ip >/dev/null || { apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends iproute2; }
	tests/integration/realray/provision.sh
	QWEND_REAL_REQUIRED=1 QWEND_REQUIRE_NETNS=1 $(BIN)/pytest -q -s -m real_ray tests/integration/realray
	# Ray's own parser reads every shipped `ray start` argv as qwend's checks do.
	$(BIN)/pytest -q -m real tests/integration/real/test_ray_argv.py

system: deb
	$(BIN)/pytest -q -m system

deb:
	packaging/build-deb

clean:
	rm -rf $(VENV) build dist *.egg-info
