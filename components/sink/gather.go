package sink

import (
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/labelset"
	"github.com/sluicehq/sluice/pipeline"
)

type constLabel struct{ name, value string }

// state is what one scrape uses. Update replaces it whole.
type state struct {
	inputs   []prometheus.Gatherer
	inputIDs []string
	consts   []*dto.LabelPair // sorted by name
	honorTS  bool
	// openMetrics offers OpenMetrics in content negotiation.
	openMetrics bool
	maxScrapes  int
}

func newState(a Arguments, m *selfMetrics) *state {
	st := &state{inputs: append([]prometheus.Gatherer(nil), a.Inputs...), honorTS: a.HonorTimestamps, openMetrics: a.OpenMetrics,
		maxScrapes: a.MaxConcurrentScrapes}
	for i, g := range st.inputs {
		// Name inputs by the component they come from; the index is the
		// fallback for gatherers that do not come from a reference.
		id := pipeline.SourceID(g)
		if id == "" {
			id = strconv.Itoa(i)
		}
		st.inputIDs = append(st.inputIDs, id)
		m.gatherErrors.WithLabelValues(id, "gather")
		m.gatherErrors.WithLabelValues(id, "inconsistent")
	}
	for _, cl := range sortedConst(a.ConstLabels) {
		st.consts = append(st.consts, &dto.LabelPair{Name: proto.String(cl.name), Value: proto.String(cl.value)})
	}
	return st
}

type gathererFunc func() ([]*dto.MetricFamily, error)

func (f gathererFunc) Gather() ([]*dto.MetricFamily, error) { return f() }

