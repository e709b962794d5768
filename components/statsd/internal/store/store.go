// Package store is statsd_receiver's series store: the series of the
// metric names routed to one shard, keyed by a hash of their label names
// and values, with the semantics of the store it replaces (statsd_exporter's
// pkg/registry over client_golang vectors): one type per metric name, the
// same conflict checks, label sets grouped by their label names (each group
// with the help, buckets and summary options of the mapping that created
// it), TTLs set when a series is created and counted from its last update,
// and metric names that stay known (with their type) after their last
// series expired.
//
// A series costs one small struct and its label values packed into one
// string (about a fifth of a client_golang vector's series plus the
// registry's entry). Counters, gauges and classic histograms are updated
// in place; summaries and native histograms keep client_golang's
// implementation per series (their quantile and bucket algorithms are
// client_golang's, so their output is too).
//
// A Store is not safe for concurrent use: its shard's lock guards it.
package store

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/statsd_exporter/pkg/mapper"
)

// Kind is a series type.
type Kind uint8

const (
	Counter Kind = iota
	Gauge
	Histogram
	Summary
)

// String is the type as statsd_exporter_metrics_total labels it.
func (k Kind) String() string {
	return [...]string{"counter", "gauge", "histogram", "summary"}[k]
}

// sep separates packed label names and values: 0xff never occurs in
// valid UTF-8, and label values must be valid UTF-8.
const sep = '\xff'

// Errors of Get; each makes the event a conflict, as upstream's registry's
// errors did.
var (
	ErrTypeConflict   = errors.New("the metric name is registered with another type")
	ErrSuffixConflict = errors.New("the name collides with a family of an existing histogram or summary (_bucket, _count, _sum)")
	ErrInvalidUTF8    = errors.New("a label value is not valid UTF-8")
)

// Spec is what a new series takes from the event's mapping.
type Spec struct {
	Help     string
	Mapping  *mapper.MetricMapping
	Defaults *mapper.MapperConfigDefaults
}

// Store holds the series of a set of metric names.
type Store struct {
	families    map[string]*family
	seed        maphash.Seed
	epoch       time.Time
	defaultHelp string
	series      int
	// scratch, reused by Get
	names []string
	buf   []byte
	// scratch of AppendText: the size of its last page, a family's series
	// in order, a summary's written metric
	lastText int
	order    []*Series
	metric   *dto.Metric
}

// New returns an empty store. defaultHelp is the help of a family until
// a series is created with another.
func New(defaultHelp string) *Store {
	return &Store{families: map[string]*family{}, seed: maphash.MakeSeed(), epoch: time.Now(), defaultHelp: defaultHelp}
}

// Now is t on the store's clock (the unit of Series.Touch and Sweep).
func (st *Store) Now(t time.Time) int64 { return int64(t.Sub(st.epoch)) }

// Len is the number of live series.
func (st *Store) Len() int { return st.series }

type family struct {
	kind   Kind
	help   string
	groups []*group
	series map[uint64]*Series
}

// group is the series of a family with the same label names (a client_golang
// vector, in the store this replaces): its options are those of the mapping
// that created its first series, and it stays when its series expire.
type group struct {
	names   []string // sorted
	key     string   // names, packed
	kind    Kind
	buckets []float64 // classic histograms
	// newMetric makes the client_golang metric of a summary or native
	// histogram series.
	newMetric func() observerMetric
}

type observerMetric interface {
	Observe(float64)
	Write(*dto.Metric) error
}

// Series is one series. Its methods must be called under the store's
// guard.
type Series struct {
	group  *group
	values string // label values, each followed by sep, in group.names order
	next   *Series
	last   int64 // last update, on the store's clock
	ttl    time.Duration
	// created is when the series was created, on the store's clock: the
	// time of the batch that created it (series created together share
	// one created timestamp in a gather).
	created int64
	fval    float64 // counter: non-integer increments; gauge: value; histogram: sum
	ival    uint64  // counter: integer increments; histogram: count
	// obs is a classic histogram's bucket counts (*buckets), or the
	// client_golang metric of a summary or native histogram; nil for
	// counters and gauges.
	obs observerMetric
}

// buckets are a classic histogram's counts per bucket (not cumulative).
type buckets []uint64

func (*buckets) Observe(float64)         {}
func (*buckets) Write(*dto.Metric) error { return nil }

// Touch records an update at now (the TTL counts from it).
func (s *Series) Touch(now int64) { s.last = now }

// Add adds v to a counter (v ≥ 0, checked by the caller), as client_golang
// does: integral increments are summed exactly, the others as floats.
func (s *Series) Add(v float64) {
	if iv := uint64(v); float64(iv) == v {
		s.ival += iv
		return
	}
	s.fval += v
}

// Set sets a gauge.
func (s *Series) Set(v float64) { s.fval = v }

// AddGauge adds v to a gauge.
func (s *Series) AddGauge(v float64) { s.fval += v }

