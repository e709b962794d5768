package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluicehq/sluice/encoded"
	"github.com/sluicehq/sluice/internal/faultfs"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/pipeline/web"
	"github.com/sluicehq/sluice/ratelog"
)

var (
	_ pipeline.Component[Arguments] = (*Component)(nil)
	_ pipeline.HealthReporter       = (*Component)(nil)
	_ pipeline.ReadinessReporter    = (*Component)(nil)
	_ encoded.Versioned             = (*Component)(nil)
)

// Component is a running webhook_receiver.
type Component struct {
	opts    pipeline.Options[Exports]
	m       *selfMetrics
	store   *store
	dedup   *dedup
	reg     *prometheus.Registry // the pushed series
	metrics http.Handler         // serves reg
	errLog  *slog.Logger         // rate-limited
	cfg     atomic.Pointer[current]
	// unverified counts the buffers of webhook bodies being read before
	// their signature is checked, across hooks and reloads.
	unverified budget
	chunkPool  sync.Pool // of *[chunkSize]byte, for reading unverified bodies

	// fs is where the state is written (faultfs.OS; tests inject faults).
	fs     faultfs.FS
	health pipeline.HealthTracker

	mu       sync.Mutex // guards the fields below
	running  bool
	serving  *web.Endpoint
	restored bool
	// persist holds the state files across Runs; nil until the first Run
	// (and without a data path).
	persist *persister

	// serves is c.serving.Serving(), kept apart from mu: Run holds mu
	// while it restores the state, and /-/ready must answer meanwhile.
	serves atomic.Bool
}

// current is what a request uses: swapped whole by Commit.
type current struct {
	args Arguments
	plan *plan
}

// Build creates a webhook_receiver: no sockets, no goroutines, no files.
func Build(opts pipeline.Options[Exports], args Arguments) (pipeline.Component[Arguments], error) {
	c := &Component{
		opts:   opts,
		store:  newStore(),
		dedup:  newDedup(args.DedupKeys),
		reg:    prometheus.NewRegistry(),
		errLog: ratelog.New(opts.Logger, ratelog.Options{Interval: 10 * time.Second}),
		fs:     faultfs.OS{},
	}
	c.chunkPool.New = func() any { return new([chunkSize]byte) }
	m, err := newSelfMetrics(opts.Registerer, func() float64 { return float64(c.unverified.used.Load()) })
	if err != nil {
		return nil, err
	}
	c.m = m
	c.store.onNonFinite = func(metric string) { c.m.nonFinite.WithLabelValues(metric).Inc() }
	c.store.onNew = func(metric string, refused bool) {
		if refused {
			c.m.refused.WithLabelValues(metric).Inc()
		}
	}
	if err := c.reg.Register(collector{c.store}); err != nil {
		return nil, err
	}
	c.store.durable = opts.DataPath != ""
	c.metrics = promhttp.HandlerFor(c.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	c.store.setDefsLocked(args.plan.metrics, nowFunc().UnixMilli())
	c.cfg.Store(&current{args: args, plan: args.plan})
	opts.OnExports(Exports{Metrics: c})
	return c, nil
}

// Gather is the pushed series (the receiver's export).
func (c *Component) Gather() ([]*dto.MetricFamily, error) { return c.reg.Gather() }

// GatherText is Gather encoded (encoded.Gatherer; text.go): a scrape
// encodes only the series that changed since the last one.
func (c *Component) GatherText() ([]encoded.Family, error) {
	fams, _, err := c.GatherTextVersion()
	return fams, err
}

// GatherTextVersion is GatherText and the store's change counter
// (encoded.Versioned): equal while nothing was pushed, removed or expired.
func (c *Component) GatherTextVersion() ([]encoded.Family, uint64, error) {
	fams, version, expired, err := c.store.gatherText(time.Now())
	if expired > 0 {
		c.m.expired.Add(float64(expired))
	}
	return fams, version, err
}

// Run restores the state (once per instance), serves, and commits batches
// until ctx ends; then it stops serving, and writes a final snapshot.
func (c *Component) Run(ctx context.Context) error {
	c.mu.Lock()
	// Restore before serving: a request must never see (or change) a
	// state missing what was acknowledged.
	p, err := c.restore()
	c.mu.Unlock()
	if err != nil {
		return err
	}
	var cm *committer
	if p != nil {
		kick := make(chan struct{}, 1)
		c.store.mu.Lock()
		c.store.log = &walBuffer{kick: kick}
		c.store.mu.Unlock()
		cm = &committer{s: c.store, p: p, kick: kick, onFault: c.persistFailed, onRecover: c.persistRecovered}
		// Compact what was restored into a fresh snapshot. On a full or
		// read-only disk this fails: the receiver still serves, refuses
		// changes, and the loop below retries.
		if err := cm.flush(true); err == nil {
			c.health.Set(pipeline.HealthHealthy, "")
		}
	} else {
		c.health.Set(pipeline.HealthHealthy, "")
	}

	c.mu.Lock()
	sv, err := c.acquire(c.cfg.Load().args)
	if err != nil {
		c.mu.Unlock()
		c.stopLog(cm, p)
		return err
	}
	sv.Start(c.opts.Logger, "the push API")
	c.serving, c.running = sv, true
	c.serves.Store(sv.Serving())
	c.mu.Unlock()

	sweep := time.NewTicker(250 * time.Millisecond)
	defer sweep.Stop()
	var kick chan struct{}
	if cm != nil {
		kick = cm.kick
	}
	// While writes fail nothing kicks the committer (changes are
	// refused): it retries on its own, with backoff.
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	var retryAt time.Time
loop:
	for {
		var retryC <-chan time.Time
		if cm != nil {
			if d, bad := cm.faulted(); bad {
				if retryAt.IsZero() {
					retryAt = time.Now().Add(d)
				}
				retry.Reset(time.Until(retryAt))
				retryC = retry.C
			} else {
				retryAt = time.Time{}
			}
		}
		select {
		case <-ctx.Done():
			break loop
		case <-kick:
			cm.flush(false)
		case <-retryC:
			retryAt = time.Time{}
			cm.flush(false)
		case now := <-sweep.C:
			if n := c.store.expire(now); n > 0 {
				c.m.expired.Add(float64(n))
			}
		}
	}

	c.mu.Lock()
	sv, c.serving, c.running = c.serving, nil, false
	c.serves.Store(false)
	c.mu.Unlock()
	// In-flight requests wait for their group commit: keep committing
	// while the server drains them.
	stopDrain, drained := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(drained)
		for {
			select {
			case <-stopDrain:
				return
			case <-kick:
				cm.flush(false)
			}
		}
	}()
	sv.Stop()
	close(stopDrain)
	<-drained
	c.stopLog(cm, p)
	return nil
}

