# Action Flow Workbench: `make run` for the demo, `make test` for the suite.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
# `make run` is a local demo: debug on, SQLite, background work in-process.
RUN_ENV := DJANGO_DEBUG=1 DJANGO_SECURE_COOKIES=0

.PHONY: run test test-fast bench lint typecheck venv migrate clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $@

venv: $(BIN)/.installed

migrate: venv
	$(RUN_ENV) $(BIN)/python manage.py migrate --noinput

run: migrate
	$(RUN_ENV) $(BIN)/python manage.py seed_demo --url http://127.0.0.1:$(PORT)
	$(RUN_ENV) WORKBENCH_INPROCESS_BEAT=1 $(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

# The whole suite. With DATABASE_URL and CELERY_BROKER_URL set it also runs the tests
# that need PostgreSQL, the broker and a real Celery worker (CI always sets them).
test: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest

test-fast: venv
	$(BIN)/pytest -x -q -m "not browser"

lint: venv
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

bench: venv
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) db.sqlite3* staticfiles .pytest_cache .mypy_cache .ruff_cache
