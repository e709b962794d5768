package pipeline

// Fixtures: the part of the component contract that `sluice test` uses.
//
// A pipeline unit test (the runtime's LoadFixtureGraph) builds the whole
// graph of a config exactly as `sluice validate` does (decode, validate,
// provision, Build, in topological order), with Options.Fixtures set, and
// never calls Run or Update: nothing binds a socket, mounts a path, starts a goroutine or
// writes state. The test then drives components through the optional
// interfaces below, implemented by the built component (what Build
// returned), and reads expositions. A component that lacks the interface a
// test needs is reported by name (FixtureCapabilityError), never skipped.

import (
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Fixtures is Options.Fixtures: the test's fake clock.
type Fixtures struct {
	mu  sync.Mutex
	now time.Time
}

// NewFixtures returns fixtures whose clock starts at start.
func NewFixtures(start time.Time) *Fixtures { return &Fixtures{now: start} }

// Now is the fake clock's time: components under test read it instead of
// time.Now.
func (f *Fixtures) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Advance moves the clock by d and returns the new time. Only the test
// runner moves the clock; components read it with Now.
func (f *Fixtures) Advance(d time.Duration) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	return f.now
}

// LineTaker is implemented by components whose input is text lines (a
// statsd_receiver): TakeLines handles them as if they had arrived on a
// socket, synchronously.
type LineTaker interface {
	TakeLines(lines []string) error
}

// RowsTaker is implemented by components that read query results (a
// postgres_source): TakeRows handles a result as if the database had
// returned it for the named query, and stores it before returning.
type RowsTaker interface {
	TakeRows(r FixtureRows) error
}

// FixtureRows is one query result. A nil value is SQL NULL; the others are
// what PostgreSQL's text format would carry ("42", "1.5", "abc").
type FixtureRows struct {
	Query    string
	Database string // "" unless the query lists databases
	Columns  []string
	Rows     [][]*string
}

// CommandOutputTaker is implemented by components that run a command (an
// exec_source): TakeCommandOutput handles what a run printed on standard
// output and its exit code as if the command had run.
type CommandOutputTaker interface {
	TakeCommandOutput(stdout string, exitCode int) error
}

// ResponseTaker is implemented by components that poll an HTTP API (an
// http_json_source): TakeResponse handles a response as if the API had
// answered the next poll with it.
type ResponseTaker interface {
	TakeResponse(status int, body string) error
}

// RequestTaker is implemented by components that serve HTTP requests (a
// webhook_receiver): a test's requests go to the handler that the
// component's listener or mount would serve, with the request path as it
// arrives there.
type RequestTaker interface {
	FixtureHandler() http.Handler
}

// ClockFollower is implemented by components under test whose behaviour
// depends on time (TTLs, staleness, refreshes): AdvanceTo does what the
// component's background work would have done by now on the fake clock
// (for example, a TTL sweep). A component whose output does not depend on
// time implements it as a no-op; one that does not implement it fails a
// test step that moves the clock.
type ClockFollower interface {
	AdvanceTo(now time.Time) error
}

// ExpositionSource is implemented by components whose served exposition
// differs from what they export (a metrics_sink serves its inputs,
// rewritten): the gatherer a test's expectations read. Without it, a
// test reads the prometheus.Gatherer the component exports.
type ExpositionSource interface {
	FixtureMetrics() prometheus.Gatherer
}

// FixtureCapabilityError says that a component cannot do what a test asks.
type FixtureCapabilityError struct {
	ID         string
	Capability string // e.g. "take statsd lines (pipeline.LineTaker)"
}

func (e *FixtureCapabilityError) Error() string {
	return fmt.Sprintf("%s cannot %s under sluice test", e.ID, e.Capability)
}
