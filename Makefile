# Edgewise: `make demo` sets everything up and runs the runtime demo; `make test` sets up and runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_ROOT ?= .demo
SYSTEM_PACKAGES := python3-venv python3-dev gcc
TEST_PACKAGES := mosquitto postgresql

.PHONY: demo test setup lint typecheck imports pytest bench clean

$(BIN)/python:
	@./scripts/system-packages.sh $(SYSTEM_PACKAGES)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	@./scripts/system-packages.sh $(TEST_PACKAGES)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

setup: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(BIN)/edgewise demo --root $(DEMO_ROOT)

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: setup
	$(BIN)/mypy --strict src

imports: setup
	$(BIN)/lint-imports

pytest: setup
	$(BIN)/pytest

test: lint typecheck imports pytest

bench: setup
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(DEMO_ROOT) .mypy_cache .pytest_cache .ruff_cache
