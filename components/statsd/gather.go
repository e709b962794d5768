package statsd

import (
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"

	"github.com/sluicehq/sluice/encoded"
)

// seriesGatherer gathers the series of every shard straight from the
// shards' stores: each writes its series into a few slabs of dto values,
// under its lock (readers wait for it, as they wait for a sweep). The
// stores guarantee what client_golang's registry would check (one type
// per name, one series per label set, no histogram/summary suffix
// collisions), so nothing is checked or copied again. The families are
// new on every call and never modified after: concurrent scrapes may
// share them.
//
// It is also an encoded.Gatherer: metrics_sink serves a text-format
// scrape from GatherText, which encodes the stores' series straight into
// text (one page per shard), without dto values.
type seriesGatherer struct{ shards []*shard }

var _ encoded.Gatherer = seriesGatherer{}

func (g seriesGatherer) Gather() ([]*dto.MetricFamily, error) {
	var out []*dto.MetricFamily
	for _, s := range g.shards {
		out = s.gather(out)
	}
	slices.SortFunc(out, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out, nil
}

// GatherText returns the same families as Gather, encoded, sorted by
// name. Every call encodes anew (the series change between scrapes).
func (g seriesGatherer) GatherText() ([]encoded.Family, error) {
	var out []encoded.Family
	for _, s := range g.shards {
		var err error
		if out, err = s.gatherText(out); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(out, func(a, b encoded.Family) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// gather appends the shard's families to out.
func (s *shard) gather(out []*dto.MetricFamily) []*dto.MetricFamily {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.Gather(out)
}

// gatherText appends the shard's families, encoded, to out.
func (s *shard) gatherText(out []encoded.Family) ([]encoded.Family, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.AppendText(out)
}
