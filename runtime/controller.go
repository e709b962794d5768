package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/zclconf/go-cty/cty"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/pipeline"
)

// ControllerOptions configure a Controller.
type ControllerOptions struct {
	Logger *slog.Logger
	// Registry is the agent's own registry; the controller registers its
	// self-metrics there. Required.
	Registry *prometheus.Registry
	// DataPath is the parent of every component's data directory.
	DataPath string
	// HTTP mounts component handlers on the agent server.
	HTTP HTTPMounter
	// WebConfigFile is handed to components as Options.WebConfigFile.
	WebConfigFile string
	// HTTPTimeouts is handed to components as Options.HTTPTimeouts.
	HTTPTimeouts pipeline.HTTPTimeouts
	// LookupEnv replaces os.LookupEnv for env() (tests).
	LookupEnv LookupEnvFunc
	// MinBackoff and MaxBackoff bound the delay before restarting a failed
	// component (defaults 1s and 1m).
	MinBackoff, MaxBackoff time.Duration
	// StopTimeout bounds how long a component may take to stop (default 10s).
	StopTimeout time.Duration
	// ReadFile replaces os.ReadFile for every file the controller reads:
	// the config, file(), referenced files, ProvisionContext.ReadFile
	// (tests count reads with it).
	ReadFile func(string) ([]byte, error)
	// LoadOptions are applied to every config the controller loads.
	LoadOptions
	// Fixtures is handed to components as Options.Fixtures (LoadFixtureGraph
	// sets it; the agent never does).
	Fixtures *pipeline.Fixtures
}

// Controller owns the running graph and applies new configs to it.
type Controller struct {
	opts      ControllerOptions
	logger    *slog.Logger
	configDir string

	applyMu  sync.Mutex // serializes Apply and re-evaluations
	filename string
	lastHash string   // fingerprint of the last attempt (see fingerprint)
	files    []string // files the config depends on (see fingerprint)
	closed   bool     // stopped: Apply refuses to start anything

	// watched is the config file and c.files, for the watcher, which must
	// not wait for applyMu while an Apply stops components.
	watched atomic.Pointer[[]string]
	// The declarations of the running config, in topological order, and
	// its parse (for diagnostics): an export change re-evaluates some of
	// them without parsing the file again.
	decls  []*declaration
	parsed *parsedConfig

	mu    sync.RWMutex
	nodes map[string]*node
	order []string // topological: producers before consumers
	ready bool

	agentGatherer prometheus.Gatherer
	agentExports  cty.Value
	reapply       chan struct{}
	dirtyMu       sync.Mutex
	dirty         map[string]bool // components whose exports changed since the last re-evaluation

	reloads            *prometheus.CounterVec
	lastReloadOK       prometheus.Gauge
	lastReloadOKTime   prometheus.Gauge
	configHash         *prometheus.GaugeVec
	evaluationDuration prometheus.Histogram

	status statusState // for the status UI (controller_status.go)
}

// NewController returns a controller with no components.
func NewController(opts ControllerOptions) *Controller {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(time.Minute, opts.MinBackoff)
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 10 * time.Second
	}
	c := &Controller{
		opts:    opts,
		logger:  opts.Logger,
		nodes:   map[string]*node{},
		reapply: make(chan struct{}, 1),
		dirty:   map[string]bool{},
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_config_reloads_total",
			Help: "Config loads and reloads, by result (success or failure).",
		}, []string{"result"}),
		lastReloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_config_last_reload_successful",
			Help: "Whether the last attempt to load the config succeeded (1) or was rejected (0).",
		}),
		lastReloadOKTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful config load.",
		}),
		configHash: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_config_hash",
			Help: "SHA-256 of the running config, as a label; the value is always 1.",
		}, []string{"sha256"}),
		evaluationDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sluice_component_evaluation_seconds",
			Help:    "Time to load, decode and validate a whole config.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
		}),
	}
	c.reloads.WithLabelValues("success")
	c.reloads.WithLabelValues("failure")
	opts.Registry.MustRegister(c.reloads, c.lastReloadOK, c.lastReloadOKTime, c.configHash, c.evaluationDuration, componentCollector{c})
	c.agentGatherer = prometheus.Gatherers{opts.Registry, prometheus.GathererFunc(c.gatherComponents)}
	c.agentExports = cty.ObjectVal(map[string]cty.Value{"metrics": schema.GathererVal(schema.Exported(c.agentGatherer, agentRoot))})
	return c
}

