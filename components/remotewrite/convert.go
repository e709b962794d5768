package remotewrite

import (
	"math"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/cespare/xxhash/v2"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
)

// staleNaN is the value Prometheus uses to mark a series as gone.
var staleNaN = math.Float64frombits(value.StaleNaN)

// converter turns gathered families into remote-write series, the way a
// Prometheus scrape of the same families would, and remembers the series of
// the last gather so that those that disappear get a staleness marker.
type converter struct {
	external []prompb.Label // sorted by name
	native   bool           // emit native histograms when a family has them
	// series are the live series, by a hash of the metric's name, own
	// labels and le/quantile (the external labels are the same for all),
	// each with its built label set and the last gather that saw it. A
	// 64-bit hash collision between two live series would make one borrow
	// the other's labels; at 2^-64 per pair that is accepted, as it saves
	// rebuilding and sorting every label set at every gather. One map,
	// stamped with the gather number, rather than a map per gather: a live
	// series costs one lookup per gather and no insert.
	series map[uint64]*seriesEntry
	gen    uint64 // the current gather
	hbuf   []byte // the bytes hashed into a series key
	lbuf   []prompb.Label
	hashes []uint64 // of the series convert returned, in order
	// invalid counts the series of the last convert left out because a
	// label name or value is not valid UTF-8: a receiver refuses the whole
	// request that carries one (and would drop the valid series with it).
	invalid int
	// samples backs the one-sample Samples of every series of a gather:
	// one allocation per gather instead of one per sample. Fresh for each
	// gather, as the series are still queued while the next is converted.
	samples []prompb.Sample
}

type seriesEntry struct {
	labels []prompb.Label // nil for a series left out as invalid
	gen    uint64         // the last gather that saw the series
}

func newConverter(external map[string]string, native bool) *converter {
	c := &converter{native: native, series: map[uint64]*seriesEntry{}}
	for name, v := range external {
		c.external = append(c.external, prompb.Label{Name: name, Value: v})
	}
	sort.Slice(c.external, func(i, j int) bool { return c.external[i].Name < c.external[j].Name })
	return c
}

