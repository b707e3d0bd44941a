# edgefleet: `make demo` runs the whole fleet locally; `make test` runs every test.
# Both set up what they need (virtualenv, system packages, the Kubernetes test control plane).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
KUBE_BUILD := hack/kube-testenv/build.sh
PYTEST_ARGS ?=

.PHONY: help venv system-deps kube-bin test lint typecheck crds demo kube-up kube-down bench images kind-up clean

help:
	@echo "make demo      start a local fleet, send shop traffic through it, print a summary"
	@echo "make test      set up everything and run all tests"
	@echo "make lint      ruff + mypy"
	@echo "make crds      regenerate crds/ (and the chart's copy) from the API models"
	@echo "make kube-up   start the test control plane in the background (kube-down stops it)"
	@echo "make bench     run the benchmarks in bench/"

$(BIN)/edgefleet: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

venv: $(BIN)/edgefleet

system-deps:
	hack/system-deps.sh

kube-bin:
	@$(KUBE_BUILD) >/dev/null

test: venv system-deps
	EDGEFLEET_KUBE_BIN="$$($(KUBE_BUILD))" $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

crds: venv
	$(BIN)/edgefleet crds --write crds
	if [ -d helm/edgefleet ]; then $(BIN)/edgefleet crds --write helm/edgefleet/crds; fi

demo: venv
	$(BIN)/python -m edgefleet.demo

kube-up: venv
	@EDGEFLEET_KUBE_BIN="$$($(KUBE_BUILD))" $(BIN)/python -m edgefleet.testing.kube_testenv up

kube-down: venv
	@$(BIN)/python -m edgefleet.testing.kube_testenv down

bench: venv
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