func (c *Controller) setWatched(filename string, files []string) {
	w := append([]string{filename}, files...)
	c.watched.Store(&w)
}

func (c *Controller) now() time.Time { return time.Now() }

// LoadFile reads filename and applies it. With force false, a file whose
// content is unchanged since the last attempt (and whose referenced files
// are unchanged) is skipped (returns nil). Every file is read once: the
// check and the load share the reads.
func (c *Controller) LoadFile(filename string, force bool) error {
	s, err := readSource(filename, c.opts.ReadFile)
	if err != nil {
		c.recordFailure()
		c.noteReload("load", err)
		return err
	}
	if !force {
		c.applyMu.Lock()
		same := c.filename == filename && c.lastHash == s.fingerprint(c.files)
		c.applyMu.Unlock()
		if same {
			return nil
		}
	}
	err = c.apply(s)
	c.noteReload("load", err)
	return err
}

// Validate loads src exactly as Apply would (every block decoded, validated,
// provisioned and built) without running anything or touching the running
// graph, with default LoadOptions.
func Validate(filename string, src []byte, lookupEnv LookupEnvFunc) error {
	return ValidateWith(filename, src, ValidateOptions{LookupEnv: lookupEnv})
}

// ValidateOptions configure ValidateWith.
type ValidateOptions struct {
	LookupEnv LookupEnvFunc
	LoadOptions
}

// ValidateWith is Validate with the agent's load options (sluice validate
// passes the flags run would get).
func ValidateWith(filename string, src []byte, o ValidateOptions) error {
	c := NewController(ControllerOptions{LookupEnv: o.LookupEnv, LoadOptions: o.LoadOptions, Logger: slog.New(slog.DiscardHandler)})
	s := newSource(filename, src, nil)
	c.configDir = s.dir
	l := c.newLoader(s.files, false)
	l.inst = func(ln *loadedNode) (cty.Value, error) {
		n, err := c.buildNode(ln)
		if err != nil {
			return cty.NilVal, err
		}
		return n.exportsValue(), nil
	}
	_, _, err := l.load(s)
	return err
}

// newLoader returns a loader that sees the running components.
func (c *Controller) newLoader(files *fileCache, trustFiles bool) *loader {
	c.mu.RLock()
	running := c.nodes
	c.mu.RUnlock()
	return &loader{
		configDir:    c.configDir,
		opts:         c.opts.LoadOptions,
		lookupEnv:    c.opts.LookupEnv,
		agentExports: c.agentExports,
		files:        files,
		logger:       c.logger,
		trustFiles:   trustFiles,
		prior: func(id string) (priorNode, bool) {
			n := running[id]
			if n == nil {
				return priorNode{}, false
			}
			return priorNode{eval: n.eval, args: n.args, files: n.files, filesHash: n.filesHash}, true
		},
	}
}