// Observe records an observation of a histogram or summary.
func (s *Series) Observe(v float64) {
	counts, classic := s.obs.(*buckets)
	if !classic {
		s.obs.Observe(v)
		return
	}
	b := s.group.buckets
	i := 0
	if len(b) < 35 {
		for i < len(b) && v > b[i] {
			i++
		}
	} else {
		i = len(b)
		if v <= b[len(b)-1] {
			i, _ = slices.BinarySearch(b, v)
		}
	}
	if i < len(b) {
		(*counts)[i]++
	}
	s.ival++
	s.fval += v
}

// key packs labels' names and values into st.buf (names first) and returns
// the names part's length and the hash of both.
func (st *Store) key(labels map[string]string) (namesLen int, h uint64) {
	st.names = st.names[:0]
	for k := range labels {
		st.names = append(st.names, k)
	}
	slices.Sort(st.names)
	b := st.buf[:0]
	for _, k := range st.names {
		b = append(b, k...)
		b = append(b, sep)
	}
	namesLen = len(b)
	for _, k := range st.names {
		b = append(b, labels[k]...)
		b = append(b, sep)
	}
	st.buf = b
	return namesLen, maphash.Bytes(st.seed, b)
}

// find returns the series of f with the packed key b, or nil.
func (f *family) find(h uint64, b []byte, namesLen int) *Series {
	for s := f.series[h]; s != nil; s = s.next {
		if s.group.key == string(b[:namesLen]) && s.values == string(b[namesLen:]) {
			return s
		}
	}
	return nil
}

// Exists reports whether the series of name and labels exists, whatever
// its type.
func (st *Store) Exists(name string, labels map[string]string) bool {
	f := st.families[name]
	if f == nil {
		return false
	}
	n, h := st.key(labels)
	return f.find(h, st.buf, n) != nil
}

// Known reports whether a metric name has had a series (its type stays).
func (st *Store) Known(name string) bool { return st.families[name] != nil }

// Get returns the series of name and labels of kind k, touched at now,
// creating it (from sp) if needed. created reports a new series, newGroup
// a new label-name set of the name (upstream counted a vector in
// statsd_exporter_metrics_total; it does so even when the series then
// fails with ErrInvalidUTF8). Get copies what it keeps of name and labels.
func (st *Store) Get(name string, k Kind, labels map[string]string, sp Spec, now int64) (s *Series, created, newGroup bool, err error) {
	namesLen, h := st.key(labels)
	f := st.families[name]
	if f != nil && f.kind == k {
		if s := f.find(h, st.buf, namesLen); s != nil {
			s.last = now
			return s, false, false, nil
		}
	}
	if err := st.conflicts(name, k, f); err != nil {
		return nil, false, false, err
	}
	var g *group
	if f != nil {
		for _, x := range f.groups {
			if x.key == string(st.buf[:namesLen]) {
				g = x
				break
			}
		}
	}
	for _, v := range labels {
		if !utf8.ValidString(v) {
			return nil, false, g == nil, ErrInvalidUTF8
		}
	}
	if g == nil {
		newGroup = true
		g = newGroupFor(k, st.names, string(st.buf[:namesLen]), name, sp)
	}
	if f == nil {
		f = &family{kind: k, help: st.defaultHelp, series: map[uint64]*Series{}}
		st.families[strings.Clone(name)] = f
	}
	if newGroup {
		f.groups = append(f.groups, g)
	}
	if f.help == st.defaultHelp && sp.Help != st.defaultHelp {
		f.help = sp.Help
	}
	s = &Series{group: g, values: string(st.buf[namesLen:]), last: now, created: now}
	if sp.Mapping != nil {
		s.ttl = sp.Mapping.Ttl
	}
	switch {
	case g.newMetric != nil:
		s.obs = g.newMetric()
	case k == Histogram:
		c := make(buckets, len(g.buckets))
		s.obs = &c
	}
	s.next = f.series[h]
	f.series[h] = s
	st.series++
	return s, true, newGroup, nil
}

// conflicts applies upstream's checks for a new series of name and kind k
// (f is name's family, if any), and the receiver's own: the first series
// of a name must not collide with the families a histogram or summary
// makes (foo_bucket, foo_count, foo_sum), which upstream lets through and
// which make every gather fail.
func (st *Store) conflicts(name string, k Kind, f *family) error {
	other := func(n string, k Kind) bool {
		g := st.families[n]
		return g != nil && g.kind != k
	}
	if f != nil && f.kind != k {
		return ErrTypeConflict
	}
	switch k {
	case Counter, Gauge:
		// Upstream checks the base name against the counter type, for
		// gauges too.
		for _, suf := range [...]string{"_bucket", "_count", "_sum"} {
			if base, ok := strings.CutSuffix(name, suf); ok && other(base, Counter) {
				return ErrTypeConflict
			}
		}
	case Histogram:
		for _, suf := range [...]string{"_sum", "_count", "_bucket"} {
			if other(name+suf, Histogram) {
				return ErrTypeConflict
			}
		}
	case Summary:
		for _, suf := range [...]string{"_sum", "_count"} {
			if other(name+suf, Summary) {
				return ErrTypeConflict
			}
		}
	}
	if f == nil {
		for _, suf := range [...]string{"_count", "_sum", "_bucket"} {
			if base, ok := strings.CutSuffix(name, suf); ok {
				if b := st.families[base]; b != nil && (b.kind == Histogram || (b.kind == Summary && suf != "_bucket")) {
					return ErrSuffixConflict
				}
			}
			if k == Histogram || (k == Summary && suf != "_bucket") {
				if st.families[name+suf] != nil {
					return ErrSuffixConflict
				}
			}
		}
	}
	return nil
}

