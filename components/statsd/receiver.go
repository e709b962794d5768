package statsd

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/statsd_exporter/pkg/line"
	"github.com/prometheus/statsd_exporter/pkg/mapper"
	"github.com/prometheus/statsd_exporter/pkg/mappercache/lru"
	"github.com/prometheus/statsd_exporter/pkg/mappercache/randomreplacement"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/ratelog"
)

// Receiver is a running statsd_receiver.
type Receiver struct {
	opts pipeline.Options[Exports]
	// reporter counts, logs and watches for every part; seriesSet is the
	// shards, their stores and the routing to them.
	*reporter
	*seriesSet
	hooks testHooks
	// tcpBufs recycles TCP connections' read buffers (*[]byte).
	tcpBufs sync.Pool

	kdrops *kernelDrops
	// fastLines counts the lines the readers' fast path applied (for
	// tests and benchmarks: it is not a user's concern which path a line
	// took).
	fastLines atomic.Int64
	cfg       atomic.Pointer[runtimeConfig]

	mu      sync.Mutex // serialises Run's start and end with Update
	args    Arguments
	running bool
	// serves is running, kept apart from mu for Ready: /-/ready must not
	// wait for a reload that holds mu while it rebinds.
	serves    atomic.Bool
	listeners map[string]listener
	shardWG   sync.WaitGroup
	stopSweep chan struct{}
}

var (
	_ pipeline.Component[Arguments] = (*Receiver)(nil)
	_ pipeline.HealthReporter       = (*Receiver)(nil)
	_ pipeline.ReadinessReporter    = (*Receiver)(nil)
	_ pipeline.Validator            = (*Arguments)(nil)
	_ pipeline.Validator            = (*Mapping)(nil)
	_ pipeline.Validator            = (*MappingDefaults)(nil)
	_ pipeline.Validator            = (*SummaryOptions)(nil)
)

// New builds a receiver from provisioned arguments (the mapping compiled):
// it registers the self-metrics, and binds nothing.
func New(opts pipeline.Options[Exports], args Arguments) (*Receiver, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	// Upstream's parser logs bad lines at Debug; they are worth a (bounded)
	// warning here.
	warnLevel := slog.LevelWarn
	r := &Receiver{
		opts: opts,
		reporter: &reporter{
			log:      opts.Logger,
			badLog:   ratelog.New(opts.Logger, ratelog.Options{Interval: 10 * time.Second, Burst: 10, Level: &warnLevel}),
			panicLog: ratelog.New(opts.Logger, ratelog.Options{Interval: time.Minute, Burst: 3}),
			watchState: watchState{
				epoch:      time.Now(),
				stallAfter: defaultStallAfter,
				workers:    map[*progress]struct{}{},
				health:     pipeline.Health{State: pipeline.HealthHealthy, Since: time.Now()},
			},
		},
		seriesSet: &seriesSet{seed: maphash.MakeSeed()},
		kdrops:    newKernelDrops(),
		args:      args,
	}
	r.tcpBufs.New = func() any { b := make([]byte, tcpInitialBuf); return &b }
	m, err := newSelfMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("registering self-metrics: %w", err)
	}
	r.m = m
	seriesGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sluice_statsd_series",
		Help: "The number of series the receiver currently exports.",
	}, func() float64 { return float64(r.total.Load()) })
	if err := opts.Registerer.Register(seriesGauge); err != nil {
		return nil, fmt.Errorf("registering self-metrics: %w", err)
	}
	if err := opts.Registerer.Register(r.kdrops); err != nil {
		return nil, fmt.Errorf("registering self-metrics: %w", err)
	}
	reg := &deferredRegisterer{}
	cfg, err := r.compile(args, nil, reg)
	if err != nil {
		return nil, err
	}
	reg.register(replacingRegisterer{opts.Registerer}, r.log)
	r.commit(cfg)
	n := runtime.GOMAXPROCS(0)
	for range n {
		r.shards = append(r.shards, newShard(r.reporter, &r.hooks, &r.total, n))
	}
	opts.OnExports(Exports{Metrics: r.series()})
	return r, nil
}

// errNotProvisioned is returned for arguments that did not go through the
// kernel's Provision (which compiles the mapping).
var errNotProvisioned = errors.New("statsd_receiver: arguments were not provisioned (decode them with runtime.DecodeArguments)")

