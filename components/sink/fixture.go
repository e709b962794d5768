package sink

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pipeline"
)

// The sink under `sluice test` (pipeline/fixture.go): a test reads what a
// scrape would get, merged and rewritten, without a listener or a mount.

var (
	_ pipeline.ExpositionSource = (*Component)(nil)
	_ pipeline.ClockFollower    = (*Component)(nil)
)

// FixtureMetrics gathers what the sink serves.
func (c *Component) FixtureMetrics() prometheus.Gatherer { return gathererFunc(c.sharedGather) }

// AdvanceTo does nothing: what the sink serves does not depend on time
// (its inputs' expiry is theirs).
func (c *Component) AdvanceTo(time.Time) error { return nil }