// newGroupFor resolves a new group's options from the mapping and the
// mapper's defaults, as upstream's registry does when it creates a vector.
func newGroupFor(k Kind, names []string, key, name string, sp Spec) *group {
	g := &group{names: make([]string, len(names)), key: key, kind: k}
	for i, n := range names {
		g.names[i] = strings.Clone(n) // not a slice of the line it came from
	}
	m, d := sp.Mapping, sp.Defaults
	if d == nil {
		d = &mapper.MapperConfigDefaults{}
	}
	switch k {
	case Histogram:
		buckets := d.HistogramOptions.Buckets
		factor := d.HistogramOptions.NativeHistogramBucketFactor
		maxBuckets := d.HistogramOptions.NativeHistogramMaxBuckets
		if ho := histogramOptions(m); ho != nil {
			if len(ho.Buckets) > 0 {
				buckets = ho.Buckets
			}
			if ho.NativeHistogramBucketFactor > 0 {
				factor = ho.NativeHistogramBucketFactor
			}
			if ho.NativeHistogramMaxBuckets > 0 {
				maxBuckets = ho.NativeHistogramMaxBuckets
			}
		}
		if factor > 1 {
			// A native histogram: client_golang's, per series.
			opts := prometheus.HistogramOpts{Name: name, Help: sp.Help, Buckets: buckets,
				NativeHistogramBucketFactor: factor, NativeHistogramMaxBucketNumber: maxBuckets}
			g.newMetric = func() observerMetric { return prometheus.NewHistogram(opts) }
			return g
		}
		g.buckets = classicBuckets(buckets)
	case Summary:
		quantiles := d.SummaryOptions.Quantiles
		so := mapper.SummaryOptions{MaxAge: d.SummaryOptions.MaxAge, AgeBuckets: d.SummaryOptions.AgeBuckets, BufCap: d.SummaryOptions.BufCap}
		if m != nil && m.SummaryOptions != nil {
			if len(m.SummaryOptions.Quantiles) > 0 {
				quantiles = m.SummaryOptions.Quantiles
			}
			so = *m.SummaryOptions
		}
		objectives := map[float64]float64{}
		for _, q := range quantiles {
			objectives[q.Quantile] = q.Error
		}
		if len(objectives) == 0 {
			objectives = map[float64]float64{0.5: 0.05, 0.9: 0.01, 0.99: 0.001}
		}
		opts := prometheus.SummaryOpts{Name: name, Help: sp.Help, Objectives: objectives,
			MaxAge: so.MaxAge, AgeBuckets: so.AgeBuckets, BufCap: so.BufCap}
		g.newMetric = func() observerMetric { return prometheus.NewSummary(opts) }
	}
	return g
}

func histogramOptions(m *mapper.MetricMapping) *mapper.HistogramOptions {
	if m == nil {
		return nil
	}
	return m.HistogramOptions
}

// classicBuckets is client_golang's treatment of classic buckets: the
// defaults when none are given, a trailing +Inf dropped (it is implicit),
// and a panic (recovered and counted by the shard) unless they increase.
func classicBuckets(b []float64) []float64 {
	if len(b) == 0 {
		return prometheus.DefBuckets
	}
	for i := range len(b) - 1 {
		if b[i] >= b[i+1] {
			panic(fmt.Errorf("histogram buckets must be in increasing order: %f >= %f", b[i], b[i+1]))
		}
	}
	if math.IsInf(b[len(b)-1], 1) {
		return b[:len(b)-1]
	}
	return b
}

// Sweep removes the series whose TTL has passed at now and returns how
// many it removed. Families and their groups stay, as in upstream's
// registry.
func (st *Store) Sweep(now int64) int {
	removed := 0
	for _, f := range st.families {
		for h, head := range f.series {
			var keep *Series
			for s := head; s != nil; {
				next := s.next
				if s.ttl != 0 && s.last+int64(s.ttl) < now {
					removed++
				} else {
					s.next = keep
					keep = s
				}
				s = next
			}
			if keep == nil {
				delete(f.series, h)
			} else {
				f.series[h] = keep
			}
		}
	}
	st.series -= removed
	return removed
}
