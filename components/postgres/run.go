package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pipeline"
)

// Component is a running postgres_source.
type Component struct {
	opts  pipeline.Options[Exports]
	log   *slog.Logger
	self  *selfMetrics
	store *store

	updated chan struct{} // Update -> Run, buffered 1

	mu    sync.Mutex
	plan  *plan    // latest arguments
	pools *poolSet // the running pools, for tests
	// prepared is the pool an Update opened for plan's connection
	// arguments, until Run takes it.
	prepared *poolSet
	logs     map[string]*logState

	health pipeline.HealthTracker
}

type logState struct {
	failing bool
	msg     string
	at      time.Time
}

var errNotProvisioned = errors.New("postgres_source: arguments were not provisioned (decode them with runtime.DecodeArguments)")

func build(opts pipeline.Options[Exports], args Arguments) (pipeline.Component[Arguments], error) {
	p := args.plan
	if p == nil {
		return nil, errNotProvisioned
	}
	self, err := newSelfMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("postgres_source: self-metrics: %w", err)
	}
	st := newStore()
	reg := prometheus.NewRegistry()
	if err := reg.Register(st); err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Component{
		opts:    opts,
		log:     logger,
		self:    self,
		store:   st,
		updated: make(chan struct{}, 1),
		plan:    p,
		logs:    map[string]*logState{},
	}
	c.health.Set(pipeline.HealthUnknown, "not started")
	for _, q := range p.queries {
		self.init(q.name)
	}
	opts.OnExports(Exports{Metrics: reg})
	return c, nil
}

// Update readies a new plan. When a connection argument changed it opens
// the new pool (which connects lazily) while the old one keeps serving;
// Commit hands the plan and the pool to Run, whose schedulers switch over
// (unchanged queries keep running with their values); Abort closes the new
// pool.
func (c *Component) Update(args Arguments) (pipeline.Pending, error) {
	p := args.plan
	if p == nil {
		return nil, errNotProvisioned
	}
	var pools *poolSet
	if cur := c.currentPlan(); cur.conn != p.conn {
		pools = newPoolSet(p.poolCfg, p.conn.maxConns)
		pools.conn = p.conn
		if _, err := pools.get(""); err != nil {
			pools.close()
			return nil, errors.New(p.redact.Error(err))
		}
	}
	return &pending{c: c, plan: p, pools: pools}, nil
}

// pending is a prepared Update.
type pending struct {
	c     *Component
	plan  *plan
	pools *poolSet // nil: the connection arguments are unchanged
}

func (u *pending) Commit() {
	c := u.c
	c.mu.Lock()
	if c.prepared != nil {
		c.prepared.close() // opened by an earlier Update that Run never took
	}
	c.plan, c.prepared = u.plan, u.pools
	c.mu.Unlock()
	select {
	case c.updated <- struct{}{}:
	default:
	}
}

func (u *pending) Abort() {
	if u.pools != nil {
		u.pools.close()
	}
}

// takePrepared returns the pool an Update opened for p's connection
// arguments, if any; Run then owns it.
func (c *Component) takePrepared(p *plan) *poolSet {
	c.mu.Lock()
	defer c.mu.Unlock()
	ps := c.prepared
	c.prepared = nil
	if ps != nil && ps.conn != p.conn {
		ps.close()
		return nil
	}
	return ps
}

// Health implements pipeline.HealthReporter: unhealthy while PostgreSQL
// cannot be reached.
func (c *Component) Health() pipeline.Health { return c.health.Health() }

func (c *Component) currentPlan() *plan {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.plan
}

// setUp records whether PostgreSQL answered, for pg_up and health.
func (c *Component) setUp(up bool, err error, red redactor) {
	c.store.setUp(up)
	msg := ""
	if !up {
		msg = "cannot reach PostgreSQL: " + red.Error(err)
	}
	changed := c.health.SetOK(up, msg)
	switch {
	case changed && up:
		c.log.Info("PostgreSQL is reachable")
	case changed:
		c.log.Warn("PostgreSQL is unreachable; keeping the last values", "err", red.Error(err))
	}
}

