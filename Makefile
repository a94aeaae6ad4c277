# make run   - install what is needed, then web + worker + watchdog on http://127.0.0.1:8000
#              (on the embedded PostgreSQL and Valkey under var/ unless DATABASE_URL / CELERY_BROKER_URL)
# make test  - the whole suite (on DATABASE_URL / CELERY_BROKER_URL when set, else the embedded ones)
# make reset - wipe the embedded servers' data and everything else under var/ (stop make run first)
# make fuzz  - a long random hunt (minutes; new seeds every run), see docs/api.md
# make bench - every benchmark beside its floor (DROPS the DATABASE_URL database; BENCH_ARGS=--quick)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint format bench clean fuzz reset

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) -m controlplane.devrun

test: install
	$(VENV)/bin/lint-imports --no-cache
	SECRET_KEY=$${SECRET_KEY:-test-only-secret-key} $(PY) -m pytest $(PYTEST_ARGS)

# Every property and fuzz test (marked `hypothesis`) with the "fuzz" hypothesis profile: new random examples each run,
# CONTROLPLANE_FUZZ_EXAMPLES per API operation and mode; every failing operation is reported
# (and the answers by status); only ERROR logs (a 500 would be one) are shown.
fuzz: install
	SECRET_KEY=$${SECRET_KEY:-test-only-secret-key} HYPOTHESIS_PROFILE=fuzz \
	CONTROLPLANE_FUZZ_EXAMPLES=$${CONTROLPLANE_FUZZ_EXAMPLES:-500} LOG_LEVEL=$${LOG_LEVEL:-ERROR} \
	$(PY) -m pytest -m hypothesis -p no:cacheprovider -s -q --hypothesis-show-statistics \
	$(PYTEST_ARGS)

lint: install
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install
	@if [ -z "$$DATABASE_URL" ] || [ -z "$$CELERY_BROKER_URL" ]; then \
		echo "make bench measures on the servers it is given, and wipes them: set DATABASE_URL and"; \
		echo "CELERY_BROKER_URL, e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/cp_bench"; \
		echo "CELERY_BROKER_URL=redis://127.0.0.1:6379/10 make bench   (see docs/performance.md)"; \
		exit 2; fi
	$(PY) bench/run.py $(BENCH_ARGS)

reset:
	@if [ -S var/run/.s.PGSQL.5432 ] && $(PY) -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect('var/run/.s.PGSQL.5432')" 2>/dev/null; then \
		echo "The embedded servers are running (make run?): stop them first."; exit 1; fi
	rm -rf var
	@echo "var/ wiped: the next make run starts on empty embedded servers."

clean:
	rm -rf $(VENV) var .pytest_cache
