// Package cache implements the cache component: it gathers one input in
// the background and serves the last good result from memory, so that
// scrapes never wait for a slow input, a failing input does not make its
// series vanish, and (with persist) a restarted agent serves the last
// values at once. "Overlap, never gap."
//
// Files:
//
//	cache.go     arguments, Build, Update, the exported Gatherer
//	run.go       the refresh loop: jitter, single flight, timeouts
//	snapshot.go  the immutable snapshot and the per-series staleness merge
//	persist.go   the snapshot file: format, atomic write, restore
//	metrics.go   self-metrics
package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluicehq/sluice/encoded"
	"github.com/sluicehq/sluice/internal/faultfs"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/ratelog"
)

func init() {
	pipeline.Register(pipeline.Registration[Arguments, Exports]{
		Name:      "cache",
		Stability: pipeline.StabilityExperimental,
		Summary:   "serves the last good gather of its input from memory: scrapes never wait, outages and restarts leave no gap",
		Build:     Build,
		Example: `cache "db" {
  input            = postgres_source.app.metrics
  refresh_interval = "15s"    # background gather of the input; scrapes read the snapshot
  max_staleness    = "10m"    # a series missing from the refreshes is kept this long
  persist          = true     # snapshot written under --storage.path, restored at start
  # refresh_timeout = "10s"
  # jitter          = "10%"
}`,
	})
}

// Limits of the arguments.
const (
	minRefreshInterval = 100 * time.Millisecond
	maxJitterPercent   = 50
)

// restoreWait bounds how long a scrape that arrives before the snapshot
// file has been read waits for it (see Component.Gather).
const restoreWait = 2 * time.Second

// Arguments configure a cache.
type Arguments struct {
	// Input is gathered in the background, never by a scrape.
	Input prometheus.Gatherer `hcl:"input"`
	// RefreshInterval is the time between the starts of two refreshes.
	RefreshInterval time.Duration `hcl:"refresh_interval,optional"`
	// RefreshTimeout abandons a refresh that runs longer. Unset (0), it is
	// min(defaultRefreshTimeout, RefreshInterval): see refreshTimeout.
	RefreshTimeout time.Duration `hcl:"refresh_timeout,optional"`
	// Jitter spreads refreshes: each wait is refresh_interval plus or minus
	// up to this share of it ("10%").
	Jitter string `hcl:"jitter,optional"`
	// MaxStaleness is how long a series missing from the refreshes is still
	// served.
	MaxStaleness time.Duration `hcl:"max_staleness,optional"`
	// Persist writes the snapshot under the storage path after every
	// successful refresh and restores it at start.
	Persist bool `hcl:"persist,optional"`
}

// Exports of a cache.
type Exports struct {
	// Metrics answers from the snapshot in memory, never by calling the
	// input.
	Metrics prometheus.Gatherer `hcl:"metrics"`
}

// defaultRefreshTimeout is refresh_timeout's default when refresh_interval
// is not shorter.
const defaultRefreshTimeout = 10 * time.Second

// SetDefaults sets the defaults: refresh every 15s (timeout 10s, or the
// interval when shorter; jitter 10%), keep a missing series 10m, no
// persistence.
func (a *Arguments) SetDefaults() {
	a.RefreshInterval = 15 * time.Second
	a.Jitter = "10%"
	a.MaxStaleness = 10 * time.Minute
}

// DefaultDocs implements pipeline.DefaultDocumenter.
func (a *Arguments) DefaultDocs() map[string]string {
	return map[string]string{"refresh_timeout": fmt.Sprintf("min(%v, refresh_interval)", defaultRefreshTimeout)}
}

// refreshTimeout is refresh_timeout when set, else the default adapted to
// refresh_interval (pipeline.DefaultTimeout).
func (a *Arguments) refreshTimeout() time.Duration {
	return pipeline.ScheduleTimeout(a.RefreshTimeout, a.RefreshInterval, defaultRefreshTimeout)
}

