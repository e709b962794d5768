package statsd

import (
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// seriesGatherer gathers the series of every shard straight from the
// shards' stores: each writes its series into a few slabs of dto values,
// under its lock (readers wait for it, as they wait for a sweep). The
// stores guarantee what client_golang's registry would check (one type
// per name, one series per label set, no histogram/summary suffix
// collisions), so nothing is checked or copied again. The families are
// new on every call and never modified after: concurrent scrapes may
// share them.
type seriesGatherer struct{ shards []*shard }

func (g seriesGatherer) Gather() ([]*dto.MetricFamily, error) {
	var out []*dto.MetricFamily
	for _, s := range g.shards {
		out = s.gather(out)
	}
	slices.SortFunc(out, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out, nil
}

// gather appends the shard's families to out.
func (s *shard) gather(out []*dto.MetricFamily) []*dto.MetricFamily {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.Gather(out)
}
