# Benchmarks (issue 10; docs/performance.md): `make bench`, not part of `make test`. It starts two
# real control planes, runs the controller and plugin built here, prints the results table and
# writes it to BENCH_OUT. About 25 minutes with the defaults; e.g.
#   make bench BENCH_IMPORTS=10000
#   make bench BENCH_PHASES=bulk,cli BENCH_OUT=/tmp/bench.md
# Include it from the Makefile: `include hack/bench.mk`.

# N of the bulk throughput runs, and the limits they run with (defaults, raised).
BENCH_IMPORTS ?= 2000
BENCH_PROFILES ?= defaults,raised
# Imports of the steady-state run (item 2's latency, item 4's refreshes) and their token lifetime.
BENCH_STEADY_IMPORTS ?= 2000
BENCH_STEADY_LIFETIME ?= 10m
# AdmissionReview rates sent straight to the webhook, and pods created per side.
BENCH_WEBHOOK_RATES ?= 10,100,500
BENCH_PODS ?= 200
# Phases: bulk (items 1, 5), webhook (3), steady (2, 4, 5), cli (6).
BENCH_PHASES ?= bulk,webhook,steady,cli
# Where the results table is written (default: a new temporary directory, printed at the end).
BENCH_OUT ?=
# Any other flag of hack/bench/cmd/mcsa-bench (`go run ./hack/bench/cmd/mcsa-bench -h`).
BENCH_FLAGS ?=

BENCH_BIN := $(BIN)/bench

.PHONY: bench

## bench: benchmarks on two real control planes; a results table (BENCH_OUT), see docs/performance.md
bench: testbin
	@mkdir -p $(BENCH_BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BENCH_BIN)/ ./incluster/cmd/mcsa-controller ./plugin/cmd/kubectl-mcsa
	$(GO) build -o $(BENCH_BIN)/mcsa-bench ./hack/bench/cmd/mcsa-bench
	MCSA_TESTBIN_DIR=$$(hack/testbin/ensure.sh etcd kube-apiserver kube-controller-manager) BENCH_OUT='$(BENCH_OUT)' \
	  $(BENCH_BIN)/mcsa-bench -controller $(BENCH_BIN)/mcsa-controller -plugin $(BENCH_BIN)/kubectl-mcsa \
	  -imports $(BENCH_IMPORTS) -profiles $(BENCH_PROFILES) -steady-imports $(BENCH_STEADY_IMPORTS) \
	  -steady-lifetime $(BENCH_STEADY_LIFETIME) -webhook-rates $(BENCH_WEBHOOK_RATES) -pods $(BENCH_PODS) \
	  -phases $(BENCH_PHASES) $(BENCH_FLAGS)