// Validate checks the arguments.
func (a *Arguments) Validate() error {
	var errs []error
	if a.Input == nil {
		errs = append(errs, pipeline.ErrorAt("input", errors.New("input is required")))
	}
	if a.RefreshInterval < minRefreshInterval {
		errs = append(errs, pipeline.ErrorAt("refresh_interval", fmt.Errorf("must be at least %v", minRefreshInterval)))
	}
	if a.RefreshTimeout < 0 {
		errs = append(errs, pipeline.ErrorAt("refresh_timeout", errors.New("must be positive")))
	}
	if _, err := parseJitter(a.Jitter); err != nil {
		errs = append(errs, pipeline.ErrorAt("jitter", err))
	}
	if a.MaxStaleness < a.RefreshInterval {
		errs = append(errs, pipeline.ErrorAt("max_staleness", fmt.Errorf(
			"%v is shorter than refresh_interval (%v): every series would expire between two refreshes", a.MaxStaleness, a.RefreshInterval)))
	}
	return errors.Join(errs...)
}

// parseJitter parses "10%" into 0.1.
func parseJitter(s string) (float64, error) {
	num, ok := strings.CutSuffix(strings.TrimSpace(s), "%")
	if !ok {
		return 0, fmt.Errorf("jitter %q: want a percentage such as \"10%%\"", s)
	}
	p, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || p < 0 || p > maxJitterPercent || p != p {
		return 0, fmt.Errorf("jitter %q: want a percentage from 0%% to %d%%", s, maxJitterPercent)
	}
	return p / 100, nil
}

// config is what the refresh loop uses, swapped whole by Commit.
type config struct {
	input        prometheus.Gatherer
	inputGen     uint64 // changes when input changes: refresh at once
	interval     time.Duration
	timeout      time.Duration
	jitter       float64
	maxStaleness time.Duration
	persist      bool
}

func newConfig(a Arguments, gen uint64) *config {
	j, _ := parseJitter(a.Jitter) // validated
	return &config{
		input: a.Input, inputGen: gen, interval: a.RefreshInterval, timeout: a.refreshTimeout(),
		jitter: j, maxStaleness: a.MaxStaleness, persist: a.Persist,
	}
}

// Component is a running cache. It is its own exported Gatherer, so
// consumers keep their reference across Updates.
type Component struct {
	opts    pipeline.Options[Exports]
	metrics *selfMetrics
	errLog  *slog.Logger // rate-limited
	// now is the clock; tests replace it before Start.
	now func() time.Time

	cfg      atomic.Pointer[config]
	snap     atomic.Pointer[snapshot] // what scrapes serve; immutable once stored
	versions atomic.Uint64            // the last snapshot version stored
	wake     chan struct{}            // Commit -> Run: the config changed

	// The restore of the snapshot file runs once, started by whichever
	// comes first: Run or a Gather (see Gather). restored is closed when
	// it has finished (at once when persist is off).
	restoreOnce sync.Once
	restored    chan struct{}

	// started is when the cache was built (Unix nanoseconds): the age of
	// a cache that has never refreshed counts from there.
	started atomic.Int64
	// health reflects the last refresh.
	health atomic.Pointer[pipeline.Health]

	// Owned by Run (one at a time; the kernel never runs two).
	hung    *gatherCall // the last abandoned gather, while it may still run
	persist persister

	// fixtureRefreshed is the last refresh on a test's fake clock
	// (fixture.go); zero outside sluice test.
	fixtureRefreshed time.Time
}

var (
	_ pipeline.Component[Arguments] = (*Component)(nil)
	_ pipeline.Validator            = (*Arguments)(nil)
	_ pipeline.DefaultDocumenter    = (*Arguments)(nil)
	_ pipeline.HealthReporter       = (*Component)(nil)
	_ prometheus.Gatherer           = (*Component)(nil)
	_ encoded.Versioned             = (*Component)(nil)
)

// Build creates a cache. It reads nothing and starts nothing: the snapshot
// file is read at the first Gather or Run, whichever comes first.
func Build(opts pipeline.Options[Exports], args Arguments) (pipeline.Component[Arguments], error) {
	c := &Component{
		opts:     opts,
		errLog:   ratelog.New(opts.Logger, ratelog.Options{Interval: 30 * time.Second}),
		now:      time.Now,
		wake:     make(chan struct{}, 1),
		restored: make(chan struct{}),
		persist:  persister{fs: faultfs.OS{}, dir: opts.DataPath},
	}
	if opts.Fixtures != nil {
		c.now = opts.Fixtures.Now // sluice test: the fake clock (fixture.go)
	}
	c.started.Store(c.now().UnixNano())
	c.cfg.Store(newConfig(args, 1))
	c.storeSnapshot(&snapshot{})
	m, err := newSelfMetrics(opts.Registerer, c)
	if err != nil {
		return nil, err
	}
	c.metrics = m
	opts.OnExports(Exports{Metrics: c})
	return c, nil
}

