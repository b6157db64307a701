# The two commands of the README:
#   make demo   set everything up (virtualenv, releasegate, pinned OPA) and run a demo decision
#               for each verdict on the embedded default (managed OPA, SQLite log)
#   make test   install what the tests need (incl. Prometheus and PostgreSQL from apt) and run
#               the whole suite: lint, typing, policy checks, Rego tests, pytest
SHELL := /bin/bash
# The interpreter the virtualenv is made from: the distribution's python3 when it is >= 3.11
# (built with PGO and LTO), else python3 from PATH; RELEASEGATE_PYTHON or PYTHON= overrides.
PYTHON ?= $(shell bash scripts/pick-python.sh)
VENV := .venv
BIN := $(VENV)/bin
RG := $(BIN)/releasegate

.PHONY: demo test venv venv-test venv-origin opa test-deps lint policy-check pytest bundle schema bench clean

demo: venv opa
	@bash scripts/demo.sh

test: venv-test opa test-deps lint policy-check pytest

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# An existing virtualenv is kept; say so when it was made from another interpreter.
REAL_PYTHON := import os, sys; print(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
venv-origin: $(BIN)/python
	@made=$$($(BIN)/python -c '$(REAL_PYTHON)'); want=$$($(PYTHON) -c '$(REAL_PYTHON)'); \
	if [ "$$made" != "$$want" ]; then \
		echo "note: $(VENV) was made from $$made, not $$want (scripts/pick-python.sh);" \
			"rm -rf $(VENV) to remake it" >&2; \
	fi

venv: $(BIN)/python venv-origin
	$(BIN)/pip install --quiet -e .

venv-test: $(BIN)/python venv-origin
	$(BIN)/pip install --quiet -e '.[test,lint,postgres]'

opa:
	@bash scripts/install-opa.sh

test-deps:
	@bash scripts/install-test-deps.sh

lint:
	$(BIN)/ruff check engine tests benchmarks hardening
	$(BIN)/ruff format --check engine tests benchmarks hardening
	$(BIN)/mypy

policy-check:
	$(RG) policy schema --check
	$(RG) policy lint
	$(RG) policy test --min-coverage 95
	$(RG) bundle check-fresh bundles/releasegate.tar.gz policies/ \
		--public-key bundles/releasegate.pub.pem --key-id releasegate

pytest:
	$(BIN)/pytest -q -p no:cacheprovider

# Maintenance
bundle:
	@bash scripts/build-bundle.sh

schema:
	$(RG) policy schema

bench: venv-test opa
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .tools .releasegate-demo
