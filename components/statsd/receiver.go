package statsd

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
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

// flushHold is how long a reader may hold mapped events before handing them
// to the shards when its socket is quiet. Batching across datagrams saves
// a shard wake-up per datagram; a scrape sees events at most this late.
const flushHold = time.Millisecond

// packetReaders is the number of goroutines (and descriptors) reading one
// UDP or unixgram socket: GOMAXPROCS, or SLUICE_STATSD_READERS (for
// benchmarking).
var packetReaders = func() int {
	if v, err := strconv.Atoi(os.Getenv("SLUICE_STATSD_READERS")); err == nil && v > 0 {
		return v
	}
	return runtime.GOMAXPROCS(0)
}()

// Receiver is a running statsd_receiver.
type Receiver struct {
	opts     pipeline.Options[Exports]
	log      *slog.Logger
	badLog   *slog.Logger // bounded rate, for bad input
	panicLog *slog.Logger // bounded rate, for recovered panics
	m        *selfMetrics
	watchState
	hooks testHooks
	// tcpBufs recycles TCP connections' read buffers (*[]byte).
	tcpBufs sync.Pool

	exported *prometheus.Registry
	kdrops   *kernelDrops
	shards   []*shard
	seed     maphash.Seed
	total    atomic.Int64 // live series, all shards
	// fastLines counts the lines the readers' fast path applied (for
	// tests and benchmarks: it is not a user's concern which path a line
	// took).
	fastLines atomic.Int64
	cfg       atomic.Pointer[runtimeConfig]

	mu        sync.Mutex // serialises Run's start and end with Update
	args      Arguments
	running   bool
	listeners map[string]listener
	shardWG   sync.WaitGroup
	stopSweep chan struct{}
}

var (
	_ pipeline.Component[Arguments] = (*Receiver)(nil)
	_ pipeline.HealthReporter       = (*Receiver)(nil)
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
		opts:     opts,
		log:      opts.Logger,
		badLog:   ratelog.New(opts.Logger, ratelog.Options{Interval: 10 * time.Second, Burst: 10, Level: &warnLevel}),
		panicLog: ratelog.New(opts.Logger, ratelog.Options{Interval: time.Minute, Burst: 3}),
		exported: prometheus.NewRegistry(),
		kdrops:   newKernelDrops(),
		seed:     maphash.MakeSeed(),
		args:     args,
		watchState: watchState{
			epoch:      time.Now(),
			stallAfter: defaultStallAfter,
			workers:    map[*progress]struct{}{},
			health:     pipeline.Health{State: pipeline.HealthHealthy, Since: time.Now()},
		},
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
		r.shards = append(r.shards, newShard(r, r.exported))
	}
	opts.OnExports(Exports{Metrics: seriesGatherer{r}})
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

// eventError counts and logs (at a bounded rate) a dropped event.
func (r *Receiver) eventError(reason, msg string, kv ...any) {
	r.m.errorEventStats.WithLabelValues(reason).Inc()
	r.badLog.Warn(msg, append(kv, "reason", reason)...)
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
	r.log.Info("statsd receiver started", "addresses", r.addrsLocked())
	r.mu.Unlock()

	<-ctx.Done()

	r.mu.Lock()
	defer r.mu.Unlock()
	r.running = false
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

type listenSpec struct {
	key  string // "udp", "tcp", "unixgram"
	addr string
}

func specs(a Arguments) []listenSpec {
	return []listenSpec{{"udp", a.ListenUDP}, {"tcp", a.ListenTCP}, {"unixgram", a.ListenUnixgram}}
}

// bindChanged binds the sockets whose address args changes (r.mu held).
// If one fails, those already bound are closed and nothing has changed.
func (r *Receiver) bindChanged(args Arguments) (map[string]listener, error) {
	fresh := map[string]listener{}
	for _, sp := range specs(args) {
		cur, ok := r.listeners[sp.key]
		if sp.addr == "" || (ok && cur.Spec() == sp.addr) {
			continue
		}
		l, err := r.bind(sp, args)
		if err != nil {
			for _, f := range fresh {
				f.Close()
			}
			return nil, err
		}
		fresh[sp.key] = l
	}
	return fresh, nil
}

// swapListeners starts the fresh sockets, then closes the ones they
// replace and the ones args turns off, and adjusts the ones kept (r.mu
// held). Readers of a closed socket finish the packet in hand first.
func (r *Receiver) swapListeners(args Arguments, fresh map[string]listener) {
	for _, sp := range specs(args) {
		cur, ok := r.listeners[sp.key]
		if f, isNew := fresh[sp.key]; isNew {
			f.Start()
			r.listeners[sp.key] = f
			if ok {
				cur.Close()
				r.log.Info("statsd listener moved", "proto", sp.key, "address", f.Addr())
			}
			continue
		}
		if ok && sp.addr == "" {
			cur.Close()
			delete(r.listeners, sp.key)
			continue
		}
		if ok {
			cur.Adjust(args, r.log)
		}
	}
}

func (r *Receiver) addrsLocked() map[string]string {
	out := map[string]string{}
	for k, l := range r.listeners {
		out[k] = l.Addr()
	}
	return out
}

// Addrs returns the bound addresses by protocol ("udp", "tcp",
// "unixgram"): with port 0 in the configuration, the port the system chose.
func (r *Receiver) Addrs() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addrsLocked()
}

