# Tahseel: two commands on a fresh machine with Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test serve load lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,load]'
	touch $(STAMP)

## Start every simulator and the reference service, run the whole scenario suite, print the table.
run: $(STAMP)
	$(BIN)/tahseel run scenarios/

## Run the test suite (unit tests and integration tests on loopback) and ruff.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

## Start everything on the default ports (8000-8004) until Ctrl-C.
serve: $(STAMP)
	$(BIN)/tahseel serve

## Load-test the cash path for 30 s against `tahseel serve` (started and stopped here).
load: $(STAMP)
	$(BIN)/tahseel load --run-time 30s

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .tahseel .pytest_cache
