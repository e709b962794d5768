package statsd

import (
	"cmp"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/statsd_exporter/pkg/metrics"
	"google.golang.org/protobuf/proto"
)

// family is what a scrape needs of a metric name besides its series: its
// name, help and type, made once, when its first series is created, so
// that a scrape shares them instead of allocating them per family.
type family struct {
	name, help *string
	typ        *dto.MetricType
}

func newFamily(it *item) *family {
	t := dto.MetricType_COUNTER
	switch it.kind {
	case kindGauge:
		t = dto.MetricType_GAUGE
	case kindHistogram:
		t = dto.MetricType_HISTOGRAM
	case kindSummary:
		t = dto.MetricType_SUMMARY
	}
	return &family{name: proto.String(it.name), help: proto.String(it.help), typ: t.Enum()}
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
		fam := s.families[name]
		if fam == nil { // not created through one(): cannot happen, but stay correct
			fam = &family{name: proto.String(name), help: proto.String(defaultHelp), typ: dtoType(m.MetricType).Enum()}
			s.families[name] = fam
		}
		mf := &fslab[f]
		f++
		mf.Name, mf.Help, mf.Type, mf.Metric = fam.name, fam.help, fam.typ, ms
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