// Gather returns the snapshot's families. It never calls the input, and it
// copies nothing: every scrape shares the same immutable families, so
// callers must not modify them (metrics_sink copies what it rewrites).
//
// Restore: a scrape may arrive before Run has started (the kernel starts
// sinks first, and the agent is ready once the config is applied), so
// "read back before the first scrape is served" cannot rely on Run. Build
// cannot read the file either: it runs for `sluice validate` and for
// reloads that may be rejected. So the first of Run and Gather starts the
// restore, and a Gather waits for it, at most restoreWait: a scrape is
// then served from the restored snapshot, and a disk that hangs delays it
// by a bounded time instead of forever.
func (c *Component) Gather() ([]*dto.MetricFamily, error) {
	return c.snapshot().fams, nil
}

// GatherText is Gather encoded (encoded.Gatherer): a snapshot changes only
// at a refresh, so it is encoded at the first GatherText after that and
// every scrape until the next refresh copies the same bytes.
func (c *Component) GatherText() ([]encoded.Family, error) {
	return c.snapshot().encoded()
}

// GatherTextVersion is GatherText and the snapshot's version
// (encoded.Versioned): it changes at every refresh and restore.
func (c *Component) GatherTextVersion() ([]encoded.Family, uint64, error) {
	s := c.snapshot()
	fams, err := s.encoded()
	return fams, s.version, err
}

// storeSnapshot makes s the snapshot scrapes serve, with the next version.
func (c *Component) storeSnapshot(s *snapshot) {
	s.version = c.versions.Add(1)
	c.snap.Store(s)
}

// snapshot is the snapshot a scrape serves, once the restore has finished
// or restoreWait has passed (see Gather).
func (c *Component) snapshot() *snapshot {
	select {
	case <-c.restored:
	default:
		c.startRestore()
		t := time.NewTimer(restoreWait)
		select {
		case <-c.restored:
		case <-t.C:
			c.metrics.restoreWaitTimeouts.Inc()
		}
		t.Stop()
	}
	return c.snap.Load()
}

// Health is unhealthy while the last refresh failed (what is served is
// then older than the last attempt) or, with persist, while the snapshot
// file cannot be written (a restart would serve an older one).
func (c *Component) Health() pipeline.Health {
	if h := c.health.Load(); h != nil {
		return *h
	}
	return pipeline.Health{State: pipeline.HealthUnknown, Message: "no refresh yet"}
}

// Update readies new arguments. A changed input gets a new generation, so
// that Run refreshes at once; a changed interval only reschedules the next
// refresh. The snapshot is kept either way. Nothing is acquired.
func (c *Component) Update(args Arguments) (pipeline.Pending, error) {
	old := c.cfg.Load()
	gen := old.inputGen
	if !sameGatherer(old.input, args.Input) {
		gen++
	}
	cfg := newConfig(args, gen)
	return pipeline.CommitFunc(func() {
		c.cfg.Store(cfg)
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}), nil
}

// sameGatherer reports whether a and b are the same input: the same
// component's export (references are re-wrapped at every evaluation, so
// they compare by the source's ID), or the same value.
func sameGatherer(a, b prometheus.Gatherer) bool {
	ida, idb := pipeline.SourceID(a), pipeline.SourceID(b)
	if ida != "" || idb != "" {
		return ida == idb
	}
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	if !va.IsValid() || !vb.IsValid() {
		return va.IsValid() == vb.IsValid()
	}
	if va.Type() != vb.Type() || !va.Comparable() {
		return false
	}
	return va.Equal(vb)
}

func (c *Component) setHealth(state pipeline.HealthState, msg string) {
	now := c.now()
	if old := c.health.Load(); old != nil && old.State == state {
		now = old.Since
	}
	c.health.Store(&pipeline.Health{State: state, Message: msg, Since: now})
}

// Run refreshes the snapshot until ctx ends.
func (c *Component) Run(ctx context.Context) error {
	c.startRestore()
	select {
	case <-c.restored:
	case <-ctx.Done():
		return nil
	}
	return c.loop(ctx)
}