// logResult logs a query's failures at a bounded rate: on the first
// failure, when the message changes, and at most once a minute otherwise.
func (c *Component) logResult(q *queryDef, db, status string, err error, red redactor) {
	key := q.name + "\x00" + db
	c.mu.Lock()
	st := c.logs[key]
	if st == nil {
		st = &logState{}
		c.logs[key] = st
	}
	var logIt, recovered bool
	var msg string
	now := time.Now()
	if err == nil {
		recovered = st.failing
		st.failing = false
	} else {
		msg = red.Error(err)
		logIt = !st.failing || msg != st.msg || now.Sub(st.at) >= time.Minute
		st.failing, st.msg = true, msg
		if logIt {
			st.at = now
		}
	}
	c.mu.Unlock()
	attrs := []any{"query", q.name}
	if db != "" {
		attrs = append(attrs, "database", db)
	}
	switch {
	case recovered:
		c.log.Info("query succeeded again", attrs...)
	case logIt:
		c.log.Warn("query failed; keeping its last values", append(attrs, "status", status, "err", msg)...)
	}
}

// Run implements pipeline.Component.
func (c *Component) Run(ctx context.Context) error {
	r := &runner{c: c, scheds: map[string]*sched{}}
	defer r.shutdown()
	r.apply(ctx, c.currentPlan())
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.updated:
			r.apply(ctx, c.currentPlan())
		}
	}
}

// runner owns the pools and schedulers of one Run.
type runner struct {
	c      *Component
	plan   *plan
	pools  *poolSet
	sem    chan struct{} // at most max_conns runs at once, across databases
	scheds map[string]*sched
	probe  *sched
}

type sched struct {
	q      *queryDef
	cancel context.CancelFunc
	done   chan struct{}
}

func (s *sched) stop() {
	s.cancel()
	<-s.done
}

func (r *runner) apply(ctx context.Context, p *plan) {
	if p == r.plan {
		return
	}
	poolChanged := r.plan == nil || r.plan.conn != p.conn
	if poolChanged {
		if r.plan != nil {
			r.c.log.Info("connection arguments changed; replacing the connection pool")
		}
		r.stopAll()
		r.pools = r.c.takePrepared(p)
		if r.pools == nil {
			r.pools = newPoolSet(p.poolCfg, p.conn.maxConns)
		}
		r.pools.conn = p.conn
		r.sem = make(chan struct{}, p.conn.maxConns)
		r.c.mu.Lock()
		r.c.pools = r.pools
		r.c.mu.Unlock()
	}
	want := map[string]*queryDef{}
	keep := map[string][]string{}
	names := map[string]bool{}
	for _, q := range p.queries {
		want[q.key] = q
		keep[q.key] = q.databases
		names[q.name] = true
	}
	for key, s := range r.scheds {
		if want[key] == nil {
			s.stop()
			delete(r.scheds, key)
		}
	}
	if r.plan != nil {
		for _, q := range r.plan.queries {
			if !names[q.name] {
				r.c.self.forget(q.name)
			}
		}
	}
	r.c.store.retain(keep)
	for _, q := range p.queries {
		r.c.self.init(q.name)
		if _, running := r.scheds[q.key]; running {
			continue
		}
		red := p.redact
		r.scheds[q.key] = r.start(ctx, q.interval, func(ctx context.Context) { r.execute(ctx, q, red) }, func() { r.c.self.skipped(q.name) })
	}
	if poolChanged || r.plan.probeInterval != p.probeInterval || r.plan.probeTimeout != p.probeTimeout {
		if r.probe != nil {
			r.probe.stop()
		}
		r.probe = r.start(ctx, p.probeInterval, func(ctx context.Context) { r.ping(ctx, p) }, func() {})
	}
	r.plan = p
}

func (r *runner) stopAll() {
	var wg sync.WaitGroup
	for _, s := range r.scheds {
		wg.Add(1)
		go func() { defer wg.Done(); s.stop() }()
	}
	if r.probe != nil {
		r.probe.stop()
		r.probe = nil
	}
	wg.Wait()
	r.scheds = map[string]*sched{}
	if r.pools != nil {
		r.pools.close()
		r.pools = nil
	}
}

func (r *runner) shutdown() {
	r.stopAll()
}

