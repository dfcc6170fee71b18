# kamlib developer commands. Two commands on a fresh machine: `make demo` and `make test`.
# Java 17+ is the only system prerequisite.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
PYTEST := $(PY) -m pytest
export PYSPARK_PYTHON := $(abspath $(PY))

.PHONY: help jars demo test lint types pytest pytest-connect pytest-cluster notebooks docs bench build clean java

help:
	@echo "make demo   - create .venv if missing, install kamlib, run 'kamlib demo' on local Spark"
	@echo "make test   - lint (ruff), types (mypy --strict), pytest (classic + Connect + standalone cluster + notebooks), docs (-W)"
	@echo "make bench  - run the benchmarks and write benchmarks/results/latest.json"

java:
	@./scripts/check-java.sh

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip >/dev/null

$(VENV)/.installed-run: pyproject.toml | $(PY)
	$(PIP) install -e '.[spark,plot]'
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PIP) install -e '.[dev]'
	@touch $@ $(VENV)/.installed-run

# Connector jars (Kafka, Delta, s3a, Avro) and the Kafka broker, fetched once from Maven Central
# into a cache folder named after jvm/pom.xml; the file records that folder for the tests.
$(VENV)/.jars: jvm/pom.xml jvm/broker/pom.xml scripts/fetch-jars.sh | $(VENV)/.installed-dev
	PY=$(PY) ./scripts/fetch-jars.sh > $@.tmp && mv $@.tmp $@

jars: $(VENV)/.jars

demo: java $(VENV)/.installed-run
	$(VENV)/bin/kamlib demo $(DEMO_ARGS)

test: java $(VENV)/.installed-dev lint types pytest pytest-connect pytest-cluster notebooks docs
	@echo "make test: all checks passed"

lint: $(VENV)/.installed-dev
	$(PY) -m ruff check src tests benchmarks docs
	$(PY) -m ruff format --check src tests benchmarks docs

types: $(VENV)/.installed-dev
	$(PY) -m mypy --strict src/kamlib

pytest: java $(VENV)/.installed-dev $(VENV)/.jars
	KAMLIB_JARS=$$(cat $(VENV)/.jars) $(PYTEST) tests src/kamlib --doctest-modules -m "not cluster" --durations=20 $(PYTEST_ARGS)

# The -m cluster tests on a real standalone cluster (a master and two workers on 127.0.0.1,
# started and stopped by the session fixture; under CI=true a cluster that cannot start fails).
pytest-cluster: java $(VENV)/.installed-dev $(VENV)/.jars
	KAMLIB_JARS=$$(cat $(VENV)/.jars) $(PYTEST) tests -m cluster --kamlib-spark=cluster $(PYTEST_ARGS)

pytest-connect: java $(VENV)/.installed-dev
	$(PYTEST) tests -m connect --kamlib-spark=connect $(PYTEST_ARGS)

notebooks: java $(VENV)/.installed-dev
	$(PYTEST) --nbmake --nbmake-timeout=900 notebooks

docs: $(VENV)/.installed-dev
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

bench: java $(VENV)/.installed-dev
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

build: $(VENV)/.installed-dev
	$(PY) -m build --outdir dist .

clean:
	rm -rf dist build docs/_build .mypy_cache .ruff_cache .pytest_cache spark-warehouse
