package statsd

import (
	"cmp"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/statsd_exporter/pkg/metrics"
)

// familyMeta is what a scrape needs of the metric names of a shard
// besides their series, kept so that a scrape does not allocate it per
// family: the help of each name whose help is not the default (most names
// of a large set are unmapped, and cost nothing here), each help text
// once, and the family types. Guarded by the shard's mu.
type familyMeta struct {
	helpOf  map[string]*string // metric name -> help, for non-default help only
	helps   map[string]*string // help text -> the one pointer to it
	defHelp string
	types   [dto.MetricType_GAUGE_HISTOGRAM + 1]dto.MetricType // types[t] == t
}

func newFamilyMeta() familyMeta {
	fm := familyMeta{helpOf: map[string]*string{}, helps: map[string]*string{}, defHelp: defaultHelp}
	for i := range fm.types {
		fm.types[i] = dto.MetricType(i)
	}
	return fm
}

// created records the help of a name whose first series was just created.
func (fm *familyMeta) created(name, help string) {
	if help == defaultHelp {
		return
	}
	if _, ok := fm.helpOf[name]; ok {
		return // the first help stays, as in the registered vector
	}
	p, ok := fm.helps[help]
	if !ok {
		p = &help
		fm.helps[help] = p
	}
	fm.helpOf[name] = p
}

func (fm *familyMeta) help(name string) *string {
	if p := fm.helpOf[name]; p != nil {
		return p
	}
	return &fm.defHelp
}

// seriesGatherer gathers the series of every shard straight from the
// shards' registries, instead of through the prometheus.Registry the
// vectors are registered with: that registry collects every series over a
// channel, allocates a dto.Metric for each and hashes it to check its
// consistency and uniqueness (a third of a scrape's allocations), which
// the shards already guarantee (one type per name, one series per label
// set, no histogram/summary suffix collisions: see suffixConflict). Here
// each shard writes its series into one slab of dto.Metric, under its lock
// (which keeps its maps still; readers wait for it, as they wait for a
// sweep). The families are new on every call and never modified after:
// concurrent scrapes may share them.
type seriesGatherer struct{ r *Receiver }

func (g seriesGatherer) Gather() ([]*dto.MetricFamily, error) {
	var out []*dto.MetricFamily
	for _, s := range g.r.shards {
		out = s.gather(out)
	}
	slices.SortFunc(out, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out, nil
}

// gather appends the shard's families to out.
func (s *shard) gather(out []*dto.MetricFamily) []*dto.MetricFamily {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, fams := 0, 0
	for _, m := range s.reg.Metrics {
		if len(m.Metrics) > 0 {
			n += len(m.Metrics)
			fams++
		}
	}
	if n == 0 {
		return out
	}
	slab := make([]dto.Metric, n)
	ptrs := make([]*dto.Metric, n)
	fslab := make([]dto.MetricFamily, fams)
	names := make([]string, fams)
	i, f := 0, 0
	for name, m := range s.reg.Metrics {
		if len(m.Metrics) == 0 {
			continue
		}
		start := i
		for _, rm := range m.Metrics {
			pm, ok := rm.Metric.(prometheus.Metric)
			if !ok || pm.Write(&slab[i]) != nil {
				slab[i] = dto.Metric{}
				continue
			}
			ptrs[i] = &slab[i]
			i++
		}
		if i == start {
			continue
		}
		ms := ptrs[start:i:i]
		slices.SortFunc(ms, compareLabels)
		mf := &fslab[f]
		names[f] = name
		mf.Name, mf.Help, mf.Type, mf.Metric = &names[f], s.meta.help(name), &s.meta.types[dtoType(m.MetricType)], ms
		f++
		out = append(out, mf)
	}
	return out
}

func dtoType(t metrics.MetricType) dto.MetricType {
	switch t {
	case metrics.GaugeMetricType:
		return dto.MetricType_GAUGE
	case metrics.HistogramMetricType:
		return dto.MetricType_HISTOGRAM
	case metrics.SummaryMetricType:
		return dto.MetricType_SUMMARY
	}
	return dto.MetricType_COUNTER
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
	return 0
}
