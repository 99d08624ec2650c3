# kubectl-mcsa — see README.md. Everything the tests need is built from source or installed here.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

GO ?= go
BIN := $(CURDIR)/bin
# A semantic version (krew needs one): the latest v* tag as git describes it, else v0.1.0-dev.
VERSION ?= $(shell git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null || echo v0.1.0-dev)
LDFLAGS := -s -w -X github.com/kubectl-mcsa/kubectl-mcsa/incluster/version.Version=$(VERSION)
# Go test flags; e.g. `make test TESTFLAGS='-run TestImporter -v'`.
TESTFLAGS ?=
PKGS ?= ./...

COMMANDS := $(wildcard plugin/cmd/* incluster/cmd/* incluster/examples/*)

.PHONY: all help build testbin test unit verify generate lint golangci-lint tidy-check playground playground-stop clean node-prereqs maybe-node-prereqs docs fuzz chaos soak

all: build

## help: this list
help:
	@grep -h '^## ' $(MAKEFILE_LIST) | sed 's/^## /  /'

## build: the plugin, the in-cluster controller and the examples, into bin/
build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ $(addprefix ./,$(COMMANDS))

# The Kubernetes binaries the tests run: control planes, a real node for the walkthrough, and
# kubectl, run inside a pod by the original clients' compatibility check.
TESTBINS := etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl

## testbin: build (once, cached by version) etcd and the Kubernetes binaries
testbin:
	@hack/testbin/ensure.sh $(TESTBINS) >/dev/null

## test: everything CI runs — checks, then unit and end-to-end tests on real control planes
## and a real node (whose Debian packages it installs when run as root)
test: verify testbin maybe-node-prereqs
	MCSA_TESTBIN_DIR=$$(hack/testbin/ensure.sh $(TESTBINS)) $(GO) test -count=1 -timeout 25m $(TESTFLAGS) $(PKGS)
	$(GO) -C hack/dist test -count=1 -timeout 20m ./...
	MCSA_TESTBIN_DIR=$$(hack/testbin/ensure.sh $(TESTBINS)) $(GO) -C hack/alerts test -count=1 -timeout 5m ./...

## unit: only the fast tests (end-to-end tests skip under -short)
unit:
	$(GO) test -short $(TESTFLAGS) $(PKGS)

## node-prereqs: install what a real node needs (containerd, runc, CNI plugins) from Debian
node-prereqs:
	bash hack/node-prereqs.sh

# As root, install the node's packages; otherwise the node tests say what is missing and skip.
maybe-node-prereqs:
	@if [ "$$(id -u)" = 0 ]; then bash hack/node-prereqs.sh; else echo "not root: the real-node tests will skip (run 'sudo make node-prereqs')"; fi

## docs: regenerate the CLI reference (docs/cli.md), security.md's rights and observability.md's tables
docs:
	$(GO) test ./plugin/internal/cmd -run TestCLIReference -update
	$(GO) test ./manifests -run TestSecurityDocRBAC -update
	$(GO) test ./manifests -run TestObservabilityDoc -update

## generate: deepcopy functions and the CRD from the API types
generate: $(BIN)/controller-gen
	$(BIN)/controller-gen object paths=./incluster/api/...
	$(BIN)/controller-gen crd paths=./incluster/api/... output:crd:artifacts:config=manifests/crd

$(BIN)/controller-gen: hack/tools/go.mod
	$(GO) -C hack/tools build -o $(BIN)/controller-gen sigs.k8s.io/controller-tools/cmd/controller-gen

## verify: lint, every module tidy, and generated files up to date
verify: lint tidy-check
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	cp -r manifests/crd incluster/api/v1alpha1/zz_generated.deepcopy.go $$tmp/; \
	$(MAKE) --no-print-directory generate >/dev/null; \
	if ! diff -r $$tmp/crd manifests/crd >/dev/null || ! diff -q $$tmp/zz_generated.deepcopy.go incluster/api/v1alpha1/zz_generated.deepcopy.go >/dev/null; then \
	  git --no-pager diff --stat -- manifests/crd incluster/api; \
	  echo "generated files are out of date: run 'make generate' and commit the result" >&2; exit 1; \
	fi

## lint: gofmt, go vet and golangci-lint
# gofmt on every Go file git knows of that is still there (deleted but not yet `git rm`-ed ones aside).
lint:
	@out=$$(git ls-files --cached --others --exclude-standard '*.go' | while read -r f; do [ ! -e "$$f" ] || echo "$$f"; done | xargs -r gofmt -l); \
	if [ -n "$$out" ]; then echo "gofmt needed on:" >&2; echo "$$out" >&2; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) -C hack/dist vet ./...
	$(GO) -C hack/alerts vet ./...
	@$(MAKE) --no-print-directory golangci-lint

## golangci-lint: the linters of .golangci.yml over the root module, hack/dist and hack/alerts
# Every module is linted, then it fails if any has findings.
golangci-lint: $(BIN)/golangci-lint
	@rc=0; \
	$(BIN)/golangci-lint run ./... || rc=1; \
	(cd hack/dist && $(BIN)/golangci-lint run --config $(CURDIR)/.golangci.yml ./...) || rc=1; \
	(cd hack/alerts && $(BIN)/golangci-lint run --config $(CURDIR)/.golangci.yml ./...) || rc=1; \
	exit $$rc

# Built once from hack/lint (its own module, which pins the version), like controller-gen.
$(BIN)/golangci-lint: hack/lint/go.mod
	$(GO) -C hack/lint build -o $(BIN)/golangci-lint github.com/golangci/golangci-lint/v2/cmd/golangci-lint

# The root module and every tool module (hack/tools, hack/dist, hack/alerts, hack/lint, hack/testbin/*).
MODULES := . $(patsubst %/go.mod,%,$(wildcard hack/*/go.mod hack/testbin/*/go.mod))

## tidy-check: go.mod and go.sum of every module as `go mod tidy` leaves them
tidy-check:
	@fail=0; for m in $(MODULES); do \
	  if ! $(GO) -C $$m mod tidy -diff; then \
	    echo "$$m: go.mod/go.sum are not tidy: run 'go mod tidy' in $$m and commit the result" >&2; fail=1; \
	  fi; \
	done; exit $$fail

## playground: the getting-started on a real node and control planes, left up (see README)
playground: testbin maybe-node-prereqs
	MCSA_TESTBIN_DIR=$$(hack/testbin/ensure.sh $(TESTBINS)) $(GO) run ./hack/playground $(PLAYGROUND_FLAGS)

## playground-stop: stop a playground started with PLAYGROUND_FLAGS=--detach
playground-stop:
	$(GO) run ./hack/playground --stop

clean:
	rm -rf $(BIN) .playground

# How long `make fuzz` runs each fuzz target; their seed corpora run in every `go test`.
FUZZTIME ?= 30s

## fuzz: run every fuzz target (parsers of untrusted input) for FUZZTIME each; not part of `make test`
fuzz:
	@git ls-files -co --exclude-standard '*_test.go' | xargs grep -l '^func Fuzz' | while read -r f; do \
	  for fn in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$$f"); do \
	    echo "== $$fn ($$(dirname $$f), $(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) ./$$(dirname "$$f") || exit 1; \
	  done; \
	done

include hack/dist.mk
include hack/bench.mk

## soak: the real-node walkthrough with a federated client across three kubelet rotations of its
## token (about 30 minutes); `make test` runs it across one.
soak: testbin maybe-node-prereqs
	MCSA_SOAK_KUBELET_ROTATIONS=3 MCSA_TESTBIN_DIR=$$(hack/testbin/ensure.sh $(TESTBINS)) $(GO) test -count=1 -timeout 60m -v -run 'TestWalkthrough$$' ./test/walkthrough

## chaos: the fault-injection suite at full scale (controller kills, remote outages, etcd
## restarts); writes its figures into docs/reliability.md. A short version runs in `make test`.
chaos: testbin
	MCSA_CHAOS=long MCSA_TESTBIN_DIR=$$(hack/testbin/ensure.sh $(TESTBINS)) $(GO) test -count=1 -timeout 40m -v -run TestChaos ./test/chaos
