# Druppie CI/CD catalog. `make help` lists the targets.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: help setup test demo bench cluster-build clean catalog lint

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

setup: ## Install Debian packages, .venv and druppie-step (idempotent, ~1 s when done)
	@hack/setup.sh

test: setup ## Run the test suite (unit + integration against real servers on loopback)
	@$(PY) -m pytest -m "not e2e" $(PYTEST_ARGS)

demo: setup ## Run tag-commit on the embedded example druppie-apps (no cluster needed)
	@$(PY) hack/demo.py

bench: setup ## Benchmarks; prints ratios measured in one run
	@$(PY) bench/run.py

cluster-build: ## Build etcd, Kubernetes, Flux controllers, kwok and flux CLI into the cache (once)
	@hack/cluster-build.sh

clean: ## Remove the virtual environment and caches inside the repo
	rm -rf $(VENV) .pytest_cache

catalog: setup ## Regenerate the README tables from the Task YAML
	@$(PY) hack/catalog.py readme

lint: setup ## Check catalog conventions (versions, annotations, no params in scripts, READMEs current)
	@$(PY) hack/catalog.py check
