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
# process-level checks that the main run already covers, and the browser tests, which check a page's
# rendering rather than Airflow (markers are declared in pyproject.toml).
FLOOR_MARKERS := not e2e and not packaging and not latest_airflow and not benchmark and not browser

# The official SDK's source distribution, for its own test suite: tests/testing/test_sdk_suite.py runs the
# SDK's tests/api_resources against the emulator. The wheel has no tests, hence the sdist. It is pinned by
# version and by hash, because that test's tables classify exactly these tests. The version must match the
# luma-agents pin in pyproject.toml, and that test checks it does.
LUMA_AGENTS_VERSION := 0.5.0
LUMA_AGENTS_SDIST_SHA256 := 2052f6fee00a99af6ac9a79bff27ce8ca6869d8a28bbb97f408b7b67efee3992
SDK_SDIST := .cache/luma-agents-$(LUMA_AGENTS_VERSION)

# Reads the installed version without importing Airflow (which takes seconds).
export PRINT_AIRFLOW_VERSION := import importlib.metadata as m; print(m.version("apache-airflow"))

# Never let uv fetch a Python build: the machine's own interpreter is the one we test with.
export UV_PYTHON_DOWNLOADS := never

.PHONY: help demo test lint typecheck unit floor venv floor-venv sdk-sdist browser clean

help:
	@echo "make demo   set everything up, then run the demo (scripts/demo.py; options: DEMO_ARGS=...)"
	@echo "make test   set everything up, then lint, type-check, run the suite, and re-run it on the Airflow floor"
	@echo "make clean  remove the virtual environments, the downloaded SDK sdist and build leftovers"

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
sdk-sdist: $(SDK_SDIST)/.unpacked

# The bootstrap environment's pip does the fetch: uv has no `pip download`, and the uv-made venvs have no pip.
# `--no-binary luma-agents` asks for the sdist, and only for this package. The tools that build its metadata
# may still come as wheels. The archive is unpacked to a temporary directory and moved into place only once
# it is whole, so an interrupted run never leaves a half-unpacked tree that looks finished.
$(SDK_SDIST)/.unpacked: | $(UV)
	@echo "== fetching the luma-agents $(LUMA_AGENTS_VERSION) sdist (for its test suite) into $(SDK_SDIST)"
	rm -rf $(SDK_SDIST) $(SDK_SDIST).tmp
	mkdir -p $(SDK_SDIST).tmp
	echo "luma-agents==$(LUMA_AGENTS_VERSION) --hash=sha256:$(LUMA_AGENTS_SDIST_SHA256)" > $(SDK_SDIST).tmp/requirement.txt
	$(BOOTSTRAP)/bin/python -m pip download --quiet --disable-pip-version-check --no-deps \
		--no-binary luma-agents --require-hashes -r $(SDK_SDIST).tmp/requirement.txt -d $(SDK_SDIST).tmp
	tar -xzf $(SDK_SDIST).tmp/luma_agents-$(LUMA_AGENTS_VERSION).tar.gz -C $(SDK_SDIST).tmp
	mv $(SDK_SDIST).tmp/luma_agents-$(LUMA_AGENTS_VERSION) $(SDK_SDIST)
	rm -rf $(SDK_SDIST).tmp
	touch $@

# Debian's Chromium, for the tests marked `browser` (tests/browser.py drives it over the DevTools protocol, so
# no chromedriver). Installed only where the machine allows it, as root with apt-get (CI's clean clone); anywhere
# else this says why and goes on, and those tests skip with the same reason. Silent once Chromium is there.
# `apt-get update` first: a clean machine may have no package lists, or stale ones naming removed versions.
# --no-install-recommends: the recommends (sandbox helper, desktop extras) serve a desktop, not a headless test.
CHROMIUM_PACKAGE := chromium
browser:
	@if command -v chromium >/dev/null 2>&1; then exit 0; \
	elif [ "$$(id -u)" != 0 ]; then echo "== no Chromium, and not root to install it: the browser tests will skip"; \
	elif ! command -v apt-get >/dev/null 2>&1; then echo "== no Chromium, and no apt-get: the browser tests will skip"; \
	else \
		echo "== installing Debian's $(CHROMIUM_PACKAGE) for the browser tests (about 100 MB)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		if time (apt-get update -qq && apt-get install -y -qq --no-install-recommends $(CHROMIUM_PACKAGE) >/dev/null); \
		then chromium --version; \
		else echo "== apt-get could not install $(CHROMIUM_PACKAGE): the browser tests will skip"; fi; \
	fi

# Options go through DEMO_ARGS: make demo DEMO_ARGS=--keep-running (scripts/demo.py --help lists them).
demo: $(VENV)/.installed
	$(VENV)/bin/python scripts/demo.py $(DEMO_ARGS)

lint: $(VENV)/.installed
	@echo "== ruff"
	time $(VENV)/bin/ruff check .
	time $(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed
	@echo "== mypy"
	time $(VENV)/bin/mypy

# pytest's exit code 5 ("no tests collected") fails the target like any other error.
unit: $(VENV)/.installed $(SDK_SDIST)/.unpacked browser
	@echo "== pytest (full suite, Airflow $$($(VENV)/bin/python -c "$$PRINT_AIRFLOW_VERSION"))"
	time $(VENV)/bin/pytest

floor: $(FLOOR_VENV)/.installed $(SDK_SDIST)/.unpacked
	@echo "== pytest on the floor (Airflow $$($(FLOOR_VENV)/bin/python -c "$$PRINT_AIRFLOW_VERSION"))"
	time $(FLOOR_VENV)/bin/pytest -m "$(FLOOR_MARKERS)"

# Sequential on purpose: each phase is reported and the first failure stops the run.
test: $(VENV)/.installed
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory typecheck
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory floor

clean:
	rm -rf $(BOOTSTRAP) $(VENV) $(FLOOR_VENV) .cache dist build .pytest_cache .mypy_cache .ruff_cache
