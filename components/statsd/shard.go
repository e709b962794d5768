package statsd

import (
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/components/statsd/internal/store"
)

// sweepInterval is how often a shard removes series whose TTL has passed
// (upstream's exporter does it every second too).
const sweepInterval = time.Second

// shard owns the series of the metric names routed to it: one upstream
// registry, guarded by mu. Readers apply their batches themselves, under
// the lock (no handoff to another goroutine: on a busy machine, a woken
// goroutine waits for a CPU while the socket fills); a shard's goroutine
// only sweeps expired series. The store outlives Run, so a restarted Run
// carries on with the same series.
type shard struct {
	rep   *reporter
	hooks *testHooks
	mu    sync.Mutex
	st    *store.Store
	count int64 // live series in this shard, as last added to total
	// total is the live series of all shards (for max_series); margin is
	// the number of shards (see one).
	total  *atomic.Int64
	margin int64

	evCounter, evGauge, evObserver localCounter
	// clock is time.Now, or a test's.
	clock func() time.Time

	// gen invalidates the seriesRefs filled by this shard: it moves when
	// a series may have gone (a sweep removed one) or the mapper changed.
	gen     uint64
	lastCfg *runtimeConfig
}

// seriesSet is the store side of the receiver: the shards, the routing of
// metric names to them (shardOf) and the count of live series across
// them (for max_series and sluice_statsd_series).
type seriesSet struct {
	shards []*shard
	seed   maphash.Seed
	total  atomic.Int64
}

// series gathers the series of every shard.
func (ss *seriesSet) series() seriesGatherer { return seriesGatherer{ss.shards} }

// seriesRef is a fast-path signature's series, found once through the
// store (which hashes and sorts the labels on every lookup) and then
// updated directly. It belongs to the shard of its series: it is only
// read and written under that shard's lock, and is valid while shard and
// gen are the shard's.
type seriesRef struct {
	shard  *shard
	gen    uint64
	series *store.Series
}

func newShard(rep *reporter, hooks *testHooks, total *atomic.Int64, margin int) *shard {
	return &shard{
		rep:        rep,
		hooks:      hooks,
		total:      total,
		margin:     int64(margin),
		gen:        1,
		st:         store.New(defaultHelp),
		clock:      time.Now,
		evCounter:  localCounter{Counter: rep.m.evCounter},
		evGauge:    localCounter{Counter: rep.m.evGauge},
		evObserver: localCounter{Counter: rep.m.evObserver},
	}
}

// run sweeps expired series every sweepInterval until stop is closed.
func (s *shard) run(wg *sync.WaitGroup, stop <-chan struct{}, name string) {
	defer wg.Done()
	prog, unwatch := s.rep.watch(name)
	defer unwatch()
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			prog.busy(&s.rep.watchState)
			s.lockedSweep()
			prog.idle()
		}
	}
}

