package store

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/statsd_exporter/pkg/clock"
	"github.com/prometheus/statsd_exporter/pkg/mapper"
	"github.com/prometheus/statsd_exporter/pkg/metrics"
	"github.com/prometheus/statsd_exporter/pkg/registry"
	"google.golang.org/protobuf/proto"
)

// oracle is the store this package replaces: upstream's registry over
// client_golang vectors, driven as the receiver's shards drove it (with
// the receiver's own suffix check on a name's first series).
type oracle struct {
	reg      *registry.Registry
	prom     *prometheus.Registry
	count    *prometheus.GaugeVec
	defaults mapper.MapperConfigDefaults
}

func newOracle(d mapper.MapperConfigDefaults) *oracle {
	prom := prometheus.NewRegistry()
	o := &oracle{prom: prom, defaults: d,
		count: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "metrics_total"}, []string{"type"})}
	o.reg = registry.NewRegistry(prom, &mapper.MetricMapper{Defaults: d})
	return o
}

func (o *oracle) apply(op op) error {
	st := &Store{families: map[string]*family{}}
	for name, m := range o.reg.Metrics {
		st.families[name] = &family{kind: kindOf(m.MetricType)}
	}
	if _, known := o.reg.Metrics[op.name]; !known {
		if err := st.conflicts(op.name, op.kind, nil); errors.Is(err, ErrSuffixConflict) {
			return err
		}
	}
	var err error
	switch op.kind {
	case Counter:
		var c prometheus.Counter
		if c, err = o.reg.GetCounter(op.name, op.labels, op.help, op.mapping, o.count); err == nil {
			c.Add(op.value)
		}
	case Gauge:
		var g prometheus.Gauge
		if g, err = o.reg.GetGauge(op.name, op.labels, op.help, op.mapping, o.count); err == nil {
			if op.relative {
				g.Add(op.value)
			} else {
				g.Set(op.value)
			}
		}
	case Histogram:
		var h prometheus.Observer
		if h, err = o.reg.GetHistogram(op.name, op.labels, op.help, op.mapping, o.count); err == nil {
			h.Observe(op.value)
		}
	case Summary:
		var h prometheus.Observer
		if h, err = o.reg.GetSummary(op.name, op.labels, op.help, op.mapping, o.count); err == nil {
			h.Observe(op.value)
		}
	}
	return err
}

func kindOf(t metrics.MetricType) Kind {
	switch t {
	case metrics.GaugeMetricType:
		return Gauge
	case metrics.HistogramMetricType:
		return Histogram
	case metrics.SummaryMetricType:
		return Summary
	}
	return Counter
}

// subject is the store under test, driven as the shard drives it.
type subject struct {
	st       *Store
	count    map[string]int
	defaults mapper.MapperConfigDefaults
}

func (s *subject) apply(op op, now time.Time) error {
	se, _, newGroup, err := s.st.Get(op.name, op.kind, op.labels, Spec{Help: op.help, Mapping: op.mapping, Defaults: &s.defaults}, s.st.Now(now))
	if newGroup {
		s.count[op.kind.String()]++
	}
	if err != nil {
		return err
	}
	switch op.kind {
	case Counter:
		se.Add(op.value)
	case Gauge:
		if op.relative {
			se.AddGauge(op.value)
		} else {
			se.Set(op.value)
		}
	default:
		se.Observe(op.value)
	}
	return nil
}

type op struct {
	name     string
	kind     Kind
	labels   map[string]string
	help     string
	mapping  *mapper.MetricMapping
	value    float64
	relative bool
}

// The vocabulary the decoder draws from: names that collide through
// suffixes, label sets with different names, values that repeat.
var (
	opNames  = []string{"a", "a_sum", "a_count", "a_bucket", "b", "b_count", "c", "lat", "lat_bucket", "a_sum_count"}
	opLabels = []string{"env", "host", "le_x", "zone"}
	opValues = []string{"", "x", "y", "prod", "eu", "ä", "\xff", "a\xffb"}
	opFloats = []float64{0, 1, 2.5, 0.1, 1e-3, 7, 1e6, -3, 0.25, 100}
	mappings = []*mapper.MetricMapping{
		{},
		{Ttl: time.Second},
		{Ttl: 3 * time.Second, HistogramOptions: &mapper.HistogramOptions{Buckets: []float64{0.5, 1, 5}}},
		{SummaryOptions: &mapper.SummaryOptions{Quantiles: []mapper.MetricObjective{{Quantile: 0.9, Error: 0.01}}, MaxAge: time.Minute, AgeBuckets: 2}},
		{HistogramOptions: &mapper.HistogramOptions{Buckets: []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37}}},
		{HistogramOptions: &mapper.HistogramOptions{NativeHistogramBucketFactor: 1.1, NativeHistogramMaxBuckets: 10}},
	}
)

func helpOf(name string) string {
	if strings.HasPrefix(name, "a") {
		return "help of " + name
	}
	return "default help"
}