func (c *Controller) buildNode(ln *loadedNode) (*node, error) {
	n := &node{
		id:        ln.id,
		typ:       ln.ct.Name,
		ct:        ln.ct,
		args:      ln.args,
		eval:      ln.eval,
		files:     ln.files,
		filesHash: ln.filesHash,
		deps:      ln.deps,
		logger:    c.logger.With("component_id", ln.id),
		selfReg:   prometheus.NewRegistry(),
		state:     HealthUnknown,
		since:     c.now(),
	}
	dataPath := filepath.Join(c.opts.DataPath, strings.ReplaceAll(ln.id, "/", "_"))
	if c.opts.Fixtures != nil {
		dataPath = "" // a test persists nothing
	}
	inst, err := ln.ct.Build(Options[any]{
		ID:         ln.id,
		Logger:     n.logger,
		Registerer: prometheus.WrapRegistererWith(prometheus.Labels{"component_id": ln.id}, n.selfReg),
		DataPath:   dataPath,
		ConfigDir:  c.configDir,
		OnExports:  n.setExports,
		HTTP:       c.opts.HTTP,

		WebConfigFile: c.opts.WebConfigFile,
		HTTPTimeouts:  c.opts.HTTPTimeouts,
		Health:        c,
		Fixtures:      c.opts.Fixtures,
	}, ln.args)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.exportsErr != nil {
		// Say what went wrong, not only that no exports were published.
		return nil, fmt.Errorf("invalid exports: %w", n.exportsErr)
	}
	if n.exportsVal == cty.NilVal {
		return nil, errors.New("Build did not publish its exports (OnExports)")
	}
	n.inst = inst
	n.onChange = c.exportsChanged
	return n, nil
}

// Apply loads src and, only if all of it loads, validates, provisions and
// builds, and every changed component accepts its new arguments, makes the
// running graph match it: unchanged components are left alone, changed ones
// switch to their new arguments, removed ones stop (producers first), new
// ones start (consumers first). Otherwise nothing running changes and the
// error is a *DiagnosticsError.
func (c *Controller) Apply(filename string, src []byte) error {
	err := c.apply(newSource(filename, src, c.opts.ReadFile))
	c.noteReload("load", err)
	return err
}

// change is a running component and the arguments it is switching to.
type change struct {
	n       *node
	ln      *loadedNode
	pending Pending
}

// apply applies the config s; the fingerprint it keeps (lastHash) covers
// s and the files the config depends on (c.files). After an accepted load,
// c.files are the files the config depends on; after a rejected one, also
// those the attempt tried to use (a missing mapping file: creating it is
// worth another try). Nothing else counts: a log file written next to the
// config must not make a rejected config be retried, and fail again, at
// every log line.
func (c *Controller) apply(s *source) error {
	c.applyMu.Lock()
	defer c.applyMu.Unlock()
	if c.closed {
		return ErrStopped
	}
	filename := s.filename
	c.filename = filename
	c.configDir = s.dir

	start := time.Now()
	c.mu.RLock()
	running := c.nodes
	c.mu.RUnlock()
	built := map[string]*node{}
	l := c.newLoader(s.files, false)
	l.inst = func(ln *loadedNode) (cty.Value, error) {
		if old := running[ln.id]; old != nil {
			return old.exportsValue(), nil
		}
		n, err := c.buildNode(ln)
		if err != nil {
			return cty.NilVal, err
		}
		built[ln.id] = n
		return n.exportsValue(), nil
	}
	g, tried, err := l.load(s)
	c.evaluationDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		c.reject(s, tried)
		return err
	}

	// Prepare every change; commit only if all of them can be made.
	var changed []*loadedNode
	for _, ln := range g.nodes {
		if running[ln.id] != nil && !ln.unchanged {
			changed = append(changed, ln)
		}
	}
	changes, err := c.prepare(running, changed, g.parsed)
	if err != nil {
		c.reject(s, tried)
		return err
	}

	// From here on the new config is accepted.
	var errs []error
	keep := map[string]bool{}
	for _, ln := range g.nodes {
		keep[ln.id] = true
	}
	c.mu.RLock()
	oldOrder := slices.Clone(c.order)
	c.mu.RUnlock()
	var removed []*node
	for _, id := range oldOrder { // producers first
		if !keep[id] {
			removed = append(removed, running[id])
		}
	}
	for i, err := range c.stopNodes(removed) {
		if err != nil {
			errs = append(errs, err)
		}
		removed[i].logger.Info("component stopped (removed from config)")
	}
	c.commit(changes)

	nodes := make(map[string]*node, len(g.nodes))
	order := make([]string, 0, len(g.nodes))
	for _, ln := range g.nodes {
		order = append(order, ln.id)
		if n := built[ln.id]; n != nil {
			nodes[ln.id] = n
			continue
		}
		n := running[ln.id]
		nodes[ln.id] = n
		n.mu.Lock()
		n.deps = ln.deps
		n.mu.Unlock()
	}
	for i := len(g.nodes) - 1; i >= 0; i-- { // consumers first
		if n := built[g.nodes[i].id]; n != nil {
			n.start(c)
			n.logger.Info("component started")
		}
	}

	c.mu.Lock()
	c.nodes, c.order, c.ready = nodes, order, true
	c.mu.Unlock()
	c.decls, c.parsed = g.decls, g.parsed
	c.noteConfig(g)
	c.files = g.files
	c.setWatched(filename, c.files)
	c.lastHash = s.fingerprint(c.files)
	c.reloads.WithLabelValues("success").Inc()
	c.lastReloadOK.Set(1)
	c.lastReloadOKTime.SetToCurrentTime()
	c.configHash.Reset()
	srcHash := s.hash()
	c.configHash.WithLabelValues(srcHash).Set(1)
	c.logger.Info("config applied", "file", filename, "components", len(order), "added", len(built), "updated", len(changes), "sha256", srcHash[:12])
	if len(errs) > 0 {
		return &ApplyError{Errs: errs}
	}
	return nil
}

