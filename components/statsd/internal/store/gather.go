package store

import (
	"cmp"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The types of the families, pointed to by every gathered family.
var types = [...]dto.MetricType{dto.MetricType_COUNTER, dto.MetricType_GAUGE, dto.MetricType_HISTOGRAM, dto.MetricType_SUMMARY}

// Gather appends the store's families (those with series) to out, as
// client_golang's registry would gather the vectors this store replaces:
// label pairs sorted by name, series ordered by their label values,
// counters with their created timestamps. What it returns shares nothing
// mutable with the store: it may be used after the store's guard is
// released. It allocates a few slabs per call, not a few objects per
// series.
func (st *Store) Gather(out []*dto.MetricFamily) []*dto.MetricFamily {
	return st.gather(out, "")
}

// gather is Gather, of the family only if only is not empty.
func (st *Store) gather(out []*dto.MetricFamily, only string) []*dto.MetricFamily {
	nSeries, nFam, nLabels, nCounters, nGauges, nHist, nBuckets := 0, 0, 0, 0, 0, 0, 0
	for name, f := range st.families {
		if len(f.series) == 0 || (only != "" && name != only) {
			continue
		}
		nFam++
		for _, head := range f.series {
			for s := head; s != nil; s = s.next {
				nSeries++
				nLabels += len(s.group.names)
				switch c, classic := s.obs.(*buckets); {
				case classic:
					nHist++
					nBuckets += len(*c)
				case s.obs != nil:
				case f.kind == Counter:
					nCounters++
				case f.kind == Gauge:
					nGauges++
				}
			}
		}
	}
	if nSeries == 0 {
		return out
	}
	var (
		metrics  = make([]dto.Metric, nSeries)
		ptrs     = make([]*dto.Metric, nSeries)
		fams     = make([]dto.MetricFamily, nFam)
		names    = make([]string, nFam)
		helps    = make([]string, nFam)
		kinds    = make([]dto.MetricType, nFam)
		pairs    = make([]dto.LabelPair, nLabels)
		pairPtrs = make([]*dto.LabelPair, nLabels)
		values   = make([]string, nLabels)
		floats   = make([]float64, nCounters+nGauges+nHist)
		counters = make([]dto.Counter, nCounters)
		gauges   = make([]dto.Gauge, nGauges)
		hists    = make([]dto.Histogram, nHist)
		stamps   = timestamps{st: st, at: map[int64]*timestamppb.Timestamp{}}
		cums     = make([]uint64, nHist+nBuckets)
		bkts     = make([]dto.Bucket, nBuckets)
		bptrs    = make([]*dto.Bucket, nBuckets)
	)
	i, fi, li, vi, ci, gi, hi, ki, bi := 0, 0, 0, 0, 0, 0, 0, 0, 0
	for name, f := range st.families {
		if len(f.series) == 0 || (only != "" && name != only) {
			continue
		}
		start := i
		for _, head := range f.series {
			for s := head; s != nil; s = s.next {
				m := &metrics[i]
				counts, classic := s.obs.(*buckets)
				other := s.obs != nil && !classic
				if other {
					if err := s.obs.Write(m); err != nil {
						*m = dto.Metric{}
						continue
					}
				}
				// Labels: names from the group, values sliced out of the
				// packed string (no copies).
				if n := len(s.group.names); n > 0 {
					lp := pairPtrs[li : li+n : li+n]
					rest := s.values
					for j, ln := range s.group.names {
						k := strings.IndexByte(rest, sep)
						values[li+j] = rest[:k]
						rest = rest[k+1:]
						pairs[li+j].Name = &s.group.names[j]
						pairs[li+j].Value = &values[li+j]
						lp[j] = &pairs[li+j]
						_ = ln
					}
					m.Label = lp
					li += n
				} else {
					m.Label = nil
				}
				switch {
				case other:
				case f.kind == Counter:
					floats[vi] = s.fval + float64(s.ival)
					c := &counters[ci]
					c.Value = &floats[vi]
					c.CreatedTimestamp = stamps.of(s.created)
					m.Counter = c
					vi, ci = vi+1, ci+1
				case f.kind == Gauge:
					floats[vi] = s.fval
					g := &gauges[gi]
					g.Value = &floats[vi]
					m.Gauge = g
					vi, gi = vi+1, gi+1
				case classic:
					h := &hists[hi]
					cums[ki] = s.ival
					h.SampleCount = &cums[ki]
					floats[vi] = s.fval
					h.SampleSum = &floats[vi]
					h.CreatedTimestamp = stamps.of(s.created)
					ki, vi = ki+1, vi+1
					n := len(*counts)
					h.Bucket = bptrs[bi : bi+n : bi+n]
					var cum uint64
					for j, c := range *counts {
						cum += c
						cums[ki] = cum
						b := &bkts[bi+j]
						b.CumulativeCount = &cums[ki]
						b.UpperBound = &s.group.buckets[j]
						h.Bucket[j] = b
						ki++
					}
					bi += n
					m.Histogram = h
					hi++
				}
				ptrs[i] = m
				i++
			}
		}
		if i == start {
			continue
		}
		ms := ptrs[start:i:i]
		slices.SortFunc(ms, compareLabels)
		names[fi], helps[fi], kinds[fi] = name, f.help, types[f.kind]
		mf := &fams[fi]
		mf.Name, mf.Help, mf.Type, mf.Metric = &names[fi], &helps[fi], &kinds[fi], ms
		out = append(out, mf)
		fi++
	}
	return out
}

// timestamps hands out one created timestamp per creation time in a
// gather: series created by one batch share it.
type timestamps struct {
	st *Store
	at map[int64]*timestamppb.Timestamp
}

func (t *timestamps) of(created int64) *timestamppb.Timestamp {
	if ts := t.at[created]; ts != nil {
		return ts
	}
	ts := timestamppb.New(t.st.epoch.Add(time.Duration(created)))
	t.at[created] = ts
	return ts
}

// compareLabels orders series as client_golang's registry does: by the
// number of labels, then by the label values in order (the names of a
// family's series with as many labels are the same).
func compareLabels(a, b *dto.Metric) int {
	if c := cmp.Compare(len(a.Label), len(b.Label)); c != 0 {
		return c
	}
	for i := range a.Label {
		if c := strings.Compare(a.Label[i].GetValue(), b.Label[i].GetValue()); c != 0 {
			return c
		}
	}
	// Same values under other names: client_golang leaves these in no
	// defined order; order them by the names, for stable output.
	for i := range a.Label {
		if c := strings.Compare(a.Label[i].GetName(), b.Label[i].GetName()); c != 0 {
			return c
		}
	}
	return 0
}