// compile turns provisioned arguments into a runtime configuration. The
// mapper (and its cache) is kept when neither the mapping nor the cache
// changed; otherwise the mapper Provision compiled is used. The new
// cache's metrics go to reg, registered when the configuration is
// committed.
func (r *Receiver) compile(args Arguments, prev *runtimeConfig, reg *deferredRegisterer) (*runtimeConfig, error) {
	if args.mapping == nil {
		return nil, errNotProvisioned
	}
	src := args.mapping.yaml
	cfg := &runtimeConfig{args: args, yaml: src, maxSeries: int64(args.MaxSeries)}
	if prev != nil && prev.yaml == src && prev.args.CacheType == args.CacheType && prev.args.CacheSize == args.CacheSize {
		cfg.mapper = prev.mapper
		cfg.cacheGets, cfg.cacheHits = prev.cacheGets, prev.cacheHits
	} else {
		cfg.mapper = args.mapping.mapper
		if prev != nil && prev.mapper == cfg.mapper {
			// The same compiled mapper with another cache: upstream's
			// UseCache would change the running one.
			m, err := newMapper(src, r.log)
			if err != nil {
				return nil, fmt.Errorf("mapping: %w", err)
			}
			cfg.mapper = m
		}
		if args.CacheSize > 0 {
			switch args.CacheType {
			case "random":
				c, err := randomreplacement.NewMetricMapperRRCache(reg, args.CacheSize)
				if err != nil {
					return nil, fmt.Errorf("mapper cache: %w", err)
				}
				cfg.mapper.UseCache(c)
			default:
				c, err := lru.NewMetricMapperLRUCache(reg, args.CacheSize)
				if err != nil {
					return nil, fmt.Errorf("mapper cache: %w", err)
				}
				// The readers' memos answer most lookups without the
				// cache, and count them in its gets and hits.
				cfg.cacheGets = reg.counter("statsd_metric_mapper_cache_gets_total")
				cfg.cacheHits = reg.counter("statsd_metric_mapper_cache_hits_total")
				// Upstream's LRU moves entries under a read lock; readers
				// share the mapper, so serialise its use.
				cfg.mapper.UseCache(&lockedCache{c: c})
			}
		}
	}
	cfg.unmapped = &mapper.MetricMapping{Ttl: cfg.mapper.Defaults.Ttl}
	if args.CacheSize > 0 {
		cfg.memoSize = min(args.CacheSize, maxMemo)
	}
	p := line.NewParser()
	if args.ParseDogStatsDTags {
		p.EnableDogstatsdParsing()
	}
	if args.ParseInfluxDBTags {
		p.EnableInfluxdbParsing()
	}
	if args.ParseLibratoTags {
		p.EnableLibratoParsing()
	}
	if args.ParseSignalFXTags {
		p.EnableSignalFXParsing()
	}
	cfg.parser = p
	return cfg, nil
}

func (r *Receiver) commit(cfg *runtimeConfig) {
	r.cfg.Store(cfg)
	r.m.mappingsCount.Set(float64(len(cfg.mapper.Mappings)))
	r.m.maxSeries.Set(float64(cfg.maxSeries))
}

type lockedCache struct {
	mu sync.Mutex
	c  mapper.MetricMapperCache
}

func (l *lockedCache) Get(k string) (any, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.c.Get(k)
}

func (l *lockedCache) Add(k string, v any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.c.Add(k, v)
}

func (l *lockedCache) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.c.Reset()
}

// Ready implements pipeline.ReadinessReporter: the agent is not ready
// before the sockets are bound and read.
func (r *Receiver) Ready() (bool, string) {
	if !r.serves.Load() {
		return false, "the sockets are not bound yet"
	}
	return true, ""
}

// Run binds the sockets, serves until ctx ends, then closes every socket
// and waits for every goroutine it started.
func (r *Receiver) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.running {
		r.mu.Unlock()
		return errors.New("statsd_receiver: already running")
	}
	r.listeners = map[string]listener{}
	fresh, err := r.bindChanged(r.args)
	if err != nil {
		r.mu.Unlock()
		return err
	}
	r.startShards()
	r.swapListeners(r.args, fresh)
	r.running = true
	r.serves.Store(true)
	r.log.Info("statsd receiver started", "addresses", r.addrsLocked())
	r.mu.Unlock()

	<-ctx.Done()

	r.mu.Lock()
	defer r.mu.Unlock()
	r.running = false
	r.serves.Store(false)
	r.closeListeners()
	r.stopShards()
	return nil
}

func (r *Receiver) startShards() {
	r.stopSweep = make(chan struct{})
	for i, s := range r.shards {
		r.shardWG.Add(1)
		go s.run(&r.shardWG, r.stopSweep, fmt.Sprintf("shard %d of %d (TTL sweep)", i+1, len(r.shards)))
	}
}

// stopShards is called once no reader is left (the readers apply what they
// hold before they exit): it stops the shards' sweeps.
func (r *Receiver) stopShards() {
	close(r.stopSweep)
	r.shardWG.Wait()
	r.stopSweep = nil
}

func (r *Receiver) closeListeners() {
	for k, l := range r.listeners {
		l.Close()
		delete(r.listeners, k)
	}
}

