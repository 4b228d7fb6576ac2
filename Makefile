# The README's two Quick-start commands. Each creates .venv if absent and installs into it.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: bench test lint install

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[dev,ray,mujoco]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

bench: $(STAMP)
	$(VENV)/bin/metarl-bench sweep quick

test: $(STAMP)
	$(VENV)/bin/python -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
