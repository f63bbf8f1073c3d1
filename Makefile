# itsm: `make run` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run setup install test test-fast lint format bench bench-quick messages clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Everything `make run` does before it starts the processes; CI runs this alone too.
setup: install
	$(PY) manage.py migrate --no-input -v 0
	$(PY) manage.py collectstatic --no-input -v 0
	$(PY) manage.py load_demo
	# The demo's events are history: drop the ~500 tasks it queued for them, or the first sweeps
	# wait minutes behind them (the outbox sweep still delivers whatever is really due).
	$(PY) -m celery -A itsm purge -f
	$(PY) manage.py publish_status_page
	$(PY) manage.py ensure_admin

run: setup
	$(PY) manage.py run_all

test: install
	$(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -n 2 -m "not slow" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) manage.py makemigrations --check --dry-run
	$(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Needs gettext. The compiled .mo files are committed, so a machine without gettext still runs.
messages: install
	$(PY) manage.py makemessages -l ro --ignore '.venv/*' --ignore 'var/*' --ignore 'bench/*'
	$(PY) manage.py compilemessages -l ro --ignore '.venv/*'

bench: install
	$(PY) -m bench

bench-quick: install
	$(PY) -m bench --quick

clean:
	rm -rf var/ .pytest_cache