// Update readies new arguments: the runtime configuration from the mapping
// Provision compiled, and a socket for every changed address, bound while
// the old one still serves. If a bind fails, nothing changes. Commit
// starts the new sockets, closes the ones they replace and switches the
// readers to the new configuration; Abort closes the new sockets.
func (r *Receiver) Update(args Arguments) (pipeline.Pending, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	reg := &deferredRegisterer{}
	cfg, err := r.compile(args, r.cfg.Load(), reg)
	if err != nil {
		r.m.configLoads.WithLabelValues("failure").Inc()
		r.log.Error("update rejected, keeping the running configuration", "err", err)
		return nil, err
	}
	p := &pending{r: r, args: args, cfg: cfg, reg: reg, bound: r.running}
	if r.running {
		if p.fresh, err = r.bindChanged(args); err != nil {
			r.m.configLoads.WithLabelValues("failure").Inc()
			r.log.Error("update rejected, keeping the running configuration", "err", err)
			return nil, err
		}
	}
	return p, nil
}

// pending is a prepared Update.
type pending struct {
	r     *Receiver
	args  Arguments
	cfg   *runtimeConfig
	reg   *deferredRegisterer
	bound bool                // Update ran while Run was running
	fresh map[string]listener // bound for changed addresses, not started
}

func (p *pending) Commit() {
	r := p.r
	r.mu.Lock()
	defer r.mu.Unlock()
	fresh := p.fresh
	switch {
	case !r.running:
		// Run binds r.args when it starts.
		closeAll(fresh)
		fresh = nil
	case !p.bound:
		// Run started after Update: bind now, as Run would have.
		var err error
		if fresh, err = r.bindChanged(p.args); err != nil {
			r.log.Error("could not bind the new addresses; keeping the old sockets", "err", err)
			fresh = map[string]listener{}
		}
	}
	p.reg.register(replacingRegisterer{r.opts.Registerer}, r.log)
	r.commit(p.cfg)
	if r.running {
		r.swapListeners(p.args, fresh)
	}
	r.args = p.args
	r.m.configLoads.WithLabelValues("success").Inc()
}

func (p *pending) Abort() { closeAll(p.fresh) }

func closeAll(ls map[string]listener) {
	for _, l := range ls {
		l.Close()
	}
}

// deferredRegisterer holds the collectors a new mapper cache registers
// until the configuration is committed: an Update that is aborted must not
// replace the running cache's metrics.
type deferredRegisterer struct {
	collectors []prometheus.Collector
}

func (d *deferredRegisterer) Register(c prometheus.Collector) error {
	d.collectors = append(d.collectors, c)
	return nil
}

func (d *deferredRegisterer) MustRegister(cs ...prometheus.Collector) {
	d.collectors = append(d.collectors, cs...)
}

func (d *deferredRegisterer) Unregister(c prometheus.Collector) bool {
	for i, x := range d.collectors {
		if x == c {
			d.collectors = append(d.collectors[:i], d.collectors[i+1:]...)
			return true
		}
	}
	return false
}

// counter returns the held counter named name, or nil.
func (d *deferredRegisterer) counter(name string) prometheus.Counter {
	for _, c := range d.collectors {
		if ctr, ok := c.(prometheus.Counter); ok && strings.Contains(ctr.Desc().String(), `fqName: "`+name+`"`) {
			return ctr
		}
	}
	return nil
}

// register registers what it holds, in place of equal collectors.
func (d *deferredRegisterer) register(reg replacingRegisterer, log *slog.Logger) {
	for _, c := range d.collectors {
		if err := reg.Register(c); err != nil {
			// Upstream's cache metrics are fixed and valid: a failure is a
			// bug, worth a log line rather than a failed reload.
			log.Warn("registering mapper cache metrics failed", "err", err)
		}
	}
	d.collectors = nil
}

func (r *Receiver) newProcessor() *processor {
	m := r.m
	return &processor{
		rep:       r.reporter,
		cfgSrc:    &r.cfg,
		set:       r.seriesSet,
		hooks:     &r.hooks,
		fastLines: &r.fastLines,
		pending:   make([]*batch, len(r.shards)),
		lines:     localCounter{Counter: m.linesReceived},
		samples:   localCounter{Counter: m.samplesReceived},
		tags:      localCounter{Counter: m.tagsReceived},
		tagErrors: localCounter{Counter: m.tagErrors},
		unmapped:  localCounter{Counter: m.eventsUnmapped},
		actMap:    localCounter{Counter: m.actMap},
		actDrop:   localCounter{Counter: m.actDrop},
		prog:      &progress{name: "processor"},
	}
}

// newWatchedProcessor is newProcessor with its heartbeat registered with
// the watchdog under name; call the returned function when done.
func (r *Receiver) newWatchedProcessor(name string) (*processor, func()) {
	p := r.newProcessor()
	prog, unwatch := r.watch(name)
	p.prog = prog
	return p, unwatch
}
