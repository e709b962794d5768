// Package pipelinetest builds one component from an HCL body, runs it,
// updates it and reads its exports, so component tests read like usage:
//
//	h := pipelinetest.New(t, "relabel", `
//	  input = test.upstream
//	  rule { action = "drop" ... }
//	`, pipelinetest.WithGatherer("upstream", reg))
//	h.Start()
//	families, err := h.Gatherer().Gather()
//	err = h.Update(`input = test.upstream`) // decode, validate, provision, Update, Commit
//
// Bodies go through the same decoding, validation and provisioning as a
// block in a config file. It is a public package: plugins test their
// components with it.
package pipelinetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/zclconf/go-cty/cty"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runtime"
)

type config struct {
	configDir     string
	env           map[string]string
	gatherers     map[string]prometheus.Gatherer
	mounter       pipeline.HTTPMounter
	logger        *slog.Logger
	id            string
	dataPath      string
	webConfigFile string
}

// Option configures a harness.
type Option func(*config)

// WithGatherer makes g available in expressions as test.NAME.
func WithGatherer(name string, g prometheus.Gatherer) Option {
	return func(c *config) { c.gatherers[name] = g }
}

// WithDataPath sets the component's data directory (a new temporary
// directory by default), e.g. for a test that restarts a component on the
// state an earlier instance left.
func WithDataPath(dir string) Option { return func(c *config) { c.dataPath = dir } }

// WithConfigDir sets the directory relative paths resolve against.
func WithConfigDir(dir string) Option { return func(c *config) { c.configDir = dir } }

// WithEnv replaces the environment seen by env().
func WithEnv(env map[string]string) Option { return func(c *config) { c.env = env } }

// WithMounter sets what Options.HTTP mounts on (default: Mux, a fresh one).
func WithMounter(m pipeline.HTTPMounter) Option { return func(c *config) { c.mounter = m } }

// WithWebConfigFile sets Options.WebConfigFile, the agent's
// --web.config.file that components' own listeners use by default.
func WithWebConfigFile(path string) Option { return func(c *config) { c.webConfigFile = path } }

// WithLogger sets the component's logger (default: discards).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithID sets the component's instance name (default "test").
func WithID(name string) Option { return func(c *config) { c.id = name } }

// Harness runs one component.
type Harness struct {
	t    testing.TB
	cfg  config
	reg  pipeline.ComponentType
	name string
	inst pipeline.Instance

	// Component is what the component's Build returned (for example
	// *statsd.Receiver), for tests that look inside.
	Component any
	// Registry holds the component's self-metrics (without the component_id
	// label the agent adds).
	Registry *prometheus.Registry

	mu      sync.Mutex
	exports any

	cancel   context.CancelFunc
	finished chan struct{} // closed when Run returns
	runErr   error         // Run's result, valid once finished is closed
}

// Decode decodes, validates and provisions body for the component type
// name, returning a value of its Arguments type, or diagnostics instead of
// failing the test: for bad-config tests.
func Decode(t testing.TB, name, body string, opts ...Option) (any, hcl.Diagnostics) {
	t.Helper()
	cfg := newConfig(opts)
	reg, ok := pipeline.Lookup(name)
	if !ok {
		t.Fatalf("component %q is not registered (missing import?)", name)
	}
	return decode(reg, body, cfg)
}