// start runs fn on a grid of interval, first after a random offset
// (pipeline.Schedule). A tick that finds the previous run still going is
// skipped.
func (r *runner) start(parent context.Context, interval time.Duration, fn func(context.Context), skipped func()) *sched {
	ctx, cancel := context.WithCancel(parent)
	s := &sched{cancel: cancel, done: make(chan struct{})}
	sch := pipeline.Schedule{Interval: func() time.Duration { return interval }, First: pipeline.Jitter(interval), Skipped: skipped}
	go func() {
		defer close(s.done)
		sch.Run(ctx, fn)
	}()
	return s
}

// execute runs q once in each of its databases and records the outcome.
func (r *runner) execute(ctx context.Context, q *queryDef, red redactor) {
	start := time.Now()
	dbs := q.databases
	if len(dbs) == 0 {
		dbs = []string{""}
	}
	total, allOK := 0, true
	for _, db := range dbs {
		// One deadline per database covers the retry too: a run never
		// takes longer than its timeout (plus statementGrace).
		deadline := time.Now().Add(q.timeout)
		samples, rows, nulls, broken, err := r.execOnce(ctx, q, db, deadline)
		// A timed-out statement is not retried: it was slow, not broken,
		// and running it again would double the load it puts on the
		// server (and the run's duration).
		if err != nil && broken && classify(err) != statusTimeout && ctx.Err() == nil {
			samples, rows, nulls, _, err = r.execOnce(ctx, q, db, deadline)
		}
		if ctx.Err() != nil {
			return // stopping or reloading: not an outcome of the query
		}
		status := classify(err)
		r.c.self.count(q.name, status)
		r.c.logResult(q, db, status, err, red)
		if err != nil {
			allOK = false
			// pg_up is about the server: a database listed in databases
			// that cannot be reached is that query's error only.
			if db == "" {
				switch {
				case isConnError(err):
					r.c.setUp(false, err, red)
				case serverAnswered(err):
					// An error from the server itself (statement_timeout
					// included) proves it is up: without this, a first run
					// that times out before any ping left pg_up at 0.
					r.c.setUp(true, nil, red)
				}
			}
			continue
		}
		r.c.self.nullValues(q.name, nulls)
		r.c.store.set(q.key, db, samples)
		r.c.setUp(true, nil, red)
		total += rows
	}
	r.c.self.finish(q.name, time.Since(start), total, allOK, time.Now())
}

// ping keeps pg_up current even when no query is due.
func (r *runner) ping(ctx context.Context, p *plan) {
	pool, err := r.pools.get("")
	if err != nil {
		return
	}
	if st := pool.Stat(); st.AcquiredConns() >= st.MaxConns() {
		return // every connection is busy with queries, which report for themselves
	}
	pctx, cancel := context.WithTimeout(ctx, p.probeTimeout)
	defer cancel()
	err = pool.Ping(pctx)
	if ctx.Err() != nil {
		return
	}
	r.c.setUp(err == nil, err, p.redact)
}

// poolSet is the DSN's pool plus one small pool per other database that a
// query lists in databases, created on first use.
type poolSet struct {
	conn     connSettings // what cfg was made from
	cfg      *pgxpool.Config
	maxConns int
	mu       sync.Mutex
	pools    map[string]*pgxpool.Pool
}

func newPoolSet(cfg *pgxpool.Config, maxConns int) *poolSet {
	return &poolSet{cfg: cfg, maxConns: maxConns, pools: map[string]*pgxpool.Pool{}}
}

func (s *poolSet) get(db string) (*pgxpool.Pool, error) {
	if db == s.cfg.ConnConfig.Database {
		db = ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.pools[db]; p != nil {
		return p, nil
	}
	cfg := s.cfg.Copy()
	if db != "" {
		cfg.ConnConfig.Database = db
		cfg.MaxConns = 1
		cfg.MaxConnIdleTime = 5 * time.Minute
	}
	// NewWithConfig does not connect (MinConns is 0): a database that is
	// down at start-up is not an error here.
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("connection pool: %w", err)
	}
	s.pools[db] = p
	return p, nil
}

func (s *poolSet) close() {
	s.mu.Lock()
	pools := s.pools
	s.pools = map[string]*pgxpool.Pool{}
	s.mu.Unlock()
	for _, p := range pools {
		p.Close()
	}
}
