# Strata: `make run` starts a cluster and deploys the demo; `make test` runs
# every test. Both install what they need first.
SHELL := /bin/bash
BIN := $(CURDIR)/bin
DATA_DIR ?= /var/lib/strata
GO ?= go
# The embedded Kubernetes reports its real version (kubectl's skew checks and
# the node's kubeletVersion read it); Strata's own version comes from git.
K8S_VERSION := $(shell $(GO) list -m -f '{{.Version}}' k8s.io/kubernetes 2>/dev/null)
K8S_MINOR := $(word 2,$(subst ., ,$(K8S_VERSION)))
STRATA_VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# The last commit's date, not now: an unchanged tree links the same binary.
BUILD_DATE := $(shell git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null || echo 1970-01-01T00:00:00Z)
VERSION_PKGS := k8s.io/component-base/version k8s.io/client-go/pkg/version
# go-nvml (pkg/dra) leaves NVML's symbols for dlopen to resolve, which needs
# lazy binding; Go links cgo binaries with -z now, under which strata (and
# any test binary importing pkg/dra) would not start on a machine without
# NVIDIA's library. Every go command run from here links with -z lazy.
LAZY := -extldflags=-Wl,-z,lazy
export GOFLAGS := -ldflags=$(LAZY)
LDFLAGS := $(LAZY) -s -w -X github.com/strata-dev/strata/pkg/version.Version=$(STRATA_VERSION) \
  $(foreach p,$(VERSION_PKGS),-X $(p).gitVersion=$(K8S_VERSION)+strata -X $(p).gitMajor=1 -X $(p).gitMinor=$(K8S_MINOR) \
  -X $(p).gitTreeState=clean -X $(p).buildDate=$(BUILD_DATE))
# Images run without a base layer, so their programs are static.
STATIC := CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w'

.PHONY: all deps build helmtool cosigntool run stop demo test test-unit test-fuzz fuzz test-e2e vet bench-startup bench-agent bench-admission bench-wasm bench-serverless bench-gputrace bench-gputrace-server generate clean

all: build

deps:
	@hack/install-deps.sh

# containerd 2 and its runc shim, built from containerd's Go module in a
# nested module (its Kubernetes libraries differ from Strata's).
CONTAINERD_MOD := github.com/containerd/containerd/v2
CONTAINERD_VERSION = $(shell cd third_party/containerd && $(GO) list -m -f '{{.Version}}' $(CONTAINERD_MOD))

build:
	@echo "build: strata, containerd $(CONTAINERD_VERSION), strata-pause and the examples into bin/"
	@mkdir -p $(BIN)
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/strata ./cmd/strata
	$(STATIC) -o $(BIN)/strata-pause ./cmd/strata-pause
	$(STATIC) -o $(BIN)/hello ./examples/hello
	$(STATIC) -o $(BIN)/netcheck ./examples/netcheck
	$(STATIC) -o $(BIN)/counter ./examples/counter
	$(STATIC) -o $(BIN)/containerd-shim-strata-wasm-v1 ./cmd/containerd-shim-strata-wasm-v1
	GOOS=wasip1 GOARCH=wasm $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/wasm-hello.wasm ./examples/wasm-hello
	GOOS=wasip1 GOARCH=wasm $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/wasm-http.wasm ./examples/wasm-http
	$(GO) run ./examples/wasm-static -o $(BIN)/wasm-static.wasm --size 1024
	cd third_party/containerd && GOFLAGS= $(GO) build -trimpath -tags no_btrfs \
	  -ldflags '-s -w -X $(CONTAINERD_MOD)/version.Version=$(CONTAINERD_VERSION)' \
	  -o $(BIN)/ $(CONTAINERD_MOD)/cmd/containerd $(CONTAINERD_MOD)/cmd/containerd-shim-runc-v2

run: deps build
	@hack/run.sh "$(BIN)" "$(DATA_DIR)"

stop:
	@if [ -f $(DATA_DIR)/strata.pid ]; then kill $$(cat $(DATA_DIR)/strata.pid) && echo "stopping strata server"; \
	  while kill -0 $$(cat $(DATA_DIR)/strata.pid) 2>/dev/null; do sleep 0.5; done; rm -f $(DATA_DIR)/strata.pid; fi

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l api config cmd pkg examples test bench 2>/dev/null); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

test-unit:
	$(GO) test ./cmd/... ./pkg/... ./examples/... ./bench/...

# test/wasm drives the wasm shim through a private containerd's CRI (no
# server); -p 1 keeps it from competing with the server suite for the CPU.
test-e2e: build helmtool cosigntool
	STRATA_BIN=$(BIN) $(GO) test -p 1 ./test/e2e/ ./test/wasm/ -count=1 -v -timeout 60m

# Installs charts through Helm's Go SDK for the e2e tests; its own module,
# so Helm's dependencies do not move Strata's.
helmtool:
	@mkdir -p $(BIN)
	cd test/helmtool && $(GO) build -o $(BIN)/helmtool .

# The cosign CLI, built from its Go module (own module, like helmtool), so
# the e2e tests check Strata's signatures with the real tool and back.
cosigntool:
	@mkdir -p $(BIN)
	cd test/cosigntool && $(GO) build -o $(BIN)/cosign github.com/sigstore/cosign/v3/cmd/cosign

# Every go fuzz target briefly (their seed corpora also run in test-unit);
# make fuzz runs each for 10 minutes.
test-fuzz:
	hack/fuzz.sh 10s

fuzz:
	hack/fuzz.sh 10m

test: deps build vet test-unit test-fuzz test-e2e

bench-startup: build
	$(GO) run ./bench/startup --bin $(BIN) --runs 5

# An agent in a network namespace of its own joins a server on this
# machine: start -> Ready, RSS idle and with 10 pods, pod-to-pod latency.
bench-agent: build
	$(GO) run ./bench/agent --bin $(BIN) --runs 5

bench-admission: build
	$(GO) run ./bench/admission --bin $(BIN) --n 200 --runs 3

bench-serverless: deps build
	$(GO) run ./bench/serverless --bin $(BIN) --n 20

bench-wasm: deps build
	$(GO) run ./bench/wasm --bin $(BIN) --n 20

# Replays the FGD paper's GPU trace (../shared/data/gpu-trace-v2023) through
# kube-scheduler's framework with Strata's GPU plugins; no cluster needed.
GPUTRACE_ARGS ?= --seeds 42-51 --policies fgd,bestfit,default
bench-gputrace:
	$(GO) run ./bench/gputrace $(GPUTRACE_ARGS)

# The reduced replay (100 nodes, 1,000 arrivals, seed 42) through a real
# `strata server --disable-agent` on non-default ports (16443, 12379, ...),
# simulated GPU nodes, compared with the in-process sim and dra modes.
bench-gputrace-server: build
	$(GO) run ./bench/gputrace --mode server --bin $(BIN) $(GPUTRACE_SERVER_ARGS)

clean:
	rm -rf $(BIN)

# Regenerates deepcopy functions and CRD manifests from api/ (kubebuilder markers).
CONTROLLER_GEN ?= $(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0
generate:
	$(CONTROLLER_GEN) object paths=./api/... crd:crdVersions=v1 output:crd:artifacts:config=config/crd