// restore creates the persister and restores the state into the store, on
// the first Run; later Runs reuse it. (nil, nil) without a data path.
// Called with c.mu held.
func (c *Component) restore() (*persister, error) {
	if c.opts.DataPath == "" {
		return nil, nil
	}
	if c.restored {
		return c.persist, nil
	}
	p := &persister{fs: c.fs, dir: c.opts.DataPath, onWrite: func(n int, sec float64) {
		c.m.persistedBytes.Add(float64(n))
		c.m.persistSeconds.Set(sec)
	}}
	skipped, err := p.restore(c.store)
	if err != nil {
		c.health.Set(pipeline.HealthUnhealthy, err.Error())
		return nil, err
	}
	if p.emptySnapshot {
		c.m.persistErrors.WithLabelValues("restore").Inc()
		c.opts.Logger.Error("the state file is empty (written by an older version after a failed encoding): starting from an empty state; it is replaced by the next snapshot", "file", p.path(snapshotName))
	}
	if skipped > 0 {
		c.opts.Logger.Warn("skipped unreadable log lines while restoring (a torn last line after a crash was never acknowledged)", "lines", skipped)
	}
	c.persist, c.restored = p, true
	return p, nil
}

// persistFailed reports a failed write of the state (what: "log" or
// "snapshot"): counted, logged at most every 10s, and the component
// unhealthy while changes are refused.
func (c *Component) persistFailed(what string, err error) {
	c.m.persistErrors.WithLabelValues(what).Inc()
	if what == "snapshot" && !errors.Is(err, faultfs.ErrNotDurable) {
		// The log took the batch: changes are still accepted.
		c.errLog.Warn("writing a snapshot of the state failed: kept the previous one and its log, retrying later", "dir", c.opts.DataPath, "err", err)
		return
	}
	c.m.persistFailing.Set(1)
	c.errLog.Error("the state cannot be written: refusing changes, retrying", "dir", c.opts.DataPath, "err", err)
	if c.health.Set(pipeline.HealthUnhealthy, fmt.Sprintf("the state in %s cannot be written (%v): changes are refused (503) until it can; retrying", c.opts.DataPath, err)) {
		c.opts.Logger.Warn("webhook_receiver unhealthy: its state cannot be written", "dir", c.opts.DataPath, "err", err)
	}
}

