# labelwise: the two commands are `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
SUDO   := $(shell [ "$$(id -u)" -ne 0 ] && command -v sudo >/dev/null && echo sudo)
PYTEST_ARGS ?=

.PHONY: help install install-dev system-deps services demo test bench-io bench-curation clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(PY):
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

system-deps:  ## Debian packages: Fashion-MNIST (demo, tests, benchmarks)
	@if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist; \
	fi

install: $(PY) system-deps  ## Install labelwise into .venv (torch pinned by constraints.txt)
	$(PIP) install -q -c constraints.txt -e .

install-dev: $(PY) system-deps  ## Install labelwise with the test tools
	$(PIP) install -q -c constraints.txt -e '.[dev]'

services:  ## Start the local PostgreSQL if it is installed and stopped
	@if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then \
		command -v pg_ctlcluster >/dev/null && \
		pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -1) main start || true; \
	fi

demo: install  ## Workspace on SQLite + Fashion-MNIST + web app on 127.0.0.1:8000
	$(VENV)/bin/labelwise demo demo-workspace

test: install-dev services  ## Run the test suite on SQLite and PostgreSQL
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

bench-io:  ## Import/export and pagination benchmarks (see docs/benchmarks.md)
	$(PY) benchmarks/io.py

bench-curation: install-dev  ## Auto-Curate against random, k-center, TypiClust and cleanlab
	cd benchmarks && ../$(PY) curation.py

clean:
	rm -rf $(VENV) demo-workspace .pytest_cache