// run decodes data into operations (an update, a clock step, a sweep, a
// gather) and applies them to both stores, comparing every gather and the
// vector counts.
func run(t *testing.T, data []byte) {
	t.Helper()
	defaults := mapper.MapperConfigDefaults{HistogramOptions: mapper.HistogramOptions{Buckets: []float64{0.1, 1, 10}}, SummaryOptions: mapper.SummaryOptions{Quantiles: []mapper.MetricObjective{{Quantile: 0.5, Error: 0.05}}}}
	now := time.Unix(1_700_000_000, 0)
	clock.ClockInstance = &clock.Clock{Instant: now}
	defer func() { clock.ClockInstance = nil }()
	o := newOracle(defaults)
	s := &subject{st: New("default help"), count: map[string]int{}, defaults: defaults}
	next := decoder(&data)
	for step := 0; len(data) > 0 && step < 200; step++ {
		switch c := next(); c % 8 {
		case 0:
			now = now.Add(time.Duration(next()%8) * 500 * time.Millisecond)
			clock.ClockInstance.Instant = now
		case 1:
			o.reg.RemoveStaleMetrics()
			s.st.Sweep(s.st.Now(now))
		case 2:
			compare(t, o, s)
		default:
			name := opNames[next()%len(opNames)]
			op := op{name: name, kind: Kind(next() % 4), labels: map[string]string{}, help: helpOf(name),
				mapping: mappings[next()%len(mappings)], value: opFloats[next()%len(opFloats)], relative: c&8 != 0}
			for n := next() % 3; n > 0; n-- {
				op.labels[opLabels[next()%len(opLabels)]] = opValues[next()%len(opValues)]
			}
			if op.kind == Counter && op.value < 0 {
				op.value = -op.value // the receiver refuses negative increments before the store
			}
			errO, errS := o.apply(op), s.apply(op, now)
			if (errO == nil) != (errS == nil) {
				t.Fatalf("step %d %+v: upstream's error %v, the store's %v", step, op, errO, errS)
			}
		}
	}
	compare(t, o, s)
}

func compare(t *testing.T, o *oracle, s *subject) {
	t.Helper()
	want, err := o.prom.Gather()
	if err != nil {
		t.Fatalf("upstream's gather: %v", err)
	}
	got := s.st.Gather(nil)
	slices.SortFunc(got, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	if a, b := familiesText(t, want), familiesText(t, got); a != b {
		t.Fatalf("the store's families differ from upstream's:\n--- upstream\n%s\n--- store\n%s", a, b)
	}
	for _, k := range []Kind{Counter, Gauge, Histogram, Summary} {
		var m dto.Metric
		o.count.WithLabelValues(k.String()).Write(&m)
		if int(m.GetGauge().GetValue()) != s.count[k.String()] {
			t.Fatalf("%s vectors: upstream %v, the store %d", k, m.GetGauge().GetValue(), s.count[k.String()])
		}
	}
	n := 0
	for _, mf := range got {
		n += len(mf.Metric)
	}
	if n != s.st.Len() {
		t.Fatalf("Len() = %d, gathered %d series", s.st.Len(), n)
	}
}

// familiesText is the families in the protobuf text form (every field,
// native histogram buckets included), without created timestamps.
func familiesText(t *testing.T, mfs []*dto.MetricFamily) string {
	t.Helper()
	var b bytes.Buffer
	for _, mf := range mfs {
		mf = proto.Clone(mf).(*dto.MetricFamily)
		// Series with as many labels and the same values but other label
		// names are in no defined order in client_golang's gather: order
		// them by their names too.
		slices.SortStableFunc(mf.Metric, func(a, b *dto.Metric) int {
			if c := compareLabels(a, b); c != 0 {
				return c
			}
			return strings.Compare(fmt.Sprint(a.Label), fmt.Sprint(b.Label))
		})
		for _, m := range mf.Metric {
			if m.Counter != nil {
				m.Counter.CreatedTimestamp = nil
			}
			if m.Histogram != nil {
				m.Histogram.CreatedTimestamp = nil
			}
			if m.Summary != nil {
				m.Summary.CreatedTimestamp = nil
			}
		}
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(&b, mf.String())
	}
	return b.String()
}

// TestStoreMatchesUpstream drives the store and upstream's registry with
// the same operations (every kind, conflicting names, label sets with
// different names, invalid UTF-8, TTLs, sweeps) and compares what they
// gather and the vectors they count.
func TestStoreMatchesUpstream(t *testing.T) {
	for seed := range 150 {
		data := xorshift(uint32(seed*2654435761+1), 600)
		t.Run(fmt.Sprint(seed), func(t *testing.T) { run(t, data) })
	}
}

// FuzzStoreMatchesUpstream is TestStoreMatchesUpstream on fuzzed
// operations (at most 200 per input). Run it with
//
//	go test -run '^$' -fuzz FuzzStoreMatchesUpstream -fuzztime 60s ./components/statsd/internal/store/
func FuzzStoreMatchesUpstream(f *testing.F) {
	f.Add([]byte{3, 0, 1, 0, 0, 1, 1, 0, 2})
	f.Add([]byte{3, 1, 2, 2, 2, 1, 0, 0, 4, 2, 0, 3, 3, 0, 0, 0, 2})
	f.Fuzz(func(t *testing.T, data []byte) { run(t, data) })
}

// decoder returns the bytes of *data one at a time, then zeros.
func decoder(data *[]byte) func() int {
	return func() int {
		if len(*data) == 0 {
			return 0
		}
		b := int((*data)[0])
		*data = (*data)[1:]
		return b
	}
}

// xorshift is n pseudo-random bytes from seed, the same on every run.
func xorshift(x uint32, n int) []byte {
	data := make([]byte, n)
	for i := range data {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		data[i] = byte(x)
	}
	return data
}