func (s *shard) lockedSweep() {
	defer func() {
		if v := recover(); v != nil {
			s.rep.recovered("sweep", v)
		}
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep()
}

// deliver applies a batch under the lock and recycles it.
func (s *shard) deliver(b *batch) {
	s.lockedApply(b)
	putBatch(b)
}

func (s *shard) lockedApply(b *batch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apply(b)
}

// tryDeliver is deliver if the lock is free; it reports whether it was.
func (s *shard) tryDeliver(b *batch) bool {
	if !s.mu.TryLock() {
		return false
	}
	func() {
		defer s.mu.Unlock()
		s.apply(b)
	}()
	putBatch(b)
	return true
}

// apply applies a batch's items (s.mu held, or s not shared).
func (s *shard) apply(b *batch) {
	if b.cfg != s.lastCfg {
		s.lastCfg = b.cfg
		s.gen++
	}
	now := s.st.Now(s.clock())
	for i := 0; i < len(b.items); {
		i = s.applyFrom(b, i, now)
	}
	s.evCounter.flush()
	s.evGauge.flush()
	s.evObserver.flush()
}

// cached applies an item to the series its ref found earlier, as the
// store would: the series is refreshed (its TTL counts from now) and
// updated. The series exists, so max_series has nothing to check.
func (s *shard) cached(it *item, ref *seriesRef, now int64) {
	ref.series.Touch(now)
	s.update(it, ref.series)
}

// update applies an item's value to its series and counts the event.
func (s *shard) update(it *item, se *store.Series) {
	switch it.kind {
	case kindCounter:
		se.Add(it.value)
	case kindGauge:
		if it.relative {
			se.AddGauge(it.value)
		} else {
			se.Set(it.value)
		}
	default:
		se.Observe(it.value)
	}
	s.counted(it.kind)
}

func (s *shard) counted(k kind) {
	switch k {
	case kindCounter:
		s.evCounter.n++
	case kindGauge:
		s.evGauge.n++
	default:
		s.evObserver.n++
	}
}

// applyFrom applies a batch's items from i on and returns where it
// stopped: at the end, or after an item that panicked. A panic is
// recovered and counted, that item is dropped, and apply goes on with the
// next (one deferred recover per batch, not per item). The events are
// checked before they get here (names, reserved labels, values), so a
// panic is a bug in the receiver or below it, not bad input.
func (s *shard) applyFrom(b *batch, i int, now int64) (next int) {
	defer func() {
		if v := recover(); v != nil {
			s.rep.recovered("shard", v, "metric", b.items[i].name)
			next = i + 1
		}
	}()
	for ; i < len(b.items); i++ {
		it := &b.items[i]
		if s.hooks.apply != nil {
			s.hooks.apply(it.name)
		}
		if ref := it.ref; ref != nil && ref.shard == s && ref.gen == s.gen {
			s.cached(it, ref, now)
		} else {
			s.one(it, b.cfg, now)
		}
	}
	return i
}

// one applies an item to its series, creating the series if needed.
// max_series is enforced without extra work while the total is clearly
// below the limit (each shard creates at most one series between checking
// and counting, hence the margin of one per shard); near the limit, a
// series that does not exist yet must first reserve a slot.
func (s *shard) one(it *item, cfg *runtimeConfig, now int64) {
	total, maxSeries := s.total, cfg.maxSeries
	reserved := false
	if maxSeries > 0 && total.Load()+s.margin > maxSeries && !s.st.Exists(it.name, it.labels) {
		if !reserve(total, maxSeries) {
			s.rep.eventError(reasonSeriesLimit, "series limit reached, dropping a new series", "metric", it.name, "max_series", maxSeries)
			return
		}
		reserved = true
	}
	se, created, newGroup, err := s.st.Get(it.name, it.kind, it.labels, store.Spec{Help: it.help, Mapping: it.mapping, Defaults: &cfg.mapper.Defaults}, now)
	if newGroup {
		// Upstream counted a vector per label-name set of a metric name.
		s.rep.m.metricsCount.WithLabelValues(it.kind.String()).Inc()
	}
	switch {
	case created:
		s.count++
		if !reserved {
			total.Add(1)
		}
	case reserved:
		total.Add(-1)
	}
	if err != nil {
		typ := [...]string{"counter", "gauge", "observer", "observer"}[it.kind]
		s.rep.m.conflictingEventStats.WithLabelValues(typ, it.name).Inc()
		s.rep.badLog.Warn("conflicting metric, event dropped", "metric", it.name, "type", typ, "err", err)
		return
	}
	s.update(it, se)
	if it.ref != nil {
		*it.ref = seriesRef{shard: s, gen: s.gen, series: se}
	}
}

// reserve takes one series slot if the total is below max.
func reserve(total *atomic.Int64, max int64) bool {
	for {
		n := total.Load()
		if n >= max {
			return false
		}
		if total.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// sweep removes expired series and recounts.
func (s *shard) sweep() {
	if s.st.Sweep(s.st.Now(s.clock())) > 0 {
		s.gen++ // refs may point at removed series
	}
	n := int64(s.st.Len())
	s.total.Add(n - s.count)
	s.count = n
}

// shardOf routes a metric name to its shard. Histogram and summary suffixes
// are stripped first so that the store's name collision checks (foo vs.
// foo_sum, foo_count, foo_bucket) stay within one shard.
func (ss *seriesSet) shardOf(name string) int {
	if len(ss.shards) == 1 {
		return 0
	}
	// All of them, repeatedly: a histogram foo_count makes foo_count_sum.
	for stripped := true; stripped; {
		stripped = false
		for _, suf := range [...]string{"_bucket", "_count", "_sum"} {
			if base, ok := strings.CutSuffix(name, suf); ok {
				name, stripped = base, true
				break
			}
		}
	}
	return int(maphash.String(ss.seed, name) % uint64(len(ss.shards)))
}
