package webhook

import (
	"net/http"
	"strings"
	"time"

	"github.com/sluicehq/sluice/pipeline"
)

// The receiver under `sluice test` (pipeline/fixture.go): requests come
// from the test instead of a listener, and nothing is persisted (the
// kernel gives a component under test no data path, so the store is not
// durable and Run, which restores and commits, never runs).
//
// The receiver stamps changes with the wall clock (nowFunc), not the
// test's: the test's clock starts at the wall clock's time, so a TTL
// counted on the fake clock is off by how long the test has run so far
// (milliseconds), not by what the test's steps add.

var (
	_ pipeline.RequestTaker  = (*Component)(nil)
	_ pipeline.ClockFollower = (*Component)(nil)
)

// FixtureHandler serves what the receiver's listener or mount serves, with
// request paths as they arrive there: "/api/..." with listen, the
// prefixed path when mounted on the agent's server.
func (c *Component) FixtureHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		args := c.cfg.Load().args
		path := r.URL.Path
		if args.Listen == "" {
			prefix := args.prefix(c.opts.ID)
			rest, ok := strings.CutPrefix(path, prefix)
			if !ok {
				http.NotFound(w, r)
				return
			}
			path = rest
		}
		c.serve(w, r, path)
	})
}

// AdvanceTo expires the series whose TTL has passed by now, as Run's sweep
// would.
func (c *Component) AdvanceTo(now time.Time) error {
	if n := c.store.expire(now); n > 0 {
		c.m.expired.Add(float64(n))
	}
	return nil
}
