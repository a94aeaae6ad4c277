# make run   - install what is needed, then web + worker + watchdog on http://127.0.0.1:8000
# make test  - the whole suite (on DATABASE_URL / CELERY_BROKER_URL when they are set)
# make fuzz  - a long random hunt (minutes; new seeds every run), see docs/api.md
# make bench - every benchmark beside its floor (DROPS the DATABASE_URL database; BENCH_ARGS=--quick)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint format bench clean fuzz

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
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache
