# Two commands: `make run` (the system on the embedded default) and `make test` (everything CI runs).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export B40_ADMIN_TOKEN ?= dev-admin-token
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint install

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

run: $(BIN)/.installed
	$(BIN)/b40 serve --host $(HOST) --port $(PORT)

test: $(BIN)/.installed
	bash scripts/test.sh

lint: $(BIN)/.installed
	bash scripts/lint.sh