// listener is one bound socket and the goroutines serving it.
type listener interface {
	Spec() string // the configured address
	Addr() string // the bound address
	Start()
	// Adjust applies options that need no new socket (read buffer, mode).
	Adjust(args Arguments, log *slog.Logger)
	// Close closes the socket and waits for its goroutines.
	Close()
}

func (r *Receiver) bind(sp listenSpec, args Arguments) (listener, error) {
	switch sp.key {
	case "udp":
		c, err := net.ListenPacket("udp", sp.addr)
		if err != nil {
			return nil, fmt.Errorf("listen_udp: %w", err)
		}
		pl := &packetListener{r: r, spec: sp.addr, conn: c, packets: r.m.udpPackets}
		if err := pl.setReadBuffer(args.ReadBuffer); err != nil {
			c.Close()
			return nil, fmt.Errorf("listen_udp: read_buffer: %w", err)
		}
		pl.inode = socketInode(c)
		r.kdrops.add(pl.inode)
		return pl, nil
	case "tcp":
		ln, err := net.Listen("tcp", sp.addr)
		if err != nil {
			return nil, fmt.Errorf("listen_tcp: %w", err)
		}
		return newTCPListener(r, sp.addr, ln, args), nil
	case "unixgram":
		return r.bindUnixgram(sp.addr, args)
	}
	return nil, fmt.Errorf("unknown listener %q", sp.key)
}

func (r *Receiver) bindUnixgram(path string, args Arguments) (listener, error) {
	abstract := strings.HasPrefix(path, "@")
	if !abstract {
		if fi, err := os.Stat(path); err == nil {
			if fi.Mode()&os.ModeSocket == 0 {
				return nil, fmt.Errorf("listen_unixgram: %s exists and is not a socket", path)
			}
			// A socket file nobody serves is left over from a crash: reuse
			// the path. One that answers belongs to a live process.
			if c, err := net.Dial("unixgram", path); err == nil {
				c.Close()
				return nil, fmt.Errorf("listen_unixgram: %s is in use", path)
			}
			if err := os.Remove(path); err != nil {
				return nil, fmt.Errorf("listen_unixgram: removing stale socket: %w", err)
			}
		}
	}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Net: "unixgram", Name: path})
	if err != nil {
		return nil, fmt.Errorf("listen_unixgram: %w", err)
	}
	pl := &packetListener{r: r, spec: path, conn: c, packets: r.m.unixgramPackets}
	if !abstract {
		pl.unlink = path
		mode, _ := parseMode(args.UnixgramMode) // validated
		if err := os.Chmod(path, os.FileMode(mode)); err != nil {
			c.Close()
			os.Remove(path)
			return nil, fmt.Errorf("listen_unixgram: unixgram_mode: %w", err)
		}
		pl.mode = args.UnixgramMode
	}
	if err := pl.setReadBuffer(args.ReadBuffer); err != nil {
		pl.closeConns()
		return nil, fmt.Errorf("listen_unixgram: read_buffer: %w", err)
	}
	return pl, nil
}

// packetListener serves a UDP or unixgram socket. Go serialises reads on
// one descriptor, so it reads through several descriptors of the same
// socket (dup'ed), one goroutine each: the kernel hands each datagram to
// one of them, and parsing and mapping run in parallel.
type packetListener struct {
	r       *Receiver
	spec    string
	conn    net.PacketConn
	dups    []net.PacketConn
	packets prometheus.Counter
	unlink  string // socket file to remove on close
	mode    string
	rbuf    int
	inode   uint64 // of a UDP socket, for its kernel drops; 0 for unixgram
	wg      sync.WaitGroup
}

