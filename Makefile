# The two commands of the README: `make demo` and `make test`. Each sets itself up on a fresh
# machine: a virtualenv in .venv with the pinned dependencies; `make test` also installs the Debian packages
# the tests use when missing (deploy/system-packages.sh: chromium, postgresql, prometheus), fetches and starts
# a real Kafka broker (deploy/kafka) for the integration tests, and stops it afterwards; it runs ruff (lint +
# format check) and mypy before the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# the compiled parts (setup.py) are rebuilt when their sources change, as the dependencies are when pinned anew
COMPILED := $(sort $(wildcard detectors/*.pyx))
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml setup.py $(COMPILED) | sha256sum | cut -c1-12)

.PHONY: demo test install clean

$(STAMP): pyproject.toml setup.py $(COMPILED)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/livewatch demo

# Debian packages the tests use (chromium, postgresql, prometheus, g++), when missing; then lint, format and types
# (seconds), then every test
test: $(STAMP)
	deploy/system-packages.sh
	@# built before the compiler was installed (a fresh machine): build the compiled parts now
	$(BIN)/python -c 'import sys, importlib; [importlib.import_module("detectors." + m) for m in sys.argv[1:]]' \
		$(notdir $(basename $(COMPILED))) 2>/dev/null || $(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -v -rA

clean:
	rm -rf $(VENV) out .pytest_cache