// prepare calls Update on every changed component. If one fails, it aborts
// those already prepared and returns every failure as a diagnostic at its
// block.
func (c *Controller) prepare(running map[string]*node, changed []*loadedNode, parsed *parsedConfig) ([]change, error) {
	var changes []change
	var diags hcl.Diagnostics
	for _, ln := range changed {
		n := running[ln.id]
		p, err := n.prepare(ln.args)
		if err != nil {
			// Component errors may quote their arguments (a DSN).
			n.logger.Error("new arguments rejected; the reload is not applied", "err", RedactText(err.Error()))
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Failed to apply new arguments",
				Detail:   fmt.Sprintf("%s: %v", ln.id, err),
				Subject:  ln.rng.Ptr(),
			})
			continue
		}
		changes = append(changes, change{n: n, ln: ln, pending: p})
	}
	if diags.HasErrors() {
		for i := len(changes) - 1; i >= 0; i-- {
			changes[i].n.finish(changes[i].pending.Abort, "Abort")
		}
		return nil, parsed.diagnosticsError(diags)
	}
	return changes, nil
}

// commit switches every prepared component to its new arguments.
func (c *Controller) commit(changes []change) {
	now := c.now()
	for _, ch := range changes {
		ch.n.finish(ch.pending.Commit, "Commit")
		n, ln := ch.n, ch.ln
		n.args, n.eval, n.files, n.filesHash = ln.args, ln.eval, ln.files, ln.filesHash
		n.mu.Lock()
		n.lastUpdate = now
		n.mu.Unlock()
		n.logger.Info("component updated")
	}
}

// reject records a config that was not applied. The files it tried to
// use are watched from now on: a change to one is worth another try.
func (c *Controller) reject(s *source, tried []string) {
	c.files = dedup(append(slices.Clone(c.files), tried...))
	c.setWatched(s.filename, c.files)
	c.lastHash = s.fingerprint(c.files)
	c.recordFailure()
}

// ApplyError is returned by Apply when the config was accepted and is now
// running, but a removed component did not stop in time. A rejected config
// (one that did not load, or that a component could not take) is a
// *DiagnosticsError instead, and nothing changed.
type ApplyError struct {
	Errs []error
}

// Error redacts URL userinfo and passwords: component errors may quote
// their arguments, and this text is logged and served by /-/reload.
func (e *ApplyError) Error() string {
	return RedactText("config applied, but some components reported errors: " + errors.Join(e.Errs...).Error())
}

func (e *ApplyError) Unwrap() []error { return e.Errs }

func (c *Controller) recordFailure() {
	c.reloads.WithLabelValues("failure").Inc()
	c.lastReloadOK.Set(0)
}