// persistRecovered: a write succeeded after failures.
func (c *Component) persistRecovered() {
	c.m.persistFailing.Set(0)
	c.health.Set(pipeline.HealthHealthy, "")
	c.opts.Logger.Info("the state can be written again: accepting changes", "dir", c.opts.DataPath)
}

// Health is unhealthy while the state cannot be written (changes are
// refused) or could not be read at start.
func (c *Component) Health() pipeline.Health { return c.health.Health() }

// stopLog writes what is buffered as a final snapshot and detaches the log.
func (c *Component) stopLog(cm *committer, p *persister) {
	if cm == nil {
		return
	}
	if err := cm.flush(true); err != nil {
		c.opts.Logger.Error("writing the final state at stop failed: what was acknowledged is in the log and is restored at the next start", "dir", c.opts.DataPath, "err", err)
	}
	c.store.mu.Lock()
	c.store.log = nil
	c.store.mu.Unlock()
	p.close()
}

// Update readies new arguments: a changed listen address is bound, or a
// changed prefix mounted, while the old one still serves. A kept metric
// whose labels, type or buckets changed is refused: its series would not
// fit (rename the metric to start it afresh).
func (c *Component) Update(args Arguments) (pipeline.Pending, error) {
	cur := c.cfg.Load()
	for name, d := range args.plan.metrics {
		if old := cur.plan.metrics[name]; old != nil && !old.sameShape(d) {
			return nil, pipeline.ErrorAt("metric", fmt.Errorf("metric %q: changing its type, labels or buckets would make its stored series wrong; rename the metric (the old series are then dropped) or keep its shape", name))
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var fresh *web.Endpoint
	if c.running && c.endpoint(cur.args).Moves(c.endpoint(args)) {
		sv, err := c.acquire(args)
		if err != nil {
			return nil, err
		}
		fresh = sv
	}
	return &pending{c: c, args: args, fresh: fresh}, nil
}

type pending struct {
	c     *Component
	args  Arguments
	fresh *web.Endpoint
}

func (p *pending) Commit() {
	c := p.c
	c.mu.Lock()
	defer c.mu.Unlock()
	serve, retire := web.CommitEndpoint(c.running, c.serving, p.fresh, c.endpoint(c.cfg.Load().args), c.endpoint(p.args),
		func() (*web.Endpoint, error) { return c.acquire(p.args) }, c.opts.Logger, "the push API")
	c.serving = serve
	c.serves.Store(serve.Serving())
	c.store.mu.Lock()
	c.store.setDefsLocked(p.args.plan.metrics, nowFunc().UnixMilli())
	c.store.mu.Unlock()
	c.dedup.mu.Lock()
	c.dedup.n = p.args.DedupKeys
	c.dedup.mu.Unlock()
	c.cfg.Store(&current{args: p.args, plan: p.args.plan})
	retire.Stop()
}

func (p *pending) Abort() { p.fresh.Stop() }

// endpoint is where args serve the API: mounted on the agent's server
// under the prefix, or on an own server at Listen with the receiver's or
// the agent's web config file.
func (c *Component) endpoint(args Arguments) web.EndpointSpec {
	return web.EndpointSpec{Listen: args.Listen, MountPath: args.prefix(c.opts.ID) + "/", WebConfigFile: web.WebConfigFor(args.WebConfigFile, c.opts.WebConfigFile), Timeouts: c.opts.HTTPTimeouts}
}

// acquire mounts (inactive) or binds for args. Called with c.mu held.
func (c *Component) acquire(args Arguments) (*web.Endpoint, error) {
	prefix := args.prefix(c.opts.ID)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { c.serve(w, r, r.URL.Path) })
	if args.Listen == "" {
		h = func(w http.ResponseWriter, r *http.Request) { c.serve(w, r, strings.TrimPrefix(r.URL.Path, prefix)) }
	}
	e, err := web.AcquireEndpoint(c.endpoint(args), c.opts.HTTP, h)
	if err != nil {
		return nil, fmt.Errorf("webhook_receiver: %w", err)
	}
	return e, nil
}

// Ready implements pipeline.ReadinessReporter: the push API is served
// only once the state is restored, and the agent is not ready before.
func (c *Component) Ready() (bool, string) {
	if !c.serves.Load() {
		return false, "the push API is not served yet (restoring the state, or binding its address)"
	}
	return true, ""
}

// Addr is the own server's address, or "": for tests when listen is ":0".
func (c *Component) Addr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.serving.Addr()
}

