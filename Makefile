# Everything a fresh machine needs, from Python, git and make alone: `make demo` and `make test`.
#
# Three virtual environments, each a file target so a second run only re-installs when pyproject.toml
# (or the floor constraints) changed:
#   .venv-bootstrap  pip-installs uv, so the machine needs no uv of its own
#   .venv            the development environment: newest Airflow the pins allow, dev + openlineage extras
#   .venv-floor      the lowest supported Airflow (the lower bound in pyproject.toml) for the floor check

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION ?= 0.13.9
EXTRAS := dev,openlineage

BOOTSTRAP := .venv-bootstrap
UV := $(BOOTSTRAP)/bin/uv
VENV := .venv
FLOOR_VENV := .venv-floor
FLOOR_CONSTRAINTS := scripts/floor-constraints.txt

# The floor run leaves out what only makes sense against the newest Airflow, plus the slow
# process-level checks that the main run already covers (markers are declared in pyproject.toml).
FLOOR_MARKERS := not e2e and not packaging and not latest_airflow and not benchmark

# Reads the installed version without importing Airflow (which takes seconds).
export PRINT_AIRFLOW_VERSION := import importlib.metadata as m; print(m.version("apache-airflow"))

# Never let uv fetch a Python build: the machine's own interpreter is the one we test with.
export UV_PYTHON_DOWNLOADS := never

.PHONY: help demo test lint typecheck unit floor venv floor-venv clean

help:
	@echo "make demo   set everything up, then run the demo (scripts/demo.py)"
	@echo "make test   set everything up, then lint, type-check, run the suite, and re-run it on the Airflow floor"
	@echo "make clean  remove the virtual environments and build leftovers"

$(UV):
	$(PYTHON) -m venv $(BOOTSTRAP)
	$(BOOTSTRAP)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.installed: pyproject.toml | $(UV)
	@echo "== creating/updating $(VENV)"
	@# `uv venv` on an existing directory would wipe it: create only when missing, else update in place.
	test -x $(VENV)/bin/python || $(UV) venv --quiet --python $(PYTHON) $(VENV)
	VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

$(FLOOR_VENV)/.installed: pyproject.toml $(FLOOR_CONSTRAINTS) scripts/airflow_floor.py | $(UV)
	@echo "== creating/updating $(FLOOR_VENV) (apache-airflow==$$($(PYTHON) scripts/airflow_floor.py))"
	test -x $(FLOOR_VENV)/bin/python || $(UV) venv --quiet --python $(PYTHON) $(FLOOR_VENV)
	VIRTUAL_ENV=$(FLOOR_VENV) $(UV) pip install --quiet -e ".[$(EXTRAS)]" \
		"apache-airflow==$$($(PYTHON) scripts/airflow_floor.py)" --constraint $(FLOOR_CONSTRAINTS)
	touch $@

venv: $(VENV)/.installed
floor-venv: $(FLOOR_VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/python scripts/demo.py

lint: $(VENV)/.installed
	@echo "== ruff"
	time $(VENV)/bin/ruff check .
	time $(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed
	@echo "== mypy"
	time $(VENV)/bin/mypy

# pytest's exit code 5 ("no tests collected") fails the target like any other error.
unit: $(VENV)/.installed
	@echo "== pytest (full suite, Airflow $$($(VENV)/bin/python -c "$$PRINT_AIRFLOW_VERSION"))"
	time $(VENV)/bin/pytest

floor: $(FLOOR_VENV)/.installed
	@echo "== pytest on the floor (Airflow $$($(FLOOR_VENV)/bin/python -c "$$PRINT_AIRFLOW_VERSION"))"
	time $(FLOOR_VENV)/bin/pytest -m "$(FLOOR_MARKERS)"

# Sequential on purpose: each phase is reported and the first failure stops the run.
test: $(VENV)/.installed
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory typecheck
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory floor

clean:
	rm -rf $(BOOTSTRAP) $(VENV) $(FLOOR_VENV) dist build .pytest_cache .mypy_cache .ruff_cache
