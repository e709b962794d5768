package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/ratelog"
)

var _ pipeline.Component[Arguments] = (*Component)(nil)

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

	mu       sync.Mutex // guards the fields below
	running  bool
	serving  *serving
	restored bool
}

// current is what a request uses: swapped whole by Commit.
type current struct {
	args Arguments
	plan *plan
}

// Build creates a webhook_receiver: no sockets, no goroutines, no files.
func Build(opts pipeline.Options[Exports], args Arguments) (pipeline.Component[Arguments], error) {
	m, err := newSelfMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	c := &Component{
		opts:   opts,
		m:      m,
		store:  newStore(),
		dedup:  newDedup(args.DedupKeys),
		reg:    prometheus.NewRegistry(),
		errLog: ratelog.New(opts.Logger, ratelog.Options{Interval: 10 * time.Second}),
	}
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
	opts.OnExports(Exports{Metrics: c.reg})
	return c, nil
}

// Run restores the state (once per instance), serves, and commits batches
// until ctx ends; then it stops serving, and writes a final snapshot.
func (c *Component) Run(ctx context.Context) error {
	var p *persister
	if c.opts.DataPath != "" {
		p = &persister{dir: c.opts.DataPath, onWrite: func(n int, sec float64) {
			c.m.persistedBytes.Add(float64(n))
			c.m.persistSeconds.Set(sec)
		}}
		c.mu.Lock()
		// Restore before serving: a request must never see (or change)
		// a state missing what was acknowledged.
		if !c.restored {
			skipped, err := p.restore(c.store)
			if err != nil {
				c.mu.Unlock()
				return err
			}
			if skipped > 0 {
				c.opts.Logger.Warn("skipped unreadable log lines while restoring (a torn last line after a crash was never acknowledged)", "lines", skipped)
			}
			c.restored = true
		} else {
			p.gen = c.store.restartGen
		}
		c.mu.Unlock()
	}
	var cm *committer
	if p != nil {
		kick := make(chan struct{}, 1)
		c.store.mu.Lock()
		c.store.log = &walBuffer{kick: kick}
		c.store.mu.Unlock()
		cm = &committer{s: c.store, p: p, kick: kick}
		cm.flush(true) // compact what was restored into a fresh snapshot
		c.store.restartGen = p.gen
	}

	c.mu.Lock()
	sv, err := c.acquire(c.cfg.Load().args)
	if err != nil {
		c.mu.Unlock()
		c.stopLog(cm, p)
		return err
	}
	c.start(sv)
	c.serving, c.running = sv, true
	c.mu.Unlock()

	sweep := time.NewTicker(250 * time.Millisecond)
	defer sweep.Stop()
	var kick chan struct{}
	if cm != nil {
		kick = cm.kick
	}
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-kick:
			cm.flush(false)
		case now := <-sweep.C:
			if n := c.store.expire(now); n > 0 {
				c.m.expired.Add(float64(n))
			}
		}
	}

	c.mu.Lock()
	sv, c.serving, c.running = c.serving, nil, false
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
	sv.stop()
	close(stopDrain)
	<-drained
	c.stopLog(cm, p)
	return nil
}

