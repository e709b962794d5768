package statsd

import (
	"errors"
	"time"

	"github.com/sluicehq/sluice/pipeline"
)

// The receiver under `sluice test` (pipeline/fixture.go): lines come from
// the test instead of a socket, and the shards read the test's fake clock,
// so TTLs expire when the test moves the clock, not when the wall clock
// does.

var (
	_ pipeline.LineTaker     = (*Receiver)(nil)
	_ pipeline.ClockFollower = (*Receiver)(nil)
)

var errNotUnderTest = errors.New("statsd_receiver: fixtures are only taken under sluice test (Options.Fixtures is nil)")

// TakeLines handles lines as one reader would handle them from a socket,
// one line per packet line, and applies them before returning.
func (r *Receiver) TakeLines(lines []string) error {
	if r.opts.Fixtures == nil {
		return errNotUnderTest
	}
	r.useFixtureClock()
	p := r.newProcessor()
	for _, l := range lines {
		p.line([]byte(l))
	}
	p.flush()
	return nil
}

// AdvanceTo runs the TTL sweep every shard's goroutine would have run by
// now on the fake clock.
func (r *Receiver) AdvanceTo(time.Time) error {
	if r.opts.Fixtures == nil {
		return errNotUnderTest
	}
	r.useFixtureClock()
	for _, s := range r.shards {
		s.lockedSweep()
	}
	return nil
}

// useFixtureClock points the shards' clocks at the test's. Under test
// nothing else runs in the receiver (no Run, no readers), so the shards'
// clocks are not read concurrently; the lock is taken anyway.
func (r *Receiver) useFixtureClock() {
	for _, s := range r.shards {
		s.mu.Lock()
		s.clock = r.opts.Fixtures.Now
		s.mu.Unlock()
	}
}
