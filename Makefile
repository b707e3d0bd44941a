# edgefleet: `make demo` runs the whole fleet locally; `make test` runs every test.
# Both set up what they need (virtualenv, system packages, the Kubernetes test control plane).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
KUBE_BUILD := hack/kube-testenv/build.sh
PYTEST_ARGS ?=

.PHONY: help venv system-deps kube-bin test lint typecheck crds demo kube-up kube-down bench images cluster-up \
	cluster-down kind-up clean

help:
	@echo "make demo      start a local fleet, send shop traffic through it, print a summary"
	@echo "make test      set up everything and run all tests"
	@echo "make lint      ruff + mypy"
	@echo "make crds      regenerate crds/ (and the chart's copy) from the API models"
	@echo "make kube-up   start the test control plane in the background (kube-down stops it)"
	@echo "make images    build the edgefleet image (Docker; Debian base, no registry needed)"
	@echo "make cluster-up  a one-node cluster with a real kubelet, images imported (cluster-down stops it)"
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
	hack/system-deps.sh nginx:nginx varnishd:varnish wrk:wrk haproxy:haproxy
	$(BIN)/python bench/run_all.py

# ---- the container image and kind --------------------------------------------------------------------
# One image runs every component. `make images` builds it with no registry: the base comes from Debian
# packages (mmdebstrap, hack/base-image.sh) and Python packages from wheels built here (hack/wheels.sh).
# On a laptop: `make images BASE_IMAGE=debian:bookworm-slim` (the Dockerfile then apt-gets its packages).
IMAGE_REPO ?= ghcr.io/edgefleet/edgefleet
IMAGE_TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE ?= $(IMAGE_REPO):$(IMAGE_TAG)
BASE_IMAGE ?= $(shell command -v mmdebstrap >/dev/null && echo local || echo debian:bookworm-slim)
KIND_CLUSTER ?= edgefleet

images:
	hack/docker-up.sh
	hack/wheels.sh build/wheels
	base="$(if $(filter local,$(BASE_IMAGE)),$$(hack/base-image.sh),$(BASE_IMAGE))" \
	  && docker build -t $(IMAGE) --build-arg BASE_IMAGE="$$base" .

# A one-node cluster with a real kubelet on this machine (root, Linux): the image is imported into its
# containerd, so `helm install edgefleet ./helm/edgefleet` works right after. Last line: export ...
cluster-up: venv system-deps images
	@EDGEFLEET_KUBE_BIN="$$($(KUBE_BUILD))" $(BIN)/python -m edgefleet.testing.node_cluster up --image $(IMAGE)

cluster-down: venv
	@$(BIN)/python -m edgefleet.testing.node_cluster down

kind-up: images
	mkdir -p .edgefleet/kind-assets
	chmod 0777 .edgefleet/kind-assets  # the origin (uid 10001) writes uploads into this hostPath
	kind get clusters | grep -qx $(KIND_CLUSTER) || kind create cluster --config kind-config.yaml
	kind load docker-image --name $(KIND_CLUSTER) $(IMAGE)
	helm upgrade --install edgefleet ./helm/edgefleet -n edgefleet-system --create-namespace \
	  --set image.tag=$(IMAGE_TAG) --set image.pullPolicy=Never --wait
	kubectl apply -f examples/cdncluster-kind.yaml
	kubectl wait --for=condition=Ready cdn/shop-kind --timeout=180s

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
