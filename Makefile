# Sluice. `make run` runs the quickstart pipeline; `make test` runs every test.
GO       ?= go
BINARY   ?= sluice
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -X github.com/prometheus/common/version.Version=$(VERSION) \
            -X github.com/prometheus/common/version.Revision=$(REVISION) \
            -X github.com/prometheus/common/version.Branch=main
CONFIG   ?= config/examples/quickstart.hcl

.PHONY: build build-custom run test test-plugins test-deploy dashboards bench fmt deps docs

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

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

fmt:
	gofmt -w $$(git ls-files '*.go')
	$(GO) run ./cmd/sluice fmt -w $$(git ls-files '*.hcl')

# Regenerates docs/components.md from the compiled-in components.
docs:
	SLUICE_UPDATE_DOCS=1 $(GO) test -count=1 -run TestComponentsReferenceIsCurrent ./sluicecmd
