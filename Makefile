# Edgewise: `make demo` sets everything up and runs the demo (the whole story: a cloud, a fleet, a model); `make test` sets up and runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_ROOT ?= .demo
SYSTEM_PACKAGES := python3-venv python3-dev gcc
TEST_PACKAGES := mosquitto postgresql chromium
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

# The demo trains a model and runs it on the devices: the cloud, ml and inference extras (all). The dev extra
# includes them, so a current dev install needs nothing more.
$(VENV)/.installed-demo: $(BIN)/python pyproject.toml
	@if [ ! $(VENV)/.installed-dev -nt pyproject.toml ]; then $(BIN)/python -m pip install --quiet -e '.[all]'; fi
	@touch $@

setup: $(VENV)/.installed-dev

# A cloud, three hubs provisioned by claim, their telemetry, an anomaly model trained on it and deployed to them,
# and the anomalies it finds; Ctrl-C stops them all, and the next run reuses $(DEMO_ROOT).
demo: $(VENV)/.installed-demo
	@./scripts/system-packages.sh $(DEMO_PACKAGES)
	$(BIN)/edgewise demo --root $(DEMO_ROOT)

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: setup
	$(BIN)/mypy --strict src

imports: setup
	$(BIN)/lint-imports

# Four workers on two cores: most tests wait on processes and sockets, so the third and fourth keep the cores busy
# (measured: three 6:18 against 7:30-9:14 with two; later four 7:02 against 7:35-7:42 with three); a file per worker
# so that module-scoped brokers start once (tests/conftest.py hands out the longest files first and each benchmark
# run on its own). A short temporary root keeps the runtimes' Unix socket paths under the 107-byte limit. Bytecode is written even where the environment says not to: the
# suite starts hundreds of runtime and cloud processes, each of which would otherwise compile edgewise again.
pytest: setup
	@tmp=$$(mktemp -d /tmp/ewt.XXXXXX); \
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -n 4 --dist loadfile --basetemp=$$tmp; status=$$?; rm -rf $$tmp; exit $$status

test: lint typecheck imports pytest

bench: setup
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(DEMO_ROOT) .mypy_cache .pytest_cache .ruff_cache
