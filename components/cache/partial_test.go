package cache

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/internal/gathermerge/gathermergetest"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// TestPartialGatherKeepsRefreshing: an input whose Gather returns good
// families together with an error (one collector yields a label value
// that is not UTF-8) keeps refreshing the good families, and counts the
// dropped ones. Before, every such refresh failed as a whole: the cache
// served the old values, then, after max_staleness, none of the input's
// valid series.
func TestPartialGatherKeepsRefreshing(t *testing.T) {
	in := newInput()
	orders := in.gaugeVec("orders", "status")
	orders.WithLabelValues("paid").Set(1)
	h, c := harness(t, `
  input            = test.in
  refresh_interval = "100ms"
  jitter           = "0%"
  max_staleness    = "1s"
`, prometheus.Gatherers{in, gathermergetest.PartialRegistry()}, nil)
	h.Start()
	g := h.Gatherer()
	pipelinetest.Eventually(t, wait, func() bool {
		s := served(t, g)
		return s["orders,status=paid"] == 1 && s[gathermergetest.GoodFamily] == 1
	}, "the good families served: %v", served(t, g))
	orders.WithLabelValues("paid").Set(2)
	pipelinetest.Eventually(t, wait, func() bool { return served(t, g)["orders,status=paid"] == 2 }, "a new value refreshed")
	if n := metric(t, h.Registry, "sluice_cache_dropped_families_total"); n < 2 {
		t.Errorf("dropped families counted %v times, want one per refresh", n)
	}
	if n := metric(t, h.Registry, "sluice_cache_refresh_failures_total", "reason", "error"); n != 0 {
		t.Errorf("partial refreshes counted as failures: %v", n)
	}
	if hl := c.Health(); hl.State != pipeline.HealthHealthy {
		t.Errorf("health %+v", hl)
	}
}
