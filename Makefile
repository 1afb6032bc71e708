# Druppie CI/CD catalog. `make help` lists the targets.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# make test runs on every core (pytest-xdist); PYTEST_WORKERS=0 runs in one process, e.g. with --pdb
PYTEST_WORKERS ?= auto

.PHONY: help setup test test-slow demo bench cluster-build cluster-up cluster-down test-e2e test-e2e-lts test-e2e-userns clean catalog lint mutation images release bundles

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

setup: ## Install Debian packages, .venv and druppie-step (idempotent, ~1 s when done)
	@hack/setup.sh

test: setup ## Run the test suite (unit + integration against real servers on loopback)
	@$(PY) -m pytest -m "not e2e and not slow" -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test-slow: setup ## The slow tier: the images built from a clean clone as their READMEs say (podman)
	@$(PY) -m pytest -m slow tests/integration $(PYTEST_ARGS)

demo: setup ## The whole loop live: push to Gitea, webhook, pipeline, image, tag commit, Flux, new pods (cluster stays up)
	@$(PY) hack/demo.py

bench: setup ## Benchmarks; prints ratios measured in one run
	@$(PY) bench/run.py

cluster-build: ## Build etcd, Kubernetes, Flux, Tekton, Triggers, CoreDNS, Gitea, tkn, kwok, scanners into the cache (once, ~45-60 min)
	@hack/cluster-build.sh

cluster-up: setup ## Start the local cluster with Flux, Tekton, git server and registry (state in /tmp/druppie-cluster)
	@$(PY) -m localcluster up

cluster-down: ## Stop the local cluster; no process is left behind
	@$(PY) -m localcluster down

# The e2e tier: E2E_WORKERS pytest workers share one cluster (tests/e2e/conftest.py says which tests
# run side by side); the tests marked exclusive then run alone, on a cluster of their own without the
# loop. A selection that leaves one of the two sessions empty (pytest's exit 5) is not a failure.
E2E_WORKERS ?= 2
test-e2e: setup ## The e2e tier: real Kubernetes, Flux controllers and Tekton (needs make cluster-build)
	@status=0; \
	$(PY) -m pytest -m "e2e and not userns and not exclusive" -n $(E2E_WORKERS) --dist loadgroup tests/e2e \
	  $(PYTEST_ARGS) || { rc=$$?; [ $$rc -eq 5 ] || status=$$rc; }; \
	DRUPPIE_LOOP=0 $(PY) -m pytest -m "e2e and not userns and exclusive" tests/e2e \
	  $(PYTEST_ARGS) || { rc=$$?; [ $$rc -eq 5 ] || status=$$rc; }; \
	exit $$status

test-e2e-userns: setup ## druppie-build in a user-namespaced pod: the node on containerd v2 (hack/cluster-build.sh userns)
	@DRUPPIE_CONTAINERD=2 DRUPPIE_LOOP=0 $(PY) -m pytest -m userns tests/e2e/test_userns.py $(PYTEST_ARGS)

test-e2e-lts: setup ## Every task and pipeline on the oldest Tekton LTS the catalog claims (TEKTON_LTS_VERSION)
	@DRUPPIE_TEKTON_VERSION=lts DRUPPIE_LOOP=0 $(PY) -m pytest -m e2e tests/e2e/test_tekton.py \
	  "tests/e2e/test_samples.py::test_sample[pipelines/druppie-ci-cd/0.1/samples/ci-cd-drone-service.yaml]" $(PYTEST_ARGS)

clean: ## Remove the virtual environment and caches inside the repo
	rm -rf $(VENV) .pytest_cache

images: setup ## Build the step image with buildah (offline base, cached) and push it to REGISTRY (default: the local cluster's)
	@hack/images.sh

release: setup ## Push the images, record their digests, pinned Tasks to dist/; TAG=vX.Y.Z: bundles and the release commit
	@$(if $(TAG),hack/cluster-build.sh tkn && )$(PY) hack/release.py $(if $(TAG),--tag $(TAG))

bundles: setup ## Push every Task and Pipeline as a Tekton bundle to REGISTRY (default: the local cluster's), digests into catalog.yaml
	@hack/cluster-build.sh tkn
	@$(PY) hack/bundles.py

catalog: setup ## Regenerate the README tables from the Task YAML
	@$(PY) hack/catalog.py readme

lint: setup ## ruff (lint, format), mypy on steps/, yamllint, the catalog conventions and Tekton's own validation
	@$(VENV)/bin/ruff check --quiet .
	@$(VENV)/bin/ruff format --check --quiet .
	@cd steps && ../$(VENV)/bin/mypy
	@$(VENV)/bin/yamllint -c .yamllint.yaml tasks pipelines triggers flux policies install examples catalog.yaml kustomization.yaml .github
	@$${DRUPPIE_CACHE:-/var/cache/druppie}/actionlint-$$(sed -n 's/^ACTIONLINT_VERSION=//p' hack/toolchain.env)/actionlint
	@$(PY) hack/catalog.py check
	@$(PY) hack/seccomp_install.py
	@bin=$${DRUPPIE_CACHE:-/var/cache/druppie}/tekton-validate-$$(source hack/toolchain.env && echo $$TEKTON_PIPELINE_VERSION)-$$(cd hack/tekton-validate && cat go.mod go.sum *.go | sha256sum | cut -c1-12)/tekton-validate; \
	if [[ -x $$bin ]]; then $$bin $$(ls -d tasks pipelines triggers 2>/dev/null); \
	else echo "lint: tekton-validate skipped (not built for this source; build it with: hack/cluster-build.sh tekton-validate)"; fi

mutation: setup ## Mutation testing of the image editor and Flux status decisions (mutmut 2.5.1; minutes, not in CI)
	@hack/mutation.sh $(MODULES)
