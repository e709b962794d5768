package sink

import (
	"errors"
	"sort"
	"strconv"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/encoded"
	"github.com/sluicehq/sluice/internal/gathermerge"
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
	// text are the inputs as encoded.Gatherers when every one of them is
	// one, else nil (see serveEncoded).
	text []encoded.Gatherer
}

func newState(a Arguments, m *selfMetrics) *state {
	st := &state{inputs: append([]prometheus.Gatherer(nil), a.Inputs...), honorTS: a.HonorTimestamps, openMetrics: a.OpenMetrics,
		maxScrapes: a.MaxConcurrentScrapes}
	st.text = textInputs(st.inputs)
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
		m.gatherErrors.WithLabelValues(id, "partial")
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
	out, errs := gathermerge.Merge(st.inputs, func(i int, reason string, err error) { c.inputError(st, i, reason, err) })
	if len(st.consts) > 0 || !st.honorTS {
		out = rewrite(out, st, xxhash.New())
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

// rewrite adds const labels and strips timestamps, copying the metrics of
// a family that needs either. Without const labels, a family none of whose
// series has a timestamp is kept as it is (no copy): with
// honor_timestamps = false, statsd_receiver's and most inputs' series
// carry none, and copying each series on every scrape cost a dto.Metric
// per series.
func rewrite(fams []*dto.MetricFamily, st *state, d *xxhash.Digest) []*dto.MetricFamily {
	out := make([]*dto.MetricFamily, len(fams))
	for i, mf := range fams {
		if len(st.consts) == 0 && !hasTimestamp(mf) {
			out[i] = mf
			continue
		}
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

// hasTimestamp reports whether a series of mf has a timestamp.
func hasTimestamp(mf *dto.MetricFamily) bool {
	for _, m := range mf.Metric {
		if m.TimestampMs != nil {
			return true
		}
	}
	return false
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
