package testfile

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// exposition is an exposition reduced to what a test compares: each
// family's type, and each sample as a line "name{labels} value" keyed by
// "name{labels}" (labels sorted). HELP and timestamps are not compared.
type exposition struct {
	types   map[string]string  // family name -> "counter", "gauge", ...
	samples map[string]float64 // sample key -> value
	family  map[string]string  // sample key -> family name
}

func parseExposition(text string) (*exposition, error) {
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		return nil, err
	}
	out := make([]*dto.MetricFamily, 0, len(fams))
	for _, f := range fams {
		out = append(out, f)
	}
	return flatten(out), nil
}

// fromGathered reduces gathered families the way a scrape would see them:
// encoded as text and parsed again, so that what is compared is what the
// exposition says.
func fromGathered(fams []*dto.MetricFamily) (*exposition, error) {
	var buf bytes.Buffer
	for _, f := range fams {
		if _, err := expfmt.MetricFamilyToText(&buf, f); err != nil {
			return nil, fmt.Errorf("encoding %s: %w", f.GetName(), err)
		}
	}
	return parseExposition(buf.String())
}

func flatten(fams []*dto.MetricFamily) *exposition {
	e := &exposition{types: map[string]string{}, samples: map[string]float64{}, family: map[string]string{}}
	for _, f := range fams {
		name := f.GetName()
		e.types[name] = strings.ToLower(f.GetType().String())
		for _, m := range f.GetMetric() {
			add := func(suffix string, v float64, extra ...*dto.LabelPair) {
				k := sampleKey(name+suffix, append(slices.Clone(m.GetLabel()), extra...))
				e.samples[k] = v
				e.family[k] = name
			}
			lp := func(n, v string) *dto.LabelPair { return &dto.LabelPair{Name: &n, Value: &v} }
			switch {
			case m.Counter != nil:
				add("", m.Counter.GetValue())
			case m.Gauge != nil:
				add("", m.Gauge.GetValue())
			case m.Untyped != nil:
				add("", m.Untyped.GetValue())
			case m.Summary != nil:
				for _, q := range m.Summary.GetQuantile() {
					add("", q.GetValue(), lp("quantile", formatValue(q.GetQuantile())))
				}
				add("_sum", m.Summary.GetSampleSum())
				add("_count", float64(m.Summary.GetSampleCount()))
			case m.Histogram != nil:
				for _, b := range m.Histogram.GetBucket() {
					add("_bucket", float64(b.GetCumulativeCount()), lp("le", formatValue(b.GetUpperBound())))
				}
				add("_bucket", float64(m.Histogram.GetSampleCount()), lp("le", "+Inf"))
				add("_sum", m.Histogram.GetSampleSum())
				add("_count", float64(m.Histogram.GetSampleCount()))
			}
		}
	}
	return e
}

func sampleKey(name string, labels []*dto.LabelPair) string {
	sort.Slice(labels, func(i, j int) bool { return labels[i].GetName() < labels[j].GetName() })
	var b strings.Builder
	b.WriteString(name)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%s=%q", l.GetName(), l.GetValue())
		}
		b.WriteByte('}')
	}
	return b.String()
}

func formatValue(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func sameValue(a, b float64) bool {
	return a == b || (math.IsNaN(a) && math.IsNaN(b))
}

// diff compares got with want and returns the differing lines, sorted by
// series: "- " what was expected and is not there (or has another value
// or type), "+ " what is there and was not expected. With listed, only the
// expected series and families are compared. Empty when they agree.
func diff(want, got *exposition, match string) []string {
	var keys []string
	seen := map[string]bool{}
	for k := range want.samples {
		keys = append(keys, k)
		seen[k] = true
	}
	if match == MatchExact {
		for k := range got.samples {
			if !seen[k] {
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	var out []string
	// Types are compared for the families the expectation types (a
	// family without # TYPE in it is untyped: any type is accepted).
	var fams []string
	for f, t := range want.types {
		if t != "untyped" {
			fams = append(fams, f)
		}
	}
	sort.Strings(fams)
	for _, f := range fams {
		wt := want.types[f]
		gt, gok := got.types[f]
		if gok && wt == gt {
			continue
		}
		out = append(out, fmt.Sprintf("- # TYPE %s %s", f, wt))
		if gok {
			out = append(out, fmt.Sprintf("+ # TYPE %s %s", f, gt))
		}
	}
	for _, k := range keys {
		wv, wok := want.samples[k]
		gv, gok := got.samples[k]
		if wok && gok && sameValue(wv, gv) {
			continue
		}
		if wok {
			out = append(out, fmt.Sprintf("- %s %s", k, formatValue(wv)))
		}
		if gok {
			out = append(out, fmt.Sprintf("+ %s %s", k, formatValue(gv)))
		}
	}
	return out
}
