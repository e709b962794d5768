package sink

import (
	"errors"

	dto "github.com/prometheus/client_model/go"
)

// flight is one gather of the inputs that concurrent scrapes share.
//
// Without sharing, every concurrent scrape gathered and merged its own copy
// of every series: 100 parallel scrapes of 87k series held 100 copies at
// once (2.5 GB). Sharing keeps one copy per gather; each scrape then only
// encodes it, streaming, in its own negotiated format and encoding.
type flight struct {
	st      *state        // the state the gather used: scrapes after an Update do not join
	done    chan struct{} // closed when fams and err are set
	waiting int           // scrapes joined, not counting the one gathering; guarded by Component.flightMu
	fams    []*dto.MetricFamily
	err     error
}

// errGatherPanicked is what scrapes that joined a gather get when an input
// panicked in it; the scrape that ran the gather panics as it would have
// without sharing (net/http recovers it).
var errGatherPanicked = errors.New("metrics_sink: an input panicked while gathering")

// sharedGather returns the merged families for one scrape. A scrape that
// arrives while a gather of the same state is in flight waits for it and
// gets its result; otherwise it gathers. So a scrape's data was gathered
// no earlier than the start of the gather in flight when it arrived (at
// most one gather old), never from a gather that had already finished: a
// finished flight is removed before its result is published.
//
// The families are shared between the scrapes of a flight and must only be
// read: promhttp only encodes them (the name[] filter skips, it does not
// modify), and gather never modifies what its inputs returned.
func (c *Component) sharedGather() ([]*dto.MetricFamily, error) {
	st := c.state.Load()
	c.flightMu.Lock()
	if f := c.flight; f != nil && f.st == st {
		f.waiting++
		c.flightMu.Unlock()
		<-f.done
		return f.fams, f.err
	}
	f := &flight{st: st, done: make(chan struct{})}
	c.flight = f
	c.flightMu.Unlock()

	finished := false
	defer func() {
		c.flightMu.Lock()
		if c.flight == f {
			c.flight = nil
		}
		c.flightMu.Unlock()
		if !finished {
			// Let the joined scrapes fail instead of hanging or serving
			// an empty page; the panic itself goes on up this scrape.
			f.fams, f.err = nil, errGatherPanicked
		}
		close(f.done)
	}()
	c.metrics.gathers.Inc()
	f.fams, f.err = c.gather(st)
	finished = true
	return f.fams, f.err
}

// joined is the number of scrapes waiting for the gather in flight (not
// counting the one gathering): for tests.
func (c *Component) joined() int {
	c.flightMu.Lock()
	defer c.flightMu.Unlock()
	if c.flight == nil {
		return 0
	}
	return c.flight.waiting
}