func (l *packetListener) Spec() string { return l.spec }
func (l *packetListener) Addr() string { return l.conn.LocalAddr().String() }

func (l *packetListener) setReadBuffer(n int) error {
	if n <= 0 || n == l.rbuf {
		return nil
	}
	type rb interface{ SetReadBuffer(int) error }
	if c, ok := l.conn.(rb); ok {
		if err := c.SetReadBuffer(n); err != nil {
			return err
		}
	}
	l.rbuf = n
	return nil
}

func (l *packetListener) Adjust(args Arguments, log *slog.Logger) {
	if err := l.setReadBuffer(args.ReadBuffer); err != nil {
		log.Warn("could not change read_buffer", "err", err)
	}
	if l.unlink != "" && args.UnixgramMode != l.mode {
		mode, _ := parseMode(args.UnixgramMode)
		if err := os.Chmod(l.unlink, os.FileMode(mode)); err != nil {
			log.Warn("could not change unixgram_mode", "err", err)
		} else {
			l.mode = args.UnixgramMode
		}
	}
}

func (l *packetListener) Start() {
	conns := []net.PacketConn{l.conn}
	for range packetReaders - 1 {
		d, err := dupPacketConn(l.conn)
		if err != nil {
			l.r.log.Warn("reading with one goroutine", "err", err)
			break
		}
		l.dups = append(l.dups, d)
		conns = append(conns, d)
	}
	for i, c := range conns {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.read(c, fmt.Sprintf("reader %d of %d on %s", i+1, len(conns), l.spec))
		}()
	}
}

func dupPacketConn(c net.PacketConn) (net.PacketConn, error) {
	fc, ok := c.(interface{ File() (*os.File, error) })
	if !ok {
		return nil, errors.New("socket cannot be duplicated")
	}
	f, err := fc.File()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return net.FilePacketConn(f)
}

func (l *packetListener) read(c net.PacketConn, name string) {
	p, unwatch := l.r.newWatchedProcessor(name)
	defer unwatch()
	packets := localCounter{Counter: l.packets}
	defer func() {
		p.flush()
		packets.flush()
	}()
	for {
		err := l.readSome(c, p, &packets)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if !errors.Is(err, errRecovered) {
			l.r.m.readErrors.Inc()
			l.r.badLog.Warn("reading from socket failed", "address", l.spec, "err", err)
		}
		time.Sleep(10 * time.Millisecond) // a failing socket must not spin
	}
}

// errRecovered is what readSome returns after recovering a panic.
var errRecovered = errors.New("recovered from a panic")

// readSome reads until the socket fails or closes. The processor recovers
// panics per line; this recovers the rest of the read loop, and leaves the
// processor with nothing pending (the items in hand are dropped) and idle.
func (l *packetListener) readSome(c net.PacketConn, p *processor, packets *localCounter) (err error) {
	defer func() {
		if v := recover(); v != nil {
			l.r.recovered("reader", v, "address", l.spec)
			for s, b := range p.pending {
				if b != nil {
					putBatch(b)
					p.pending[s] = nil
				}
			}
			p.flush()
			err = errRecovered
		}
	}()
	return readPackets(c, flushHold,
		func(b []byte) { packets.n++; p.packet(b) },
		func() time.Time { return p.since },
		func() { p.flush(); packets.flush() })
}

func (l *packetListener) closeConns() {
	l.conn.Close()
	for _, d := range l.dups {
		d.Close()
	}
}

// Close closes the sockets, removes the socket file (first: it must go
// even if a reader were to hang) and waits for the readers.
func (l *packetListener) Close() {
	l.r.kdrops.remove(l.inode)
	l.closeConns()
	if l.unlink != "" {
		os.Remove(l.unlink)
	}
	l.wg.Wait()
}

// maxDatagram is the largest datagram read whole.
const maxDatagram = 65536

// readPacketsPortable reads one datagram at a time, flushing after each.
func readPacketsPortable(c net.PacketConn, packet func([]byte), idle func()) error {
	buf := make([]byte, maxDatagram)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		packet(buf[:n])
		idle()
	}
}
