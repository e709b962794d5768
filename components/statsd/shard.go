package statsd

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/statsd_exporter/pkg/clock"
	"github.com/prometheus/statsd_exporter/pkg/exporter"
	"github.com/prometheus/statsd_exporter/pkg/metrics"
	"github.com/prometheus/statsd_exporter/pkg/registry"
)

// Upstream's registry is the series store of upstream's exporter; shards
// drive it directly, through the same interface.
var _ exporter.Registry = (*registry.Registry)(nil)

// sweepInterval is how often a shard removes series whose TTL has passed
// (upstream's exporter does it every second too).
const sweepInterval = time.Second

// shard owns the series of the metric names routed to it: one upstream
// registry, guarded by mu. Readers apply their batches themselves, under
// the lock (no handoff to another goroutine: on a busy machine, a woken
// goroutine waits for a CPU while the socket fills); a shard's goroutine
// only sweeps expired series. Its vectors register with the receiver's
// prometheus.Registry, which gathers all shards. The registry outlives
// Run, so a restarted Run carries on with the same series.
type shard struct {
	r     *Receiver
	mu    sync.Mutex
	reg   *registry.Registry
	count int64 // live series in this shard, as last added to r.total
	// meta is what a scrape needs besides the series (see seriesGatherer).
	meta familyMeta

	evCounter, evGauge, evObserver localCounter

	// gen invalidates the seriesRefs filled by this shard: it moves when
	// a series may have gone (a sweep removed one) or the mapper changed.
	gen     uint64
	lastCfg *runtimeConfig
}

// seriesRef is a fast-path signature's series, found once through
// upstream's registry (which hashes and sorts the labels on every
// lookup) and then updated directly. It belongs to the shard of its
// series: it is only read and written under that shard's lock, and is
// valid while shard and gen are the shard's.
type seriesRef struct {
	shard    *shard
	gen      uint64
	rm       *metrics.RegisteredMetric
	counter  prometheus.Counter
	gauge    prometheus.Gauge
	observer prometheus.Observer
}

func newShard(r *Receiver, exported prometheus.Registerer) *shard {
	return &shard{
		r:          r,
		gen:        1,
		reg:        registry.NewRegistry(exported, nil),
		meta:       newFamilyMeta(),
		evCounter:  localCounter{Counter: r.m.evCounter},
		evGauge:    localCounter{Counter: r.m.evGauge},
		evObserver: localCounter{Counter: r.m.evObserver},
	}
}

// run sweeps expired series every sweepInterval until stop is closed.
func (s *shard) run(wg *sync.WaitGroup, stop <-chan struct{}, name string) {
	defer wg.Done()
	prog, unwatch := s.r.watch(name)
	defer unwatch()
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			prog.busy(s.r)
			s.lockedSweep()
			prog.idle()
		}
	}
}