// exportsChanged is called when a running component publishes new exports:
// Run re-evaluates the components that depend on it.
func (c *Controller) exportsChanged(id string) {
	c.dirtyMu.Lock()
	c.dirty[id] = true
	c.dirtyMu.Unlock()
	select {
	case c.reapply <- struct{}{}:
	default:
	}
}

// Run serves exports changes until ctx ends, then stops every component
// (producers first) and waits for them.
func (c *Controller) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			c.stopAll()
			return nil
		case <-c.reapply:
			c.dirtyMu.Lock()
			dirty := c.dirty
			c.dirty = map[string]bool{}
			c.dirtyMu.Unlock()
			err := c.reevaluate(dirty)
			c.noteReevaluation(err)
			if err != nil {
				c.logger.Error("re-evaluating after an exports change failed; the running pipeline is unchanged", "err", err)
			}
		}
	}
}

// reevaluate evaluates again the blocks that depend, directly or through
// others, on the components in changed, from the declarations of the
// running config (the file is not read again), and applies the result
// all-or-nothing like a reload. Blocks that do not depend on them are not
// looked at.
func (c *Controller) reevaluate(changed map[string]bool) error {
	c.applyMu.Lock()
	defer c.applyMu.Unlock()
	if c.closed || len(changed) == 0 {
		return nil
	}
	affected := map[string]bool{}
	var todo []*declaration
	for _, d := range c.decls { // topological: dependencies come first
		for _, dep := range d.deps {
			if changed[dep] || affected[dep] {
				affected[d.id] = true
				todo = append(todo, d)
				break
			}
		}
	}
	if len(todo) == 0 {
		return nil
	}
	c.mu.RLock()
	running := c.nodes
	c.mu.RUnlock()
	exports := make(map[string]cty.Value, len(running))
	for id, n := range running {
		exports[id] = n.exportsValue()
	}

	files := newFileCache(c.opts.ReadFile)
	l := c.newLoader(files, true)
	l.init()
	var diags hcl.Diagnostics
	var diff []*loadedNode
	for _, d := range todo {
		n := running[d.id]
		if n == nil {
			continue // not running: the running config failed to load it
		}
		ln, ds := l.evalDecl(d, exports)
		diags = append(diags, ds...)
		if ds.HasErrors() {
			continue
		}
		if !ln.unchanged {
			diff = append(diff, ln)
		}
	}
	if diags.HasErrors() {
		c.lastHash = "" // let the next reload of the same file retry
		c.recordFailure()
		return c.parsed.diagnosticsError(diags)
	}
	changes, err := c.prepare(running, diff, c.parsed)
	if err != nil {
		c.lastHash = ""
		c.recordFailure()
		return err
	}
	c.commit(changes)
	c.reloads.WithLabelValues("success").Inc()
	c.lastReloadOK.Set(1)
	c.lastReloadOKTime.SetToCurrentTime()
	c.logger.Info("re-evaluated after an exports change", "evaluated", len(todo), "updated", len(changes))
	return nil
}

func (c *Controller) stopAll() {
	c.applyMu.Lock()
	defer c.applyMu.Unlock()
	c.closed = true
	c.mu.Lock()
	nodes, order := c.nodes, c.order
	c.nodes, c.order = map[string]*node{}, nil
	c.mu.Unlock()
	all := make([]*node, len(order))
	for i, id := range order {
		all[i] = nodes[id]
	}
	for _, err := range c.stopNodes(all) {
		if err != nil {
			c.logger.Error("component did not stop", "err", err)
		}
	}
}

// stopNodes stops nodes together: it cancels each in the order given
// (producers first), then waits for all of them in parallel, each at most
// StopTimeout, so that stopping k slow components takes one StopTimeout,
// not k. errs[i] is nodes[i]'s.
func (c *Controller) stopNodes(nodes []*node) (errs []error) {
	for _, n := range nodes {
		n.cancelRun()
	}
	errs = make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { errs[i] = n.stop(c.opts.StopTimeout) })
	}
	wg.Wait()
	return errs
}

// ErrStopped is returned by Apply once the controller has stopped.
var ErrStopped = errors.New("the agent is shutting down")
