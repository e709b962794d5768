package cache

import (
	"context"
	"errors"
	"time"

	"github.com/sluicehq/sluice/pipeline"
)

// The cache under `sluice test` (pipeline/fixture.go). Run never runs: the
// first refresh counts as done when the test starts (before its first
// step's inputs, as an agent's cache refreshes when it starts, before
// anything has arrived), and AdvanceTo refreshes when the fake clock has
// passed a refresh_interval since the last one. Jitter is not applied: a
// test must not depend on a random draw.

var _ pipeline.ClockFollower = (*Component)(nil)

// AdvanceTo runs the refresh due by now, if any, dated at the last
// refresh time that has passed. The refreshes skipped in between would
// have gathered the same input (a test changes inputs only at steps, and
// this runs at every step that moves the clock), so one refresh at the
// last of them leaves the same snapshot: the same series, last seen at
// the same time, the same expired by max_staleness.
func (c *Component) AdvanceTo(now time.Time) error {
	if c.opts.Fixtures == nil {
		return errors.New("cache: AdvanceTo is only for sluice test (Options.Fixtures is nil)")
	}
	cfg := c.cfg.Load()
	last := c.fixtureRefreshed
	if last.IsZero() {
		last = time.Unix(0, c.started.Load())
	}
	k := now.Sub(last) / cfg.interval
	if k < 1 {
		return nil
	}
	at := last.Add(k * cfg.interval)
	c.now = func() time.Time { return at }
	defer func() { c.now = c.opts.Fixtures.Now }()
	c.startRestore() // closes restored: persist has no directory under test
	c.refresh(context.Background())
	c.fixtureRefreshed = at
	return nil
}
