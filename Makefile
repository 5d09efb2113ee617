# One entry point for people and CI. Every target installs what it needs first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup chromium run test coverage lint bench screenshots clean

setup: $(STAMP) chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## chromium: the dashboard's browser tests drive Debian's headless Chromium (Playwright with
## executable_path, never its own browser download); installed as root when missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
		else \
			echo "chromium is missing: sudo apt-get install chromium (the browser tests need it)"; \
		fi; }

## run: a demo on an embedded SQLite file, no set-up needed
run: setup
	$(BIN)/python examples/demo.py

## test: the whole suite against a throwaway PostgreSQL (started by the tests) and SQLite.
## In TEST_WORKERS processes (pytest-xdist; each starts its own PostgreSQL): most of the suite's
## time is spent waiting on the child processes it starts. Bytecode is compiled first because
## those children (hundreds of `zart ...` commands) would otherwise each compile Zart from
## source where PYTHONDONTWRITEBYTECODE is set, as it is on CI.
TEST_WORKERS ?= 3
test: setup
	$(BIN)/python -m compileall -q zart tests examples
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

## coverage: the whole suite with line coverage of zart/repositories (the storage layer).
## A directory, not the package name: with --cov=zart.repositories (coverage 7.17, SQLAlchemy
## 2.1.9) every statement fails in SQLAlchemy's compiled cache-key code with "TypeError:
## 'InternalTraversal' object is not callable"; measured by directory, it runs as make test.
coverage: setup
	$(BIN)/python -m compileall -q zart tests examples
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup \
		--cov=zart/repositories --cov-report=term-missing

## lint: ruff, mypy --strict and the import layering contract
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## bench: Zart vs a bare INSERT+COMMIT vs DBOS Transact, on PostgreSQL and SQLite (~10 minutes).
## Its own virtualenv, so DBOS never reaches the test environment.
BENCH_VENV  := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP): pyproject.toml bench/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	echo '*' > $(BENCH_VENV)/.gitignore
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e '.[sqlite,metrics]' -r bench/requirements.txt
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/run.py

## screenshots: the dashboard's browser tests, saving each screen to docs/images/
screenshots: setup
	ZART_DASHBOARD_SCREENSHOTS=docs/images $(BIN)/python -m pytest -q \
		tests/acceptance/test_dashboard_browser.py -k sqlite

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache demo.db demo.db-*
