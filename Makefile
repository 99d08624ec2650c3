# kubectl-mcsa — see README.md. Everything the tests need is built from source or installed here.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

GO ?= go
BIN := $(CURDIR)/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/kubectl-mcsa/kubectl-mcsa/internal/version.Version=$(VERSION)
# Go test flags; e.g. `make test TESTFLAGS='-run TestImporter -v'`.
TESTFLAGS ?=
PKGS ?= ./...

COMMANDS := $(wildcard plugin/cmd/* incluster/cmd/* incluster/examples/*)

.PHONY: all build testbin test unit verify generate lint playground playground-stop clean

all: build

## build: the plugin, the in-cluster controller and the examples, into bin/
build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ $(addprefix ./,$(COMMANDS))

## testbin: build (once, cached by version) etcd, kube-apiserver and kube-controller-manager
testbin:
	@hack/testbin/ensure.sh >/dev/null

## test: everything CI runs — checks, then unit and end-to-end tests on real control planes
test: verify testbin
	MCSA_TESTBIN_DIR=$$(hack/testbin/ensure.sh) $(GO) test -count=1 -timeout 25m $(TESTFLAGS) $(PKGS)

## unit: only the fast tests (end-to-end tests skip under -short)
unit:
	$(GO) test -short $(TESTFLAGS) $(PKGS)

## generate: deepcopy functions and the CRD from the API types
generate: $(BIN)/controller-gen
	$(BIN)/controller-gen object paths=./incluster/api/...
	$(BIN)/controller-gen crd paths=./incluster/api/... output:crd:artifacts:config=manifests/crd

$(BIN)/controller-gen: hack/tools/go.mod
	$(GO) -C hack/tools build -o $(BIN)/controller-gen sigs.k8s.io/controller-tools/cmd/controller-gen

## verify: gofmt, go vet, and generated files up to date
verify: lint
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	cp -r manifests/crd incluster/api/v1alpha1/zz_generated.deepcopy.go $$tmp/; \
	$(MAKE) --no-print-directory generate >/dev/null; \
	if ! diff -r $$tmp/crd manifests/crd >/dev/null || ! diff -q $$tmp/zz_generated.deepcopy.go incluster/api/v1alpha1/zz_generated.deepcopy.go >/dev/null; then \
	  git --no-pager diff --stat -- manifests/crd incluster/api; \
	  echo "generated files are out of date: run 'make generate' and commit the result" >&2; exit 1; \
	fi

## lint: gofmt and go vet
lint:
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:" >&2; echo "$$out" >&2; exit 1; fi
	$(GO) vet $(PKGS)

## playground: two local clusters (cluster1, cluster2); kubeconfig in .playground/kubeconfig
playground: testbin
	MCSA_TESTBIN_DIR=$$(hack/testbin/ensure.sh) $(GO) run ./test/playground $(PLAYGROUND_FLAGS)

## playground-stop: stop a playground started with PLAYGROUND_FLAGS=--detach
playground-stop:
	$(GO) run ./test/playground --stop

clean:
	rm -rf $(BIN) .playground
