# Everything a fresh machine needs goes through these targets; nothing is installed by hand.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-12)

.PHONY: help venv test lint demo bench broker-libs browser clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip==25.3
	$(PY) -m pip install -q -e '.[test]'
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

venv: $(STAMP)  ## create .venv and install the project with test tools

broker-libs: venv  ## resolve the Apache Kafka jars with Maven into the user cache
	$(VENV)/bin/fstreams broker fetch

# Debian's chromium for the console's browser tests; when it cannot be installed the run goes on
# and those tests skip, saying why.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)
browser:  ## headless Chromium (system package) for the console tests
	@command -v chromium >/dev/null || ($(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	  chromium) || echo "chromium could not be installed: the console tests will be skipped"

lint: venv  ## ruff
	$(VENV)/bin/ruff check streams agents tables registry tests bench

test: venv broker-libs browser  ## install what is needed and run the whole suite on a real broker
	$(VENV)/bin/ruff check streams agents tables registry tests bench
	$(PY) -m pytest -q -p no:cacheprovider tests

demo: venv broker-libs  ## broker, registry, worker, generated traffic and console; Ctrl-C stops all
	$(VENV)/bin/fstreams demo

bench: venv broker-libs  ## benchmarks (about 10 min on 2 cores, within a 15-min budget); prints figures and ratios
	$(PY) -m pip install -q -e '.[test,bench]'
	@# wrk (a C load generator) drives registry_bench: of all clients it takes the least CPU
	@# from the 2 cores the server runs on.
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null; } || \
	  echo "wrk could not be installed: registry_bench measures with its Python client"
	$(PY) bench/run_all.py

clean:  ## remove the venv and local data
	rm -rf $(VENV) .data
