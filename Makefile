# The one way in, for people and for CI. `make help` lists the targets.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help install run demo production-local production-tools test test-unit test-integration lint \
	reliability \
	format docs bench soak downstream-tools history-size loadtest recording mutation clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python >= 3.11 is required")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv if missing and install the project into it

run: install ## run the whole pipeline against the live venues (embedded Kafka and PostgreSQL)
	$(BIN)/rates up --source live

demo: install ## run the whole pipeline against the local venue simulator (no internet needed)
	$(BIN)/rates up --source simulator

production-local: install production-tools ## the production topology without Docker: nginx :8080, Prometheus :9090
	$(BIN)/rates production-local

# RUNLEVEL=1: the packages' own services (nginx on :80, Prometheus on :9090) are not started.
production-tools: ## install Debian's nginx and Prometheus when missing (production-local, its test)
	@missing=""; for tool in nginx prometheus; do \
		PATH="$$PATH:/usr/sbin:/sbin" command -v $$tool >/dev/null || missing="$$missing $$tool"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian's$$missing"; \
		(export DEBIAN_FRONTEND=noninteractive RUNLEVEL=1; apt-get update -qq \
			&& apt-get install -y -qq --no-install-recommends $$missing >/dev/null) \
			|| { echo "cannot install$$missing: apt-get install$$missing"; exit 1; }; \
	fi

# kcat 1.7.1 (librdkafka 2.0.2): the README says what it can do with the embedded broker.
downstream-tools: ## install Debian's kcat when missing (its test against the embedded broker)
	@command -v kcat >/dev/null || { echo "installing Debian's kcat"; \
		(export DEBIAN_FRONTEND=noninteractive; apt-get update -qq \
			&& apt-get install -y -qq --no-install-recommends kcat >/dev/null) \
		|| { echo "cannot install kcat: apt-get install kcat"; exit 1; }; }

test: install lint ## lint, type-check and run every test tier
	$(BIN)/pytest

test-unit: install ## the fast tiers only (unit and golden frames)
	$(BIN)/pytest tests/unit tests/golden

test-integration: install ## the integration tier (real Tansu, PostgreSQL and processes)
	$(BIN)/pytest tests/integration

# The chaos tier, and the integration tests that kill the broker, a worker and PostgreSQL.
RELIABILITY_TESTS := tests/chaos tests/integration/test_recycle.py tests/integration/test_up.py \
	tests/integration/test_history.py
reliability: install ## run the reliability tests, record their rows (docs/reliability.json), render the README table
	RATES_RELIABILITY_RECORD=1 $(BIN)/pytest $(RELIABILITY_TESTS)
	$(BIN)/python -m devtools.reliability --write

# One mutant at a time under nice (one core), in a temporary copy of the tree: 5 to 15 min.
mutation: install ## mutation testing of the pure cores (failover, normalize): >= 90% killed, report in mutation-results/
	$(BIN)/python -m devtools.mutation

lint: install ## ruff and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

docs: install ## regenerate .env.example and the README configuration table from the code
	$(BIN)/python -m rates.envdoc --write

bench: install ## run the benchmarks; numbers are printed and saved in bench-results/
	@# The API benchmark's load generator is h2load (Debian's nghttp2-client).
	@command -v h2load >/dev/null || apt-get install -y -qq nghttp2-client >/dev/null \
		|| (apt-get update -qq && apt-get install -y -qq nghttp2-client >/dev/null) \
		|| echo "h2load is missing: install nghttp2-client"
	$(BIN)/python -m benchmarks

SOAK_DURATION ?= 2h
soak: install ## the demo stack for SOAK_DURATION (default 2h), sampled: CSV, chart, table in soak-results/ (not in CI)
	$(BIN)/python -m benchmarks.soak --duration $(SOAK_DURATION) $(SOAK_ARGS)

history-size: install ## measure the history's rows per day and bytes per quote at demo rates (HISTORY_MINUTES=10)
	$(BIN)/python -m benchmarks history

loadtest: install ## locust: 1500 req/s for 60 s, then stepped up; report in docs/load/ (LOADTEST_URL, LOADTEST_NAME, LOADTEST_ARGS="--fixed-s 10 --steps 1": short)
	@# The report's screenshot is taken by headless Chromium (Debian's chromium).
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
		|| echo "chromium is missing: install chromium"
	$(BIN)/python -m benchmarks.loadtest

recording: install ## regenerate recordings/sample.jsonl.gz from the simulator (about 2 min)
	$(BIN)/python -m scripts.make_recording

clean: ## remove the virtualenv, caches and local state (.rates)
	rm -rf $(VENV) .rates .mypy_cache .ruff_cache .pytest_cache *.egg-info
