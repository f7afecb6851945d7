# Edgewise: `make demo` sets everything up and runs the fleet demo; `make test` sets up and runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_ROOT ?= .demo
SYSTEM_PACKAGES := python3-venv python3-dev gcc
TEST_PACKAGES := mosquitto postgresql
DEMO_PACKAGES := mosquitto

.PHONY: demo test setup lint typecheck imports pytest bench clean

$(BIN)/python:
	@./scripts/system-packages.sh $(SYSTEM_PACKAGES)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	@./scripts/system-packages.sh $(TEST_PACKAGES)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

# The dev extra includes the cloud extra, so a current dev install needs nothing more.
$(VENV)/.installed-cloud: $(BIN)/python pyproject.toml
	@if [ ! $(VENV)/.installed-dev -nt pyproject.toml ]; then $(BIN)/python -m pip install --quiet -e '.[cloud]'; fi
	@touch $@

setup: $(VENV)/.installed-dev

# A cloud, three devices and a staged fleet deployment; Ctrl-C stops them all.
demo: $(VENV)/.installed-cloud
	@./scripts/system-packages.sh $(DEMO_PACKAGES)
	$(BIN)/edgewise demo --root $(DEMO_ROOT)

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: setup
	$(BIN)/mypy --strict src

imports: setup
	$(BIN)/lint-imports

# Three workers on two cores: most tests wait on processes and sockets, so a third keeps the cores busy (measured:
# 6:18 against 7:30-9:14 with two); a file per worker so that module-scoped brokers start once. A short temporary root
# keeps the runtimes' Unix socket paths under the 107-byte limit.
pytest: setup
	@tmp=$$(mktemp -d /tmp/ewt.XXXXXX); \
	$(BIN)/pytest -n 3 --dist loadfile --basetemp=$$tmp; status=$$?; rm -rf $$tmp; exit $$status

test: lint typecheck imports pytest

bench: setup
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(DEMO_ROOT) .mypy_cache .pytest_cache .ruff_cache