// stopLog writes what is buffered as a final snapshot and detaches the log.
func (c *Component) stopLog(cm *committer, p *persister) {
	if cm == nil {
		return
	}
	cm.flush(true)
	c.store.mu.Lock()
	c.store.log = nil
	c.store.mu.Unlock()
	c.store.restartGen = p.gen
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
	var fresh *serving
	old := cur.args
	if c.running && (args.Listen != old.Listen || args.prefix(c.opts.ID) != old.prefix(c.opts.ID)) {
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
	fresh *serving
}

func (p *pending) Commit() {
	c := p.c
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.cfg.Load().args
	moved := p.args.Listen != old.Listen || p.args.prefix(c.opts.ID) != old.prefix(c.opts.ID)
	rewebbed := p.args.Listen != "" && c.webConfig(p.args) != c.webConfig(old)
	var prev *serving
	switch {
	case !c.running:
		p.fresh.stop()
	case p.fresh != nil:
		c.start(p.fresh)
		prev, c.serving = c.serving, p.fresh
	case moved:
		sv, err := c.acquire(p.args)
		if err != nil {
			c.opts.Logger.Error("could not move to the new address; serving the old one", "err", err)
			break
		}
		c.start(sv)
		prev, c.serving = c.serving, sv
	case rewebbed:
		// Same address, another web config file: whether TLS is on is
		// decided when a server starts, so restart it on the address.
		c.serving.stop()
		c.serving = nil
		sv, err := c.acquire(p.args)
		if err != nil {
			c.opts.Logger.Error("could not restart the server with the new web config file; not serving until the next reload or restart", "err", err)
			break
		}
		c.start(sv)
		c.serving = sv
	}
	c.store.mu.Lock()
	c.store.setDefsLocked(p.args.plan.metrics, nowFunc().UnixMilli())
	c.store.mu.Unlock()
	c.dedup.mu.Lock()
	c.dedup.n = p.args.DedupKeys
	c.dedup.mu.Unlock()
	c.cfg.Store(&current{args: p.args, plan: p.args.plan})
	prev.stop()
}

func (p *pending) Abort() { p.fresh.stop() }

// serving is a mount on the agent server or an own server.
type serving struct {
	unmount func()
	active  atomic.Bool
	ln      net.Listener
	web     string // web config file of ln
	srv     *pipeline.HTTPServer
	addr    string
}

func (s *serving) stop() {
	if s == nil {
		return
	}
	if s.unmount != nil {
		s.unmount()
	}
	if s.srv != nil {
		s.srv.Shutdown(5 * time.Second)
	} else if s.ln != nil {
		_ = s.ln.Close()
	}
}

// acquire mounts (inactive) or binds for args. Called with c.mu held.
func (c *Component) acquire(args Arguments) (*serving, error) {
	if args.Listen == "" {
		if c.opts.HTTP == nil {
			return nil, errors.New("webhook_receiver: no agent HTTP server to mount on (set listen)")
		}
		sv := &serving{}
		prefix := args.prefix(c.opts.ID)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !sv.active.Load() {
				http.NotFound(w, r)
				return
			}
			c.serve(w, r, strings.TrimPrefix(r.URL.Path, prefix))
		})
		unmount, err := c.opts.HTTP.Mount(prefix+"/", h)
		if err != nil {
			return nil, fmt.Errorf("webhook_receiver: mount %s/: %w", prefix, err)
		}
		sv.unmount = unmount
		return sv, nil
	}
	// The own server has its web_config_file's TLS and auth, else the
	// agent's (--web.config.file); checked here so that a broken file
	// fails Run (retried, reported unhealthy) instead of a serving
	// goroutine.
	web := c.webConfig(args)
	if err := pipeline.ValidateWebConfig(web); err != nil {
		return nil, fmt.Errorf("webhook_receiver: %w", err)
	}
	ln, err := net.Listen("tcp", args.Listen)
	if err != nil {
		return nil, fmt.Errorf("webhook_receiver: %w", err)
	}
	return &serving{ln: ln, web: web, addr: ln.Addr().String()}, nil
}

// webConfig is the web config file of the receiver's own server.
func (c *Component) webConfig(args Arguments) string {
	return pipeline.WebConfigFor(args.WebConfigFile, c.opts.WebConfigFile)
}

// start serves what acquire bound or mounted. Called with c.mu held.
func (c *Component) start(sv *serving) {
	if sv.ln == nil {
		sv.active.Store(true)
		return
	}
	c.opts.Logger.Info("serving the push API", "address", sv.addr, "web_config_file", sv.web)
	sv.srv = pipeline.ServeHTTP(sv.ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { c.serve(w, r, r.URL.Path) }), sv.web, c.opts.Logger)
}

// Addr is the own server's address, or "": for tests when listen is ":0".
func (c *Component) Addr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.serving == nil || c.serving.srv == nil {
		return ""
	}
	return c.serving.addr
}

type selfMetrics struct {
	requests       *prometheus.CounterVec
	authFailures   *prometheus.CounterVec
	duplicates     *prometheus.CounterVec
	ruleErrors     *prometheus.CounterVec
	refused        *prometheus.CounterVec
	expired        prometheus.Counter
	persistedBytes prometheus.Counter
	persistSeconds prometheus.Gauge
}

func newSelfMetrics(reg prometheus.Registerer) (*selfMetrics, error) {
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
	}
	for _, col := range []prometheus.Collector{m.requests, m.authFailures, m.duplicates, m.ruleErrors, m.refused, m.expired, m.persistedBytes, m.persistSeconds} {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *selfMetrics) count(route string, code int) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
}