type selfMetrics struct {
	requests       *prometheus.CounterVec
	authFailures   *prometheus.CounterVec
	duplicates     *prometheus.CounterVec
	ruleErrors     *prometheus.CounterVec
	bodiesRefused  *prometheus.CounterVec
	refused        *prometheus.CounterVec
	expired        prometheus.Counter
	persistedBytes prometheus.Counter
	persistSeconds prometheus.Gauge
	persistErrors  *prometheus.CounterVec
	persistFailing prometheus.Gauge
	nonFinite      *prometheus.CounterVec
}

func newSelfMetrics(reg prometheus.Registerer, unverified func() float64) (*selfMetrics, error) {
	m := &selfMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_webhook_requests_total",
			Help: "Requests, by route (api, hook, metrics, other) and HTTP status code.",
		}, []string{"route", "code"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_webhook_auth_failures_total",
			Help: "Requests refused for a missing or wrong token or signature, by route (api, or hook:NAME).",
		}, []string{"route"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_webhook_duplicates_total",
			Help: "Deliveries dropped because their Idempotency-Key, X-Gitlab-Event-UUID, X-GitHub-Delivery or webhook-id was seen before, by route.",
		}, []string{"route"}),
		ruleErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_webhook_rule_errors_total",
			Help: "Rules that could not be evaluated or applied on a delivery (a missing field, a non-number value, a refused series), by webhook.",
		}, []string{"webhook"}),
		bodiesRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_webhook_bodies_refused_total",
			Help: "Bodies refused before any rule ran, by route (api, or hook:NAME) and reason: too_large, too_deep, too_many_values, timeout, syntax (the JSON decoding limits); unverified_budget (max_unverified_bytes of unverified webhook bodies in flight, answered 503); body_timeout (not received within the read timeout, 408).",
		}, []string{"route", "reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_webhook_series_refused_total",
			Help: "New series refused because the metric reached max_series, by metric.",
		}, []string{"metric"}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_webhook_series_expired_total",
			Help: "Series removed because their metric's ttl passed without an update.",
		}),
		persistedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_webhook_persisted_bytes_total",
			Help: "Bytes written to the state directory (log appends and snapshots).",
		}),
		persistSeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_webhook_last_persist_duration_seconds",
			Help: "Duration of the last write and fsync of the state (one group commit or one snapshot).",
		}),
		persistErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_webhook_persist_errors_total",
			Help: "Failed writes of the state directory, by what (log: a group commit, or cutting the log back or reopening it; snapshot: a compaction, after which the log is kept; restore: an empty state file found at start).",
		}, []string{"what"}),
		persistFailing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_webhook_persist_failing",
			Help: "1 while the state cannot be written (full disk, I/O error, read-only): changes are refused with 503 and the receiver retries; 0 otherwise.",
		}),
		nonFinite: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_webhook_nonfinite_refused_total",
			Help: "Changes refused (400) because the resulting value or histogram sum would overflow to +Inf or -Inf, by metric.",
		}, []string{"metric"}),
	}
	unverifiedBytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sluice_webhook_unverified_bytes",
		Help: "Bytes of buffer held by webhook bodies being read before their signature is checked (bounded by max_unverified_bytes).",
	}, unverified)
	m.persistErrors.WithLabelValues("log")
	m.persistErrors.WithLabelValues("snapshot")
	for _, col := range []prometheus.Collector{unverifiedBytes, m.requests, m.authFailures, m.duplicates, m.ruleErrors, m.bodiesRefused, m.refused, m.expired, m.persistedBytes, m.persistSeconds, m.persistErrors, m.persistFailing, m.nonFinite} {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *selfMetrics) count(route string, code int) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
}
