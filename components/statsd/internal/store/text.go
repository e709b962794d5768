package store

import (
	"cmp"
	"math"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"

	"github.com/sluicehq/sluice/encoded"
)

// AppendText appends the store's families (those with series) to out,
// encoded in the text exposition format straight from the store: exactly
// the bytes Gather's families would give through expfmt.MetricFamilyToText
// (HELP and TYPE lines, label and help escaping, float formatting, series
// order), without building them. Families the text path does not encode
// itself (native histograms, names that are not legacy Prometheus names)
// are gathered and encoded one family at a time.
//
// A call writes one page for the store, allocated at the size of the last
// call's page; the families' Text are slices of it. The page is not
// reused: encoded.Gatherer hands its bytes to scrapes that may still be
// writing them when the next scrape calls again, and it has no way to say
// when they are done. A page is a small part of what its series cost
// (about 60 bytes of text per counter against about a kilobyte of store
// and runtime), and one allocation per scrape instead of several per
// series is what makes the scrape cheap.
func (st *Store) AppendText(out []encoded.Family) ([]encoded.Family, error) {
	page := make([]byte, 0, st.lastText+st.lastText/8)
	for name, f := range st.families {
		if len(f.series) == 0 {
			continue
		}
		if !f.textable(name) {
			fams, err := encoded.Encode(st.gather(nil, name))
			if err != nil {
				return out, err
			}
			out = append(out, fams...)
			continue
		}
		start := len(page)
		var n int
		page, n = st.appendFamily(page, name, f)
		if n == 0 {
			page = page[:start]
			continue
		}
		out = append(out, encoded.Family{Name: name, Text: page[start:len(page):len(page)]})
	}
	st.lastText = len(page)
	return out, nil
}

// textable reports whether AppendText encodes f itself: legacy names only
// (others are quoted, and flagged for scrapers asking for escaping), and
// no native histograms (client_golang's own series, whose text form
// depends on what they hold).
func (f *family) textable(name string) bool {
	if !encoded.UnescapedMetricName(name) {
		return false
	}
	for _, g := range f.groups {
		if g.kind == Histogram && g.newMetric != nil {
			return false
		}
		for _, n := range g.names {
			if !encoded.UnescapedLabelName(n) {
				return false
			}
		}
	}
	return true
}

// appendFamily appends f's HELP and TYPE lines and its series in the
// order Gather gives them, and returns how many series it wrote (a
// summary whose client_golang metric fails to write is left out, as
// Gather leaves it out).
func (st *Store) appendFamily(b []byte, name string, f *family) ([]byte, int) {
	st.order = st.order[:0]
	for _, head := range f.series {
		for s := head; s != nil; s = s.next {
			st.order = append(st.order, s)
		}
	}
	slices.SortFunc(st.order, compareSeries)
	b = append(b, "# HELP "...)
	b = append(b, name...)
	b = append(b, ' ')
	b = encoded.AppendEscaped(b, f.help, false)
	b = append(b, "\n# TYPE "...)
	b = append(b, name...)
	b = append(b, [...]string{" counter\n", " gauge\n", " histogram\n", " summary\n"}[f.kind]...)
	n := 0
	for _, s := range st.order {
		switch counts, classic := s.obs.(*buckets); {
		case classic:
			var cum uint64
			for j, c := range *counts {
				cum += c
				b = appendSample(b, name, "_bucket", s, model.BucketLabel, s.group.buckets[j], float64(cum))
			}
			if len(s.group.buckets) == 0 || !math.IsInf(s.group.buckets[len(s.group.buckets)-1], 1) {
				b = appendSample(b, name, "_bucket", s, model.BucketLabel, math.Inf(1), float64(s.ival))
			}
			b = appendSample(b, name, "_sum", s, "", 0, s.fval)
			b = appendSample(b, name, "_count", s, "", 0, float64(s.ival))
		case s.obs != nil:
			if st.metric == nil {
				st.metric = &dto.Metric{}
			}
			st.metric.Reset()
			if err := s.obs.Write(st.metric); err != nil || st.metric.Summary == nil {
				continue
			}
			sum := st.metric.Summary
			for _, q := range sum.Quantile {
				b = appendSample(b, name, "", s, model.QuantileLabel, q.GetQuantile(), q.GetValue())
			}
			b = appendSample(b, name, "_sum", s, "", 0, sum.GetSampleSum())
			b = appendSample(b, name, "_count", s, "", 0, float64(sum.GetSampleCount()))
		case f.kind == Counter:
			b = appendSample(b, name, "", s, "", 0, s.fval+float64(s.ival))
		default:
			b = appendSample(b, name, "", s, "", 0, s.fval)
		}
		n++
	}
	clear(st.order) // hold no series past the call
	if cap(st.order) > 4*len(st.order)+1024 {
		st.order = nil // the family that needed it shrank: do not keep its peak
	}
	return b, n
}

// appendSample is expfmt's writeSample for a series of the store: name,
// suffix, the series' labels, the extra label (le, quantile) if any, and
// the value.
func appendSample(b []byte, name, suffix string, s *Series, extra string, extraValue, v float64) []byte {
	b = append(b, name...)
	b = append(b, suffix...)
	if len(s.group.names) > 0 || extra != "" {
		sepc := byte('{')
		rest := s.values
		for _, ln := range s.group.names {
			k := strings.IndexByte(rest, sep)
			b = append(b, sepc)
			b = append(b, ln...)
			b = append(b, `="`...)
			b = encoded.AppendEscaped(b, rest[:k], true)
			b = append(b, '"')
			rest = rest[k+1:]
			sepc = ','
		}
		if extra != "" {
			b = append(b, sepc)
			b = append(b, extra...)
			b = append(b, `="`...)
			b = encoded.AppendFloat(b, extraValue)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = encoded.AppendFloat(b, v)
	return append(b, '\n')
}

// compareSeries is compareLabels on the store's series: by the number of
// labels, then by the label values in order, then by the label names.
func compareSeries(a, b *Series) int {
	if c := cmp.Compare(len(a.group.names), len(b.group.names)); c != 0 {
		return c
	}
	av, bv := a.values, b.values
	for av != "" && bv != "" {
		i, j := strings.IndexByte(av, sep), strings.IndexByte(bv, sep)
		if c := strings.Compare(av[:i], bv[:j]); c != 0 {
			return c
		}
		av, bv = av[i+1:], bv[j+1:]
	}
	for i := range a.group.names {
		if c := strings.Compare(a.group.names[i], b.group.names[i]); c != 0 {
			return c
		}
	}
	return 0
}