// gather merges the inputs of st for the scrapes of one flight (see
// sharedGather). Input families are never modified: a family that needs a
// change (merge, labels, timestamps) is copied. Errors are counted and
// logged here, once per gather; the error reaches promhttp only when
// nothing at all could be gathered (it then answers 500).
func (c *Component) gather(st *state) ([]*dto.MetricFamily, error) {
	var (
		errs    []error
		out     []*dto.MetricFamily
		index   map[string]int                   // family name -> position in out
		owned   map[int]map[uint64][]*dto.Metric // merged families: metrics by label set hash, for duplicate checks
		d       = xxhash.New()
		several = len(st.inputs) > 1
	)
	for i, in := range st.inputs {
		fams, err := in.Gather()
		if err != nil {
			c.inputError(st, i, "gather", err)
			errs = append(errs, err)
		}
		if out == nil {
			out = make([]*dto.MetricFamily, 0, len(fams))
		}
		for _, mf := range fams {
			if mf == nil || len(mf.Metric) == 0 {
				continue
			}
			if err := checkFamily(mf); err != nil {
				c.inputError(st, i, "inconsistent", err)
				errs = append(errs, err)
				continue
			}
			if !several {
				out = append(out, mf)
				continue
			}
			if index == nil {
				index = map[string]int{}
				owned = map[int]map[uint64][]*dto.Metric{}
			}
			j, seen := index[mf.GetName()]
			if !seen {
				index[mf.GetName()] = len(out)
				out = append(out, mf)
				continue
			}
			have := out[j]
			if have.GetType() != mf.GetType() {
				err := fmt.Errorf("family %q is a %s in input %d but a %s in an earlier input: skipped from input %d",
					mf.GetName(), mf.GetType(), i, have.GetType(), i)
				c.inputError(st, i, "inconsistent", err)
				errs = append(errs, err)
				continue
			}
			hashes := owned[j]
			if hashes == nil {
				// First merge into this family: copy it, so the input's
				// family stays untouched.
				hashes = make(map[uint64][]*dto.Metric, len(have.Metric)+len(mf.Metric))
				for _, m := range have.Metric {
					h := labelset.Hash(d, m.Label)
					hashes[h] = append(hashes[h], m)
				}
				have = &dto.MetricFamily{Name: have.Name, Help: have.Help, Type: have.Type, Unit: have.Unit,
					Metric: append(make([]*dto.Metric, 0, len(have.Metric)+len(mf.Metric)), have.Metric...)}
				out[j], owned[j] = have, hashes
			}
			dups := 0
			for _, m := range mf.Metric {
				h := labelset.Hash(d, m.Label)
				if labelset.Contains(hashes[h], m.Label) {
					dups++
					continue
				}
				hashes[h] = append(hashes[h], m)
				have.Metric = append(have.Metric, m)
			}
			if dups > 0 {
				err := fmt.Errorf("family %q: %d series of input %d duplicate series of an earlier input: skipped", mf.GetName(), dups, i)
				c.inputError(st, i, "inconsistent", err)
			}
		}
	}
	if several {
		sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	}
	if len(st.consts) > 0 || !st.honorTS {
		out = rewrite(out, st, d)
	}
	if len(out) == 0 && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func (c *Component) inputError(st *state, i int, reason string, err error) {
	c.metrics.gatherErrors.WithLabelValues(st.inputIDs[i], reason).Inc()
	c.errLog.Error("gathering input", "input", i, "reason", reason, "err", err)
}

// checkFamily reports a family the encoder could not write: one without a
// name, or with a metric that lacks the value its type calls for.
func checkFamily(mf *dto.MetricFamily) error {
	if mf.GetName() == "" {
		return errors.New("metric family without a name: skipped")
	}
	t := mf.GetType()
	for _, m := range mf.Metric {
		var ok bool
		if m != nil {
			switch t {
			case dto.MetricType_COUNTER:
				ok = m.Counter != nil
			case dto.MetricType_GAUGE:
				ok = m.Gauge != nil
			case dto.MetricType_SUMMARY:
				ok = m.Summary != nil
			case dto.MetricType_UNTYPED:
				ok = m.Untyped != nil
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				ok = m.Histogram != nil
			}
		}
		if !ok {
			return fmt.Errorf("family %q of type %s has a metric without a %s value: skipped", mf.GetName(), t, t)
		}
	}
	return nil
}

// rewrite adds const labels and strips timestamps, copying every metric.
func rewrite(fams []*dto.MetricFamily, st *state, d *xxhash.Digest) []*dto.MetricFamily {
	out := make([]*dto.MetricFamily, len(fams))
	for i, mf := range fams {
		ms := make([]*dto.Metric, len(mf.Metric))
		clash := false
		for j, m := range mf.Metric {
			lbls := m.Label
			if len(st.consts) > 0 {
				var had bool
				lbls, had = withConst(m.Label, st.consts)
				clash = clash || had
			}
			nm := &dto.Metric{
				Label: lbls, TimestampMs: m.TimestampMs,
				Gauge: m.Gauge, Counter: m.Counter, Summary: m.Summary, Untyped: m.Untyped, Histogram: m.Histogram,
			}
			if !st.honorTS {
				nm.TimestampMs = nil
			}
			ms[j] = nm
		}
		if clash {
			// A series that keeps its own value of a const label can now
			// equal one that received the const value: keep the first.
			ms, _ = labelset.Dedupe(d, ms)
		}
		out[i] = &dto.MetricFamily{Name: mf.Name, Help: mf.Help, Type: mf.Type, Unit: mf.Unit, Metric: ms}
	}
	return out
}

// withConst returns pairs plus the const labels it lacks (an empty value
// counts as lacking, as in Prometheus), sorted by name, and whether pairs
// already had a non-empty value for one of the const label names.
func withConst(pairs, consts []*dto.LabelPair) ([]*dto.LabelPair, bool) {
	out := make([]*dto.LabelPair, 0, len(pairs)+len(consts))
	had := false
	i, j := 0, 0
	sorted := true
	for k := 1; k < len(pairs); k++ {
		if pairs[k-1].GetName() > pairs[k].GetName() {
			sorted = false
			break
		}
	}
	if !sorted {
		pairs = append([]*dto.LabelPair(nil), pairs...)
		sort.Slice(pairs, func(a, b int) bool { return pairs[a].GetName() < pairs[b].GetName() })
	}
	for i < len(pairs) || j < len(consts) {
		switch {
		case j == len(consts):
			out = append(out, pairs[i])
			i++
		case i == len(pairs):
			out = append(out, consts[j])
			j++
		case pairs[i].GetName() < consts[j].GetName():
			out = append(out, pairs[i])
			i++
		case pairs[i].GetName() > consts[j].GetName():
			out = append(out, consts[j])
			j++
		default: // same name: the series' own (non-empty) value wins
			if pairs[i].GetValue() == "" {
				out = append(out, consts[j])
			} else {
				out = append(out, pairs[i])
				had = true
			}
			i++
			j++
		}
	}
	return out, had
}
