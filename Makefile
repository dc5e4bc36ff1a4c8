# Berth — see README.md. `make run` and `make test` are the two commands a
# newcomer needs; everything else is for working on Berth.

GO        ?= go
BIN       := bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -X github.com/prometheus/common/version.Version=$(VERSION) \
             -X github.com/prometheus/common/version.Revision=$(REVISION) \
             -X github.com/prometheus/common/version.Branch=main
TEST_TIMEOUT ?= 18m
COMMANDS  := berth-exporter berth-placement berth-fleetsim

.PHONY: all build run demo test test-deps bench lint lint-rules clean

all: lint build

build:
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ $(addprefix ./cmd/,$(COMMANDS))

# Starts berth-exporter and berth-placement (embedded Prometheus) on this
# machine and prints what to curl. DEMO=1 adds a simulated fleet.
run: build
	@scripts/run.sh

demo: build
	@DEMO=1 scripts/run.sh

# Installs the Debian packages the integration tests need (when root and
# missing), then runs every test.
test: test-deps
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

test-deps:
	@scripts/install-test-deps.sh

# Benchmarks against references run side by side (node_exporter 1.5, the
# Docker stats API, a naive per-server placement strategy), reported as
# ratios. Needs root (Podman) and the test packages; about 10 minutes.
bench: test-deps
	$(GO) test -run '^$$' -bench . -benchtime 500x -timeout 20m ./exporter/system/
	$(GO) test -run '^$$' -bench Containers100 -benchtime 5x -timeout 20m ./exporter/containers/
	$(GO) test -run '^$$' -bench . -benchtime 20x -timeout 20m ./placement/bench/
	$(GO) test -run '^$$' -bench SnapshotEmbedded -benchtime 5x -timeout 20m ./placement/source/

lint: lint-rules
	@out=$$(gofmt -l .); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

lint-rules:
	$(GO) test -count=1 -run 'TestRules' ./rules/

clean:
	rm -rf $(BIN) data
