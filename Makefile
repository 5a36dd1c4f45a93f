# Quick start: `make demo` certifies the embedded reference; `make test` runs our own tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
REPORT_DIR ?= conformance-report

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/pytest --target embedded --report-dir $(REPORT_DIR) -p no:cacheprovider

test: $(STAMP)
	$(BIN)/pytest -n 2 -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy conformance reports profiles mock_idp reference

bench: $(STAMP)
	$(BIN)/python scripts/benchmark.py

clean:
	rm -rf $(VENV) $(REPORT_DIR) .pytest_cache