// convert returns one TimeSeries per series, each with one sample or one
// native histogram, stamped with nowMs unless the metric has its own
// timestamp, followed by staleness markers for the series of the previous
// call that are missing now.
func (c *converter) convert(fams []*dto.MetricFamily, nowMs int64) []prompb.TimeSeries {
	out := make([]prompb.TimeSeries, 0, len(c.series)+16)
	c.samples = make([]prompb.Sample, 0, len(c.series)+16)
	c.hashes = c.hashes[:0]
	c.invalid = 0
	c.gen++
	for _, mf := range fams {
		name := mf.GetName()
		for _, m := range mf.Metric {
			ts := nowMs
			if m.TimestampMs != nil {
				ts = m.GetTimestampMs()
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out = c.sample(out, name, m.Label, "", "", m.GetCounter().GetValue(), ts)
			case dto.MetricType_GAUGE:
				out = c.sample(out, name, m.Label, "", "", m.GetGauge().GetValue(), ts)
			case dto.MetricType_UNTYPED:
				out = c.sample(out, name, m.Label, "", "", m.GetUntyped().GetValue(), ts)
			case dto.MetricType_SUMMARY:
				s := m.GetSummary()
				for _, q := range s.Quantile {
					out = c.sample(out, name, m.Label, "quantile", formatFloat(q.GetQuantile()), q.GetValue(), ts)
				}
				out = c.sample(out, name+"_sum", m.Label, "", "", s.GetSampleSum(), ts)
				out = c.sample(out, name+"_count", m.Label, "", "", float64(s.GetSampleCount()), ts)
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				out = c.histogram(out, name, m, mf.GetType() == dto.MetricType_GAUGE_HISTOGRAM, ts)
			}
		}
	}
	// Staleness: what was there last time and is not now.
	for h, e := range c.series {
		if e.gen != c.gen && e.labels == nil {
			delete(c.series, h) // invalid, never sent: no marker
			continue
		}
		if e.gen != c.gen {
			out = append(out, prompb.TimeSeries{Labels: e.labels, Samples: c.oneSample(staleNaN, nowMs)})
			c.hashes = append(c.hashes, h)
			delete(c.series, h)
		}
	}
	return out
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func (c *converter) histogram(out []prompb.TimeSeries, name string, m *dto.Metric, gauge bool, ts int64) []prompb.TimeSeries {
	h := m.GetHistogram()
	isNative := h.GetSchema() != 0 || h.GetZeroThreshold() != 0 || len(h.PositiveSpan) > 0 || len(h.NegativeSpan) > 0 || h.GetZeroCount() != 0 || h.GetZeroCountFloat() != 0
	if c.native && isNative {
		lbls, key := c.labels(name, m.Label, "", "")
		if lbls == nil {
			return out
		}
		c.hashes = append(c.hashes, key)
		return append(out, prompb.TimeSeries{Labels: lbls, Histograms: []prompb.Histogram{nativeHistogram(h, gauge, ts)}})
	}
	cum := float64(h.GetSampleCount())
	if h.SampleCountFloat != nil {
		cum = h.GetSampleCountFloat()
	}
	sawInf := false
	for _, b := range h.Bucket {
		v := float64(b.GetCumulativeCount())
		if b.CumulativeCountFloat != nil {
			v = b.GetCumulativeCountFloat()
		}
		if math.IsInf(b.GetUpperBound(), +1) {
			sawInf = true
		}
		out = c.sample(out, name+"_bucket", m.Label, "le", formatFloat(b.GetUpperBound()), v, ts)
	}
	if !sawInf {
		out = c.sample(out, name+"_bucket", m.Label, "le", "+Inf", cum, ts)
	}
	out = c.sample(out, name+"_sum", m.Label, "", "", h.GetSampleSum(), ts)
	return c.sample(out, name+"_count", m.Label, "", "", cum, ts)
}

func nativeHistogram(h *dto.Histogram, gauge bool, ts int64) prompb.Histogram {
	p := prompb.Histogram{
		Sum:           h.GetSampleSum(),
		Schema:        h.GetSchema(),
		ZeroThreshold: h.GetZeroThreshold(),
		Timestamp:     ts,
		NegativeSpans: spans(h.NegativeSpan),
		PositiveSpans: spans(h.PositiveSpan),
	}
	if gauge {
		p.ResetHint = prompb.Histogram_GAUGE
	}
	if h.SampleCountFloat != nil || len(h.PositiveCount) > 0 || len(h.NegativeCount) > 0 {
		p.Count = &prompb.Histogram_CountFloat{CountFloat: h.GetSampleCountFloat()}
		if h.SampleCountFloat == nil {
			p.Count = &prompb.Histogram_CountFloat{CountFloat: float64(h.GetSampleCount())}
		}
		p.ZeroCount = &prompb.Histogram_ZeroCountFloat{ZeroCountFloat: h.GetZeroCountFloat()}
		p.PositiveCounts, p.NegativeCounts = h.PositiveCount, h.NegativeCount
		return p
	}
	p.Count = &prompb.Histogram_CountInt{CountInt: h.GetSampleCount()}
	p.ZeroCount = &prompb.Histogram_ZeroCountInt{ZeroCountInt: h.GetZeroCount()}
	p.PositiveDeltas, p.NegativeDeltas = h.PositiveDelta, h.NegativeDelta
	return p
}

func spans(in []*dto.BucketSpan) []prompb.BucketSpan {
	if len(in) == 0 {
		return nil
	}
	out := make([]prompb.BucketSpan, len(in))
	for i, s := range in {
		out[i] = prompb.BucketSpan{Offset: s.GetOffset(), Length: s.GetLength()}
	}
	return out
}

func (c *converter) sample(out []prompb.TimeSeries, name string, pairs []*dto.LabelPair, extraName, extraValue string, v float64, ts int64) []prompb.TimeSeries {
	lbls, key := c.labels(name, pairs, extraName, extraValue)
	if lbls == nil {
		return out
	}
	c.hashes = append(c.hashes, key)
	return append(out, prompb.TimeSeries{Labels: lbls, Samples: c.oneSample(v, ts)})
}

// oneSample returns a one-element slice of the gather's sample array (its
// capacity capped, so that nothing appends into the next series' sample).
func (c *converter) oneSample(v float64, ts int64) []prompb.Sample {
	if len(c.samples) == cap(c.samples) {
		c.samples = make([]prompb.Sample, 0, max(2*cap(c.samples), 64))
	}
	i := len(c.samples)
	c.samples = append(c.samples, prompb.Sample{Value: v, Timestamp: ts})
	return c.samples[i : i+1 : i+1]
}

// labels returns the sorted label set of a series and its key: __name__,
// the metric's labels (empty values dropped, as Prometheus does), one extra
// label (le, quantile) and the external labels the series does not have.
// A series of the previous gather keeps its label set. It records the
// series for staleness and returns nil for a duplicate within this gather
// (the first one wins).
func (c *converter) labels(name string, pairs []*dto.LabelPair, extraName, extraValue string) ([]prompb.Label, uint64) {
	hb := append(c.hbuf[:0], name...)
	for _, p := range pairs {
		hb = append(hb, sep)
		hb = append(hb, p.GetName()...)
		hb = append(hb, sep)
		hb = append(hb, p.GetValue()...)
	}
	hb = append(hb, sep)
	hb = append(hb, extraName...)
	hb = append(hb, sep)
	hb = append(hb, extraValue...)
	c.hbuf = hb
	key := xxhash.Sum64(hb)
	if e, ok := c.series[key]; ok {
		if e.gen == c.gen {
			return nil, 0 // a duplicate within this gather
		}
		e.gen = c.gen
		if e.labels == nil {
			c.invalid++
		}
		return e.labels, key
	}
	// A new series: checked once, remembered either way.
	if !validUTF8(name, pairs, extraValue) {
		c.invalid++
		c.series[key] = &seriesEntry{gen: c.gen}
		return nil, 0
	}
	b := c.lbuf[:0]
	b = append(b, prompb.Label{Name: "__name__", Value: name})
	for _, p := range pairs {
		if p.GetValue() == "" || p.GetName() == extraName {
			continue
		}
		b = append(b, prompb.Label{Name: p.GetName(), Value: p.GetValue()})
	}
	if extraName != "" {
		b = append(b, prompb.Label{Name: extraName, Value: extraValue})
	}
	sort.Slice(b, func(i, j int) bool { return b[i].Name < b[j].Name })
	if len(c.external) > 0 {
		n := len(b)
		for _, e := range c.external {
			i := sort.Search(n, func(i int) bool { return b[i].Name >= e.Name })
			if i < n && b[i].Name == e.Name {
				continue // the series' own value wins
			}
			b = append(b, e)
		}
		if len(b) > n {
			sort.Slice(b, func(i, j int) bool { return b[i].Name < b[j].Name })
		}
	}
	c.lbuf = b
	lbls := append([]prompb.Label(nil), b...)
	c.series[key] = &seriesEntry{labels: lbls, gen: c.gen}
	return lbls, key
}

const sep = 0xff

// validUTF8 reports whether a series' name, label names and values are
// valid UTF-8.
func validUTF8(name string, pairs []*dto.LabelPair, extraValue string) bool {
	if !utf8.ValidString(name) || !utf8.ValidString(extraValue) {
		return false
	}
	for _, p := range pairs {
		if !utf8.ValidString(p.GetName()) || !utf8.ValidString(p.GetValue()) {
			return false
		}
	}
	return true
}

func hashLabels(d *xxhash.Digest, lbls []prompb.Label) uint64 {
	d.Reset()
	for _, l := range lbls {
		_, _ = d.WriteString(l.Name)
		_, _ = d.Write([]byte{sep})
		_, _ = d.WriteString(l.Value)
		_, _ = d.Write([]byte{sep})
	}
	return d.Sum64()
}
