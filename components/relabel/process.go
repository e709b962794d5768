package relabel

import (
	"sort"
	"strings"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	promrelabel "github.com/prometheus/prometheus/model/relabel"
	"github.com/sluicehq/sluice/labelset"
	"google.golang.org/protobuf/proto"
)

// processor applies one compiled rule set. It caches the outcome of the
// rules per input series (rules are pure functions of the label set), so a
// scrape of unchanged series costs a hash and a map lookup per series.
// Entries not seen in a gather are evicted at its end.
//
// When every rule reads and writes nothing but __name__ (keep/drop by name,
// renames), the outcome is decided once per family instead of per series.
type processor struct {
	cfgs     []*promrelabel.Config
	nameOnly bool
	m        *selfMetrics

	mu     sync.Mutex // guards everything below; held while relabelling one gather
	gen    uint64
	series map[uint64]*entry
	names  map[string]*nameEntry
	// outs counts cached entries per output series (hash of name and
	// label set); collisions counts outputs shared by several entries.
	// While collisions is 0, the rules cannot have merged two series of a
	// gather and the duplicate check is skipped.
	outs       map[uint64]int
	collisions int
	lb         *labels.Builder
	d          *xxhash.Digest
}

// entry is the cached outcome of the rules for one input series.
type entry struct {
	in     []string // family name, then label name/value pairs, to verify a hash hit
	gen    uint64
	keep   bool
	same   bool   // output equals input: the input metric is passed through
	name   string // output family name
	labels []*dto.LabelPair
	out    uint64 // hash of the output series, when keep
}

type nameEntry struct {
	gen  uint64
	keep bool
	name string
}

func newProcessor(cfgs []*promrelabel.Config, m *selfMetrics) *processor {
	return &processor{
		cfgs:     cfgs,
		nameOnly: onlyName(cfgs),
		m:        m,
		series:   map[uint64]*entry{},
		outs:     map[uint64]int{},
		names:    map[string]*nameEntry{},
		lb:       labels.NewBuilder(labels.EmptyLabels()),
		d:        xxhash.New(),
	}
}

