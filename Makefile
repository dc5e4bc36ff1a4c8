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

TOOLS     := $(BIN)/tools
PROMTOOL  := $(TOOLS)/promtool

.PHONY: all build run demo test test-deps bench fuzz docs lint lint-rules clean

all: lint build

# On a fresh machine the first build downloads about 0.9 GB of Go modules
# (each printed as "go: downloading …") and compiles for a few minutes.
build:
	@mkdir -p $(BIN)
	@echo "make: building $(COMMANDS) into $(BIN)/ (first run: downloads ~0.9 GB of Go modules, a few minutes on 2 cores)"
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ $(addprefix ./cmd/,$(COMMANDS))

# Starts berth-exporter and berth-placement (embedded Prometheus) on this
# machine and prints what to curl. DEMO=1 adds a simulated fleet.
run: build
	@scripts/run.sh

demo: build
	@DEMO=1 scripts/run.sh

# Installs what the tests need (Debian packages when root and missing,
# Berth's binaries, a pinned promtool), then runs every test. Tests never run
# the go command themselves: everything they start is built here first.
test: test-deps
	@echo "make: running every test"
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

test-deps: build $(PROMTOOL)
	@scripts/install-test-deps.sh

# promtool of the prometheus version in go.mod (3.x semantics, next to
# Debian's 2.42), for the rule unit tests. remove_all_sd drops every
# service-discovery SDK that promtool would otherwise link.
$(PROMTOOL): go.mod go.sum
	@mkdir -p $(TOOLS)
	@echo "make: building promtool $$($(GO) list -m -f '{{.Version}}' github.com/prometheus/prometheus) for the rule tests (-tags remove_all_sd)"
	$(GO) build -tags remove_all_sd -trimpath -o $@ github.com/prometheus/prometheus/cmd/promtool

# Benchmarks against references run side by side (node_exporter 1.5, the
# Docker stats API of dockerd and of Podman, a naive per-server placement
# strategy), reported as ratios. Needs root (dockerd, Podman) and the test
# packages; about 13 minutes.
bench: test-deps
	$(GO) test -run '^$$' -bench . -benchtime 500x -timeout 20m ./exporter/system/
	$(GO) test -run '^$$' -bench Containers100 -benchtime 5x -timeout 30m ./exporter/containers/
	$(GO) test -run '^$$' -bench . -benchtime 20x -timeout 20m ./placement/bench/
	$(GO) test -run '^$$' -bench SnapshotEmbedded -benchtime 5x -timeout 20m ./placement/promsource/

# Writes the command-line reference (docs/cli/) from the commands' own
# kingpin models; a test fails when it is not current.
docs: build
	@for c in $(COMMANDS); do $(BIN)/$$c --write-documentation > docs/cli/$$c.md || exit 1; done
	@echo "make: wrote docs/cli/ for $(COMMANDS)"

# Runs every Go fuzz target (func FuzzXxx) for FUZZTIME each. `make test`
# runs their seed corpora (testdata/fuzz/ included) as regression tests.
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "make: fuzzing $$f ($$pkg) for $(FUZZTIME)"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

lint:
	@out=$$(gofmt -l .); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

lint-rules: test-deps
	$(GO) test -count=1 -run 'TestRules' ./rules/

clean:
	rm -rf $(BIN) data
