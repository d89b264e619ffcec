# CASPIAN: `make run` starts the system locally, `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-fast demo proto lint fmt format-check typecheck tools clean bench-optimizer bench-hub bench-hub-replicas bench-dispatch bench-console evaluate evaluate-interruptible reliability kind-up

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall when the dependency pins change.
$(STAMP): $(VENV)/bin/python pyproject.toml constraints.txt
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Command-line tools the tests drive as real clients: kubectl and prometheus (Debian packages).
tools:
	@bash tools/install_tools.sh

proto: $(STAMP)
	$(PY) tools/gen_protos.py

run: $(STAMP)
	$(PY) -m services.launcher $(ARGS)

demo: $(STAMP)
	$(PY) -m services.launcher --demo $(ARGS)

test: $(STAMP) tools
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# Everything but process, end-to-end, reliability and long simulation tests (marked slow), on one pytest-xdist
# worker per core (FAST_WORKERS): 42 s on 2 quiet cores. `make test` stays serial (its timing tests share
# the cores with nothing else).
FAST_WORKERS ?= auto
test-fast: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow" -n $(FAST_WORKERS) $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .

fmt: $(STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

format-check: $(STAMP)
	$(PY) -m ruff format --check .

# Static types of services/ and clusters/ (settings in pyproject.toml, [tool.mypy]); the generated .pyi type the messages.
typecheck: $(STAMP)
	$(PY) -m mypy

bench-optimizer: $(STAMP)
	$(PY) -m bench.optimizer

bench-hub: $(STAMP)
	$(PY) -m bench.hub

# Submission with 1, 2 and 3 hub replicas on PostgreSQL against as many empty handlers (bench/hub_replicas.py).
bench-hub-replicas: $(STAMP) tools
	$(PY) -m bench.hub_replicas

bench-dispatch: $(STAMP)
	$(PY) -m bench.dispatch

# The console's timeline in headless Chromium: 5,000 jobs over 3 zones, 1,000 changes, page weight.
bench-console: $(STAMP) tools
	$(PY) -m bench.console

evaluate: $(STAMP)
	$(PY) -m bench.evaluate

# Issue 19's cells (bench.evaluation.matrix.INTERRUPTIBLE_SETTINGS), apart from `make evaluate`: 20-70 min each.
INTERRUPTIBLE_SETTINGS = default/slack3/load50/int50,default/slack3/load50/int100,default/slack6/load50/int50,default/slack6/load50/int100
evaluate-interruptible: $(STAMP)
	$(PY) -m bench.evaluate_cells --full --settings $(INTERRUPTIBLE_SETTINGS) --seeds 0 --forecasts perfect,dacf \
		--policies caspian,ibm_caspian,greedy_carbon,temporal_only,round_robin --oracle-limit 300 \
		--out bench/results/evaluation.interruptible

reliability: $(STAMP) tools
	RELIABILITY_FULL=1 $(PY) -m pytest -q -p no:cacheprovider tests/reliability

kind-up: $(STAMP)
	bash clusters/kind-up.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
