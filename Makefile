# Fashion AI Studio. Quick start: `make run` (serve the site) and `make test` (the whole suite).
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: help setup system-deps run test test-postgres test-sqlite lint bench images test-deploy clean

help:
	@echo "make run    set everything up and serve the site on http://127.0.0.1:8000"
	@echo "make test   set everything up and run the whole suite (+ ruff and mypy)"
	@echo "make bench  run the benchmarks under bench/"
	@echo "make images       build the container images with podman (docs/deploy.md)"
	@echo "make test-deploy  build them, run the compose stack and walk it through Caddy (docs/deploy.md)"

# The virtualenv is rebuilt when any requirements file changes. mediapipe goes in without its
# dependencies: its full tree pulls jax (~1.1 GB); what the engine needs is in fashionai/requirements.txt.
$(STAMP): requirements.txt requirements-dev.txt fashionai/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check -r requirements-dev.txt -r fashionai/requirements.txt
	$(PIP) install --quiet --disable-pip-version-check --no-deps mediapipe==0.10.21
	touch $(STAMP)

setup: $(STAMP)

# Debian packages the suite needs (redis-server, chromium, PostgreSQL), installed only where missing.
system-deps:
	@scripts/ensure-system-packages.sh test

run: $(STAMP)
	@scripts/ensure-system-packages.sh run
	$(PY) scripts/dev.py

# The suite runs on TEST_PROCESSES pytest-xdist workers, each with its own test database, Redis database and
# bucket (tests/support/parallel.py); most of its time is spent waiting on real services, hence more workers than
# the 2 cores. TEST_PROCESSES=0 runs it in one process. worksteal: an idle worker takes tests queued on a busy one
# (the fault and flow files are long; whole-file scheduling left one worker running them alone).
TEST_PROCESSES ?= 3
XDIST = $(if $(filter 0,$(TEST_PROCESSES)),,-n $(TEST_PROCESSES) --dist worksteal)

test: system-deps $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) scripts/testenv.py -- $(PY) -m pytest $(XDIST) --durations=25 $(PYTEST_ARGS)
	$(PY) scripts/testenv.py --no-s3 --no-postgres -- $(PY) -m pytest -m smoke -p no:cacheprovider $(XDIST) $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy

bench: system-deps $(STAMP)
	$(PY) scripts/testenv.py -- $(PY) bench/run_all.py

# Container images from docker/Dockerfile (and local stand-ins for the other services) with podman; layers are
# cached outside the repository in FAI_IMAGES_DIR (/var/tmp/fai-images).
images:
	scripts/build-images.sh

# The deployment journey (scripts/test_deploy.py): the compose stack up with podman-compose, driven through Caddy.
test-deploy: $(STAMP) images
	$(PY) scripts/test_deploy.py $(DEPLOY_ARGS)

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .mypy_cache .ruff_cache
