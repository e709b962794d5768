package relabel

import (
	"time"

	"github.com/sluicehq/sluice/pipeline"
)

var _ pipeline.ClockFollower = (*Component)(nil)

// AdvanceTo does nothing under `sluice test` (pipeline/fixture.go): rules
// apply at gather time, and nothing in them depends on the clock.
func (c *Component) AdvanceTo(time.Time) error { return nil }
