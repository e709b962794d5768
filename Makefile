# Sluice. `make run` runs the quickstart pipeline; `make test` runs every test.
GO       ?= go
BINARY   ?= sluice
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -X github.com/prometheus/common/version.Version=$(VERSION) \
            -X github.com/prometheus/common/version.Revision=$(REVISION) \
            -X github.com/prometheus/common/version.Branch=main
CONFIG   ?= config/examples/quickstart.hcl

.PHONY: build build-custom run test test-plugins test-deploy test-fuzz fuzz dashboards bench bench-statsd fmt deps docs

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BINARY) ./cmd/sluice

# Builds $(BINARY) from this checkout with plugins, e.g.
#   make build-custom WITH='--with example.com/you/sluice-foo=../sluice-foo'
# (see docs/plugins.md).
build-custom:
	$(GO) run ./cmd/sluice-build $(WITH) -o $(BINARY)

# Runs the quickstart pipeline: statsd on :9125, metrics on http://localhost:9470/metrics/default
run: build
	./$(BINARY) run --web.enable-lifecycle $(CONFIG)

# Installs what the tests need that Go cannot fetch (a PostgreSQL server).
deps:
	@bash scripts/ensure-deps.sh

test: deps
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed on:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) test-plugins
	$(MAKE) test-deploy
	$(MAKE) test-fuzz

# The plugins in plugins/ are modules of their own, outside ./... above:
# each is checked for tidiness, vetted and tested with the race detector.
# (cmd/sluice-build's TestBuildWithRepositoryPlugins builds them into a
# binary with sluice-build and validates their examples.)
test-plugins:
	@set -e; for m in plugins/*/go.mod; do \
		d=$$(dirname $$m); echo "== $$d"; \
		(cd $$d && $(GO) mod tidy -diff && $(GO) vet ./... && $(GO) test -race -count=1 -timeout 10m ./...); \
	done

# deploy/helm/test renders the Helm chart with Helm's engine and decodes it
# into client-go types; deploy/grafana/gen generates the Grafana dashboards.
# Each is a module of its own, so Helm, client-go and the Grafana SDK stay
# out of Sluice's go.mod. (The alert rules' promtool tests and the check of
# every metric name against a running agent are in ./deploy, above.) No
# -race: these tests start no goroutines, and Helm's libraries take minutes
# to compile a second time with the race detector on 2 cores.
test-deploy:
	@set -e; for d in deploy/helm/test deploy/grafana/gen; do \
		echo "== $$d"; \
		(cd $$d && $(GO) mod tidy -diff && $(GO) vet ./... && $(GO) test -count=1 -timeout 10m ./...); \
	done

# Regenerates deploy/grafana/*.json from deploy/grafana/gen.
dashboards:
	cd deploy/grafana/gen && $(GO) generate ./...

# Every fuzz target (main module and plugins), one after another, each for
# FUZZTIME; failing inputs land in the package's testdata/fuzz/ (commit
# them with the fix). See docs/operations.md#fuzzing.
FUZZTIME ?= 60s
fuzz:
	FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

# The short pass of `make test`: 300 executions per target (a few seconds;
# the corpus replay counts), so that a regression the fuzzer finds quickly
# fails CI. A count, not a duration: a duration can expire while a slow
# target (postgres starts a server) is still starting its workers, where
# Go's fuzzing engine may hang. (`go test` above already replays every seed
# and every committed testdata/fuzz input.)
test-fuzz:
	FUZZTIME=$(or $(TEST_FUZZTIME),300x) bash scripts/fuzz.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# The whole statsd comparison with statsd_exporter v0.31.0 (about 20
# minutes; not part of `make test`): lossless rate with 1 and 20 lines per
# datagram, overload, memory under a 15 s scrape loop. See bench/statsd.
bench-statsd:
	$(GO) run ./bench/statsd $(BENCH_ARGS)

fmt:
	gofmt -w $$(git ls-files '*.go')
	$(GO) run ./cmd/sluice fmt -w $$(git ls-files '*.hcl')

# Regenerates docs/components.md from the compiled-in components.
docs:
	SLUICE_UPDATE_DOCS=1 $(GO) test -count=1 -run TestComponentsReferenceIsCurrent ./sluicecmd