func newConfig(opts []Option) config {
	cfg := config{gatherers: map[string]prometheus.Gatherer{}, id: "test"}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.configDir == "" {
		cfg.configDir = "."
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return cfg
}

func decode(reg pipeline.ComponentType, body string, cfg config) (any, hcl.Diagnostics) {
	f, diags := hclparse.NewParser().ParseHCL([]byte(body), "test.hcl")
	if diags.HasErrors() {
		return nil, diags
	}
	vars := map[string]cty.Value{}
	if len(cfg.gatherers) > 0 {
		m := map[string]cty.Value{}
		for k, g := range cfg.gatherers {
			m[k] = pipeline.GathererVal(g)
		}
		vars["test"] = cty.ObjectVal(m)
	}
	var lookup runtime.LookupEnvFunc
	if cfg.env != nil {
		lookup = func(k string) (string, bool) { v, ok := cfg.env[k]; return v, ok }
	}
	return runtime.DecodeArguments(reg, f.Body, cfg.configDir, lookup, vars)
}

// New decodes body and builds the component; any diagnostic fails the test.
func New(t testing.TB, name, body string, opts ...Option) *Harness {
	t.Helper()
	h, err := TryNew(t, name, body, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TryNew is New returning decode and build errors instead of failing.
func TryNew(t testing.TB, name, body string, opts ...Option) (*Harness, error) {
	t.Helper()
	cfg := newConfig(opts)
	reg, ok := pipeline.Lookup(name)
	if !ok {
		t.Fatalf("component %q is not registered (missing import?)", name)
	}
	args, diags := decode(reg, body, cfg)
	if diags.HasErrors() {
		return nil, diags
	}
	h := &Harness{t: t, cfg: cfg, reg: reg, name: name, Registry: prometheus.NewRegistry()}
	if cfg.mounter == nil {
		cfg.mounter = NewMux()
		h.cfg.mounter = cfg.mounter
	}
	id := name + "." + cfg.id
	dataPath := cfg.dataPath
	if dataPath == "" {
		dataPath = t.TempDir()
	}
	built := false
	inst, err := reg.Build(pipeline.Options[any]{
		ID:         id,
		Logger:     cfg.logger.With("component_id", id),
		Registerer: h.Registry,
		DataPath:   dataPath,
		ConfigDir:  cfg.configDir,
		OnExports: func(e any) {
			h.mu.Lock()
			h.exports = e
			h.mu.Unlock()
			built = true
		},
		HTTP:          cfg.mounter,
		WebConfigFile: cfg.webConfigFile,
	}, args)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", id, err)
	}
	if !built {
		t.Fatalf("%s: Build did not call OnExports", id)
	}
	h.inst, h.Component = inst, inst.Component()
	return h, nil
}

// Start runs the component in a goroutine; the test's cleanup stops it and
// fails the test if Run returned an error other than at stop.
func (h *Harness) Start() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.finished = make(chan struct{})
	go func() {
		h.runErr = h.inst.Run(ctx)
		close(h.finished)
	}()
	h.t.Cleanup(func() {
		if h.cancel != nil {
			if err := h.Stop(); err != nil {
				h.t.Errorf("Run: %v", err)
			}
		}
	})
}

// Stop cancels Run and waits (up to 10s) for it to return its error.
func (h *Harness) Stop() error {
	h.t.Helper()
	if h.cancel == nil {
		return errors.New("not started")
	}
	h.cancel()
	h.cancel = nil
	select {
	case <-h.finished:
		return h.runErr
	case <-time.After(10 * time.Second):
		h.t.Fatalf("Run did not return within 10s of its context ending")
		return nil
	}
}

// Done delivers Run's result when Run returns, for tests of components
// that fail; it may be called any number of times, and Stop still works.
func (h *Harness) Done() <-chan error {
	ch := make(chan error, 1)
	go func() {
		<-h.finished
		ch <- h.runErr
	}()
	return ch
}

// Update applies body as a reload would: decode, validate and provision
// it, call the component's Update and, if that succeeds, Commit. The error
// is the diagnostics of a bad body or Update's error.
func (h *Harness) Update(body string) error {
	h.t.Helper()
	p, err := h.Prepare(body)
	if err != nil {
		return err
	}
	p.Commit()
	return nil
}

// Prepare is Update without the decision: it returns the Pending of the
// component's Update, for tests of Commit and Abort.
func (h *Harness) Prepare(body string) (pipeline.Pending, error) {
	h.t.Helper()
	args, diags := decode(h.reg, body, h.cfg)
	if diags.HasErrors() {
		return nil, diags
	}
	return h.inst.Update(args)
}

// UpdateArgs calls the component's Update with arguments decoded already
// (Decode) and commits.
func (h *Harness) UpdateArgs(args any) error {
	h.t.Helper()
	p, err := h.inst.Update(args)
	if err != nil {
		return err
	}
	p.Commit()
	return nil
}

// Exports returns the latest exports.
func (h *Harness) Exports() any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.exports
}

// Gatherer returns the exported field tagged `hcl:"metrics"`.
func (h *Harness) Gatherer() prometheus.Gatherer {
	h.t.Helper()
	v := reflect.ValueOf(h.Exports())
	for i := 0; i < v.NumField(); i++ {
		if strings.HasPrefix(v.Type().Field(i).Tag.Get("hcl"), "metrics") {
			g, _ := v.Field(i).Interface().(prometheus.Gatherer)
			return g
		}
	}
	h.t.Fatalf("%s exports no metrics", h.name)
	return nil
}

// Eventually polls cond every 10ms until it holds or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: "+format, append([]any{timeout}, args...)...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Mux is a minimal HTTPMounter backed by an http.ServeMux-like table.
type Mux struct {
	mu sync.RWMutex
	m  map[string]http.Handler
}

// NewMux returns an empty Mux.
func NewMux() *Mux { return &Mux{m: map[string]http.Handler{}} }

// Mount implements pipeline.HTTPMounter.
func (m *Mux) Mount(path string, h http.Handler) (func(), error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for p := range m.m {
		if runtime.PathsOverlap(p, path) {
			return nil, fmt.Errorf("path %s is already mounted (%s)", path, p)
		}
	}
	m.m[path] = h
	return func() { m.mu.Lock(); delete(m.m, path); m.mu.Unlock() }, nil
}

// ServeHTTP serves mounted handlers by exact path, or by the longest
// subtree (a path ending in "/") covering the request's path.
func (m *Mux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.RLock()
	h := m.m[r.URL.Path]
	if h == nil {
		best := ""
		for p, ph := range m.m {
			if runtime.IsSubtreePath(p) && len(p) > len(best) && runtime.PathsOverlap(p, r.URL.Path) {
				best, h = p, ph
			}
		}
	}
	m.mu.RUnlock()
	if h == nil {
		http.NotFound(w, r)
		return
	}
	h.ServeHTTP(w, r)
}

// Buffer is a bytes.Buffer safe for concurrent writers and readers: a log
// sink for components, or a child process's output.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// Reset discards everything written so far.
func (b *Buffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b.Reset()
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// FreeTCPAddr returns a loopback address with a port that was free a moment
// ago, for programs that must be told their address before they bind.
func FreeTCPAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// FreeUDPAddr is FreeTCPAddr for UDP: a loopback address with a UDP port
// that was free a moment ago.
func FreeUDPAddr(t testing.TB) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}