// onlyName reports whether every rule reads and writes only __name__.
func onlyName(cfgs []*promrelabel.Config) bool {
	for _, c := range cfgs {
		for _, s := range c.SourceLabels {
			if s != model.MetricNameLabel {
				return false
			}
		}
		switch c.Action {
		case promrelabel.Keep, promrelabel.Drop:
		case promrelabel.Replace, promrelabel.Lowercase, promrelabel.Uppercase,
			promrelabel.KeepEqual, promrelabel.DropEqual:
			if c.TargetLabel != model.MetricNameLabel {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// process relabels fams. It never modifies them: families and metrics that
// the rules leave unchanged are passed through, the others are new values.
func (p *processor) process(fams []*dto.MetricFamily) []*dto.MetricFamily {
	if len(p.cfgs) == 0 {
		return fams
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gen++
	r := run{p: p, out: make([]*dto.MetricFamily, 0, len(fams))}
	for _, mf := range fams {
		if len(mf.Metric) == 0 {
			continue
		}
		r.in += len(mf.Metric)
		if p.nameOnly {
			r.byName(mf)
		} else {
			r.bySeries(mf)
		}
	}
	r.placeMoved()
	if len(p.series)+len(p.names) > r.touched {
		p.evict()
	}

	p.m.seriesIn.Add(float64(r.in))
	p.m.dropped.WithLabelValues("rule").Add(float64(r.dropped))
	p.m.dropped.WithLabelValues("duplicate").Add(float64(r.dupes))
	p.m.dropped.WithLabelValues("type_conflict").Add(float64(r.conflicts))
	p.m.cacheMisses.Add(float64(r.misses))
	p.m.cacheEntries.Set(float64(len(p.series) + len(p.names)))
	return r.out
}

// run is the state of one process call.
type run struct {
	p     *processor
	out   []*dto.MetricFamily
	moved map[string]*dto.MetricFamily // series renamed into another family, by new name
	order []string                     // keys of moved, in first-seen order

	in, dropped, dupes, conflicts, misses int
	touched                               int  // cache entries seen in this gather
	replaced                              bool // an entry was replaced on an input hash collision
}

func (r *run) byName(mf *dto.MetricFamily) {
	name := mf.GetName()
	ne := r.p.names[name]
	if ne == nil {
		r.misses++
		ne = &nameEntry{}
		lb := r.p.lb
		lb.Reset(labels.EmptyLabels())
		lb.Set(model.MetricNameLabel, name)
		if promrelabel.ProcessBuilder(lb, r.p.cfgs...) {
			ne.name = lb.Get(model.MetricNameLabel)
			ne.keep = ne.name != ""
		}
		r.p.names[name] = ne
	}
	if ne.gen != r.p.gen {
		ne.gen = r.p.gen
		r.touched++
	}
	switch {
	case !ne.keep:
		r.dropped += len(mf.Metric)
	case ne.name == name:
		r.out = append(r.out, mf)
	default:
		r.move(ne.name, mf, mf.Metric...)
	}
}

func (r *run) bySeries(mf *dto.MetricFamily) {
	name := mf.GetName()
	var kept []*dto.Metric // nil until the family deviates from its input
	deviated, dirty := false, false
	for i, m := range mf.Metric {
		e := r.lookup(name, m.Label)
		if !deviated && !(e.keep && e.same) {
			deviated = true
			kept = make([]*dto.Metric, i, len(mf.Metric))
			copy(kept, mf.Metric[:i])
		}
		switch {
		case !e.keep:
			r.dropped++
		case e.same:
			if deviated {
				kept = append(kept, m)
			}
		default:
			nm := &dto.Metric{
				Label: e.labels, TimestampMs: m.TimestampMs,
				Gauge: m.Gauge, Counter: m.Counter, Summary: m.Summary, Untyped: m.Untyped, Histogram: m.Histogram,
			}
			if e.name == name {
				kept = append(kept, nm)
				dirty = true
			} else {
				r.move(e.name, mf, nm)
			}
		}
	}
	if !deviated {
		r.out = append(r.out, mf)
		return
	}
	if dirty && (r.p.collisions > 0 || r.replaced) {
		kept = r.dedupe(kept)
	}
	if len(kept) > 0 {
		r.out = append(r.out, &dto.MetricFamily{Name: mf.Name, Help: mf.Help, Type: mf.Type, Unit: mf.Unit, Metric: kept})
	}
}

// lookup returns the cached outcome for a series, computing it on a miss.
func (r *run) lookup(name string, pairs []*dto.LabelPair) *entry {
	p := r.p
	d := p.d
	d.Reset()
	_, _ = d.WriteString(name)
	for _, lp := range pairs {
		_, _ = d.Write(sep)
		_, _ = d.WriteString(lp.GetName())
		_, _ = d.Write(sep)
		_, _ = d.WriteString(lp.GetValue())
	}
	h := d.Sum64()
	e := p.series[h]
	if e == nil || !e.matches(name, pairs) {
		r.misses++
		if e != nil {
			// An input hash collision: the other series' entry is
			// replaced (correct, only slower), and it no longer counts
			// in outs although it may be in this gather.
			r.replaced = true
			p.forget(e)
		}
		e = p.compute(name, pairs)
		p.series[h] = e
		if e.keep {
			if p.outs[e.out]++; p.outs[e.out] == 2 {
				p.collisions++
			}
		}
	}
	if e.gen != p.gen {
		e.gen = p.gen
		r.touched++
	}
	return e
}

var sep = []byte{model.SeparatorByte}

func (e *entry) matches(name string, pairs []*dto.LabelPair) bool {
	if len(e.in) != 1+2*len(pairs) || e.in[0] != name {
		return false
	}
	for i, lp := range pairs {
		if e.in[1+2*i] != lp.GetName() || e.in[2+2*i] != lp.GetValue() {
			return false
		}
	}
	return true
}

func (p *processor) compute(name string, pairs []*dto.LabelPair) *entry {
	e := &entry{in: make([]string, 1, 1+2*len(pairs))}
	e.in[0] = name
	lb := p.lb
	lb.Reset(labels.EmptyLabels())
	lb.Set(model.MetricNameLabel, name)
	for _, lp := range pairs {
		e.in = append(e.in, lp.GetName(), lp.GetValue())
		lb.Set(lp.GetName(), lp.GetValue())
	}
	if !promrelabel.ProcessBuilder(lb, p.cfgs...) {
		return e
	}
	e.name = lb.Get(model.MetricNameLabel)
	if e.name == "" {
		return e
	}
	e.keep = true
	lb.Range(func(l labels.Label) {
		// Labels starting with "__" (including __name__) are not part of
		// the output: rules may use them as temporaries, as in Prometheus.
		if strings.HasPrefix(l.Name, "__") {
			return
		}
		e.labels = append(e.labels, &dto.LabelPair{Name: proto.String(l.Name), Value: proto.String(l.Value)})
	})
	sort.Slice(e.labels, func(i, j int) bool { return e.labels[i].GetName() < e.labels[j].GetName() })
	e.same = e.name == name && len(e.labels) == len(pairs)
	for i := 0; e.same && i < len(pairs); i++ {
		e.same = e.labels[i].GetName() == pairs[i].GetName() && e.labels[i].GetValue() == pairs[i].GetValue()
	}
	outPairs := e.labels
	if e.same {
		e.labels = nil
		outPairs = pairs
	}
	e.out = labelset.Hash(p.d, outPairs)
	p.d.Reset()
	_, _ = p.d.WriteString(e.name)
	e.out ^= p.d.Sum64()
	return e
}

// forget removes e's output from the collision accounting.
func (p *processor) forget(e *entry) {
	if !e.keep {
		return
	}
	if p.outs[e.out]--; p.outs[e.out] == 1 {
		p.collisions--
	} else if p.outs[e.out] == 0 {
		delete(p.outs, e.out)
	}
}

// move adds metrics of family src, renamed to name, to the moved set.
func (r *run) move(name string, src *dto.MetricFamily, ms ...*dto.Metric) {
	if r.moved == nil {
		r.moved = map[string]*dto.MetricFamily{}
	}
	mf := r.moved[name]
	if mf == nil {
		// The unit belongs to the old name (OpenMetrics wants it as a
		// suffix of the name), so a renamed family has none.
		mf = &dto.MetricFamily{Name: proto.String(name), Help: src.Help, Type: src.Type}
		r.moved[name] = mf
		r.order = append(r.order, name)
	} else if mf.GetType() != src.GetType() {
		r.conflicts += len(ms)
		return
	}
	mf.Metric = append(mf.Metric, ms...)
}

// placeMoved merges renamed series into the output, by family name; a
// series whose new family already exists with another type is dropped.
func (r *run) placeMoved() {
	if len(r.moved) == 0 {
		return
	}
	idx := make(map[string]int, len(r.out))
	for i, mf := range r.out {
		idx[mf.GetName()] = i
	}
	for _, name := range r.order {
		mv := r.moved[name]
		i, exists := idx[name]
		if !exists {
			mv.Metric = r.dedupe(mv.Metric)
			if len(mv.Metric) > 0 {
				r.out = append(r.out, mv)
			}
			continue
		}
		have := r.out[i]
		if have.GetType() != mv.GetType() {
			r.conflicts += len(mv.Metric)
			continue
		}
		merged := make([]*dto.Metric, 0, len(have.Metric)+len(mv.Metric))
		merged = append(merged, have.Metric...)
		merged = append(merged, mv.Metric...)
		r.out[i] = &dto.MetricFamily{Name: have.Name, Help: have.Help, Type: have.Type, Unit: have.Unit, Metric: r.dedupe(merged)}
	}
	sort.Slice(r.out, func(i, j int) bool { return r.out[i].GetName() < r.out[j].GetName() })
}

// dedupe keeps the first of metrics with the same label set (rules can
// merge series, e.g. labeldrop). It filters ms in place: callers own ms.
func (r *run) dedupe(ms []*dto.Metric) []*dto.Metric {
	out, dropped := labelset.Dedupe(r.p.d, ms)
	r.dupes += dropped
	return out
}

// evict drops cache entries not seen in the current gather.
func (p *processor) evict() {
	for h, e := range p.series {
		if e.gen != p.gen {
			delete(p.series, h)
			p.forget(e)
		}
	}
	for n, e := range p.names {
		if e.gen != p.gen {
			delete(p.names, n)
		}
	}
}

type selfMetrics struct {
	seriesIn     prometheus.Counter
	dropped      *prometheus.CounterVec
	inputErrors  prometheus.Counter
	cacheMisses  prometheus.Counter
	cacheEntries prometheus.Gauge
}

func newSelfMetrics(reg prometheus.Registerer) (*selfMetrics, error) {
	m := &selfMetrics{
		seriesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_relabel_series_in_total",
			Help: "Series read from the input, summed over gathers.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_relabel_series_dropped_total",
			Help: "Series dropped, by reason: rule (a keep/drop rule or an empty __name__), duplicate (the rules made two series equal; the first is kept), type_conflict (renamed into a family of another type).",
		}, []string{"reason"}),
		inputErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_relabel_input_errors_total",
			Help: "Gathers of the input that returned an error (what the input returned is still relabelled).",
		}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_relabel_cache_misses_total",
			Help: "Series (or families, for rules on __name__ only) whose outcome was computed rather than found in the cache.",
		}),
		cacheEntries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_relabel_cache_entries",
			Help: "Entries in the relabel cache after the last gather.",
		}),
	}
	for _, r := range []string{"rule", "duplicate", "type_conflict"} {
		m.dropped.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{m.seriesIn, m.dropped, m.inputErrors, m.cacheMisses, m.cacheEntries} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
