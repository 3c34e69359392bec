# Every target installs what it needs into .venv first (python3.11+, a JDK 17+ and Maven on PATH).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install up down status demo lint test bench clean dashboard screenshots

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "caves_faust needs python3.11+ (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

up: install
	$(PY) -m caves_faust.devstack up

down: install
	$(PY) -m caves_faust.devstack down

status: install
	$(PY) -m caves_faust.devstack status

demo: install
	$(PY) -m caves_faust.devstack demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: install lint
	$(PY) -m pytest

dashboard: install
	$(PY) -m caves_faust.dashboard

# The pictures of the dashboard in docs/dashboard.md, taken by its browser test on a corpus of its own.
screenshots: install
	DASHBOARD_SCREENSHOTS=docs/dashboard $(PY) -m pytest -q tests/integration/test_dashboard.py -k chromium

bench: install
	$(PY) -m benchmarks

clean: down
	rm -rf $(VENV) .devstack caves_faust-data