func (s *shard) lockedSweep() {
	defer func() {
		if v := recover(); v != nil {
			s.r.recovered("sweep", v)
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
		s.reg.Mapper = b.cfg.mapper
		s.lastCfg = b.cfg
		s.gen++
	}
	now := clock.Now()
	for i := 0; i < len(b.items); {
		i = s.applyFrom(b, i, now)
	}
	s.evCounter.flush()
	s.evGauge.flush()
	s.evObserver.flush()
}

// cached applies an item to the series its ref found earlier, as
// upstream's registry would: the series is refreshed (its TTL counts from
// now) and updated. The series exists, so max_series has nothing to
// check.
func (s *shard) cached(it *item, ref *seriesRef, now time.Time) {
	ref.rm.LastRegisteredAt = now
	switch it.kind {
	case kindCounter:
		ref.counter.Add(it.value)
		s.evCounter.n++
	case kindGauge:
		if it.relative {
			ref.gauge.Add(it.value)
		} else {
			ref.gauge.Set(it.value)
		}
		s.evGauge.n++
	default:
		ref.observer.Observe(it.value)
		s.evObserver.n++
	}
}

// fill points it's ref at the series the item has just updated.
func (s *shard) fill(it *item, c prometheus.Counter, g prometheus.Gauge, o prometheus.Observer) {
	metric, ok := s.reg.Metrics[it.name]
	if !ok {
		return
	}
	h, _ := s.reg.HashLabels(it.labels)
	rm := metric.Metrics[h.Values]
	if rm == nil {
		return
	}
	*it.ref = seriesRef{shard: s, gen: s.gen, rm: rm, counter: c, gauge: g, observer: o}
}

// applyFrom applies a batch's items from i on and returns where it
// stopped: at the end, or after an item that panicked. A panic is
// recovered and counted, that item is dropped, and apply goes on with the
// next (one deferred recover per batch, not per item). The events are
// checked before they get here (names, reserved labels, values), so a
// panic is a bug in the receiver or below it, not bad input.
func (s *shard) applyFrom(b *batch, i int, now time.Time) (next int) {
	defer func() {
		if v := recover(); v != nil {
			s.r.recovered("shard", v, "metric", b.items[i].name)
			next = i + 1
		}
	}()
	for ; i < len(b.items); i++ {
		it := &b.items[i]
		if s.r.hooks.apply != nil {
			s.r.hooks.apply(it.name)
		}
		if ref := it.ref; ref != nil && ref.shard == s && ref.gen == s.gen {
			s.cached(it, ref, now)
		} else {
			s.one(it, b.cfg.maxSeries)
		}
	}
	return i
}

// one applies an item to its series, creating the series if needed.
// max_series is enforced without extra work while the total is clearly
// below the limit (each shard creates at most one series between checking
// and counting, hence the margin of one per shard); near the limit, a
// series that does not exist yet must first reserve a slot.
func (s *shard) one(it *item, maxSeries int64) {
	total := &s.r.total
	metric, known := s.reg.Metrics[it.name]
	before := 0
	if known {
		before = len(metric.Metrics)
	}
	reserved := false
	if maxSeries > 0 && total.Load()+int64(len(s.r.shards)) > maxSeries {
		exists := false
		if known {
			h, _ := s.reg.HashLabels(it.labels)
			_, exists = metric.Metrics[h.Values]
		}
		if !exists {
			if !reserve(total, maxSeries) {
				s.r.eventError(reasonSeriesLimit, "series limit reached, dropping a new series", "metric", it.name, "max_series", maxSeries)
				return
			}
			reserved = true
		}
	}

	var err error
	if !known && s.suffixConflict(it.name, it.kind) {
		err = errSuffixConflict
	}
	switch {
	case err != nil:
	case it.kind == kindCounter:
		var c prometheus.Counter
		if c, err = s.reg.GetCounter(it.name, it.labels, it.help, it.mapping, s.r.m.metricsCount); err == nil {
			c.Add(it.value)
			s.evCounter.n++
			if it.ref != nil {
				defer s.fill(it, c, nil, nil)
			}
		}
	case it.kind == kindGauge:
		var g prometheus.Gauge
		if g, err = s.reg.GetGauge(it.name, it.labels, it.help, it.mapping, s.r.m.metricsCount); err == nil {
			if it.relative {
				g.Add(it.value)
			} else {
				g.Set(it.value)
			}
			s.evGauge.n++
			if it.ref != nil {
				defer s.fill(it, nil, g, nil)
			}
		}
	case it.kind == kindHistogram:
		var o prometheus.Observer
		if o, err = s.reg.GetHistogram(it.name, it.labels, it.help, it.mapping, s.r.m.metricsCount); err == nil {
			o.Observe(it.value)
			s.evObserver.n++
			if it.ref != nil {
				defer s.fill(it, nil, nil, o)
			}
		}
	case it.kind == kindSummary:
		var o prometheus.Observer
		if o, err = s.reg.GetSummary(it.name, it.labels, it.help, it.mapping, s.r.m.metricsCount); err == nil {
			o.Observe(it.value)
			s.evObserver.n++
			if it.ref != nil {
				defer s.fill(it, nil, nil, o)
			}
		}
	}

	grew := len(s.reg.Metrics[it.name].Metrics) > before
	switch {
	case grew:
		s.dropLabels(it)
		s.meta.created(it.name, it.help)
		s.count++
		if !reserved {
			total.Add(1)
		}
	case reserved:
		total.Add(-1)
	}
	if err != nil {
		typ := [...]string{"counter", "gauge", "observer", "observer"}[it.kind]
		s.r.m.conflictingEventStats.WithLabelValues(typ, it.name).Inc()
		s.r.badLog.Warn("conflicting metric, event dropped", "metric", it.name, "type", typ, "err", err)
	}
}

var errSuffixConflict = errors.New("the name collides with a family of an existing histogram or summary (_bucket, _count, _sum)")

// suffixConflict reports whether the first series of a metric named name
// would collide, when gathered, with the families of a histogram or
// summary (foo_bucket, foo_count, foo_sum): upstream's registry only
// refuses a different type under the same name, and a collision makes
// every gather fail. shardOf routes such names to the same shard.
func (s *shard) suffixConflict(name string, k kind) bool {
	for _, suf := range [...]string{"_count", "_sum", "_bucket"} {
		if base, ok := strings.CutSuffix(name, suf); ok {
			if m, ok := s.reg.Metrics[base]; ok {
				if m.MetricType == metrics.HistogramMetricType || (m.MetricType == metrics.SummaryMetricType && suf != "_bucket") {
					return true
				}
			}
		}
		if k == kindHistogram || (k == kindSummary && suf != "_bucket") {
			if _, ok := s.reg.Metrics[name+suf]; ok {
				return true
			}
		}
	}
	return false
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

// dropLabels releases the labels map upstream's registry keeps with a
// series it has just created. The map is the parser's (a Go map: about
// 340 bytes even for one label, some 40% of a series' memory), and the
// registry only reads it to delete the series when its TTL passes; sweep
// takes the labels from the series itself instead. client_golang keeps
// its own copy of the label values.
func (s *shard) dropLabels(it *item) {
	metric, ok := s.reg.Metrics[it.name]
	if !ok {
		return
	}
	h, _ := s.reg.HashLabels(it.labels)
	if rm := metric.Metrics[h.Values]; rm != nil {
		rm.Labels = nil
	}
}

// sweep removes expired series and recounts. It is upstream's
// Registry.RemoveStaleMetrics, except that a series' labels come from the
// series (dropLabels).
func (s *shard) sweep() {
	now := clock.Now()
	var n int64
	gone := false
	defer func() {
		if gone {
			s.gen++ // refs may point at removed series
		}
	}()
	for _, metric := range s.reg.Metrics {
		for hash, rm := range metric.Metrics {
			if rm.TTL == 0 || !rm.LastRegisteredAt.Add(rm.TTL).Before(now) {
				continue
			}
			v := metric.Vectors[rm.VecKey]
			if labels := seriesLabels(rm); labels != nil {
				v.Holder.Delete(labels)
			}
			v.RefCount--
			delete(metric.Metrics, hash)
			gone = true
		}
		n += int64(len(metric.Metrics))
	}
	s.r.total.Add(n - s.count)
	s.count = n
}

// seriesLabels returns the label set of a registered series: the map the
// registry kept, or else the labels the series itself writes.
func seriesLabels(rm *metrics.RegisteredMetric) prometheus.Labels {
	if rm.Labels != nil {
		return rm.Labels
	}
	m, ok := rm.Metric.(prometheus.Metric)
	if !ok {
		return nil
	}
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		return nil
	}
	labels := make(prometheus.Labels, len(pb.Label))
	for _, lp := range pb.Label {
		labels[lp.GetName()] = lp.GetValue()
	}
	return labels
}
