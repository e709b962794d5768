package pipeline

// Fixtures: the part of the component contract that `sluice test` uses.
//
// A pipeline unit test builds the whole graph of a config exactly as
// `sluice validate` does (decode, validate, provision, Build, in
// topological order), with Options.Fixtures set, and never calls Run or
// Update: nothing binds a socket, mounts a path, starts a goroutine or
// writes state. The test then drives components through the optional
// interfaces below, implemented by the built component (what Build
// returned), and reads expositions. A component that lacks the interface a
// test needs is reported by name (FixtureCapabilityError), never skipped.

import (
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/zclconf/go-cty/cty"
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

// advance moves the clock by d and returns the new time.
func (f *Fixtures) advance(d time.Duration) time.Time {
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

// FixtureGraph is a config built for a test.
type FixtureGraph struct {
	fixtures *Fixtures
	order    []string // topological
	comps    map[string]fixtureComp
}

type fixtureComp struct {
	typ     string
	comp    any
	exports any
}

// FixtureGraphOptions configure LoadFixtureGraph.
type FixtureGraphOptions struct {
	// LookupEnv replaces os.LookupEnv for env() (a test sets its own
	// environment; nil is the process's).
	LookupEnv LookupEnvFunc
	// Start is where the fake clock starts (the zero time is now).
	Start time.Time
	// Logger receives the components' logs (nil discards them).
	Logger *slog.Logger
}

// LoadFixtureGraph loads src as `sluice validate` does and keeps what was
// built, with Options.Fixtures set. agent.metrics is an empty gatherer: the
// agent's own series depend on the machine, not on the config.
func LoadFixtureGraph(filename string, src []byte, o FixtureGraphOptions) (*FixtureGraph, error) {
	if o.Start.IsZero() {
		o.Start = time.Now()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	g := &FixtureGraph{fixtures: NewFixtures(o.Start), comps: map[string]fixtureComp{}}
	c := NewController(ControllerOptions{LookupEnv: o.LookupEnv, Logger: o.Logger, Fixtures: g.fixtures})
	c.configDir = absDir(filename)
	c.agentExports = cty.ObjectVal(map[string]cty.Value{"metrics": GathererVal(&componentGatherer{Gatherer: prometheus.NewRegistry(), id: agentRoot})})
	l := c.newLoader(newFileCache(nil), false)
	l.inst = func(ln *loadedNode) (cty.Value, error) {
		n, err := c.buildNode(ln)
		if err != nil {
			return cty.NilVal, err
		}
		n.mu.Lock()
		g.comps[ln.id] = fixtureComp{typ: ln.ct.Name, comp: n.inst.Component(), exports: n.exports}
		n.mu.Unlock()
		g.order = append(g.order, ln.id)
		return n.exportsValue(), nil
	}
	if _, _, err := l.load(filename, src); err != nil {
		return nil, err
	}
	return g, nil
}

// IDs are the graph's components, producers before consumers.
func (g *FixtureGraph) IDs() []string { return append([]string(nil), g.order...) }

// Now is the fake clock's time.
func (g *FixtureGraph) Now() time.Time { return g.fixtures.Now() }

func (g *FixtureGraph) lookup(id string) (fixtureComp, error) {
	c, ok := g.comps[id]
	if !ok {
		return c, fmt.Errorf("no component %s in the config (it has %v)", id, g.order)
	}
	return c, nil
}

// TakeLines hands lines to component id (a LineTaker).
func (g *FixtureGraph) TakeLines(id string, lines []string) error {
	c, err := g.lookup(id)
	if err != nil {
		return err
	}
	lt, ok := c.comp.(LineTaker)
	if !ok {
		return &FixtureCapabilityError{ID: id, Capability: "take lines (it does not implement pipeline.LineTaker)"}
	}
	if err := lt.TakeLines(lines); err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	return nil
}

// TakeRows hands a query result to component id (a RowsTaker).
func (g *FixtureGraph) TakeRows(id string, r FixtureRows) error {
	c, err := g.lookup(id)
	if err != nil {
		return err
	}
	rt, ok := c.comp.(RowsTaker)
	if !ok {
		return &FixtureCapabilityError{ID: id, Capability: "take query results (it does not implement pipeline.RowsTaker)"}
	}
	if err := rt.TakeRows(r); err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	return nil
}

// TakeCommandOutput hands a command's output to component id.
func (g *FixtureGraph) TakeCommandOutput(id, stdout string, exitCode int) error {
	c, err := g.lookup(id)
	if err != nil {
		return err
	}
	t, ok := c.comp.(CommandOutputTaker)
	if !ok {
		return &FixtureCapabilityError{ID: id, Capability: "take command output (it does not implement pipeline.CommandOutputTaker)"}
	}
	if err := t.TakeCommandOutput(stdout, exitCode); err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	return nil
}

// TakeResponse hands an HTTP response to component id.
func (g *FixtureGraph) TakeResponse(id string, status int, body string) error {
	c, err := g.lookup(id)
	if err != nil {
		return err
	}
	t, ok := c.comp.(ResponseTaker)
	if !ok {
		return &FixtureCapabilityError{ID: id, Capability: "take HTTP responses (it does not implement pipeline.ResponseTaker)"}
	}
	if err := t.TakeResponse(status, body); err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	return nil
}

// Handler is the HTTP handler of component id (a RequestTaker).
func (g *FixtureGraph) Handler(id string) (http.Handler, error) {
	c, err := g.lookup(id)
	if err != nil {
		return nil, err
	}
	rt, ok := c.comp.(RequestTaker)
	if !ok {
		return nil, &FixtureCapabilityError{ID: id, Capability: "take HTTP requests (it does not implement pipeline.RequestTaker)"}
	}
	return rt.FixtureHandler(), nil
}

// Advance moves the fake clock by d and lets every component catch up,
// producers first. Every component must follow the clock: one that does
// not would make a step about time pass or fail by accident.
func (g *FixtureGraph) Advance(d time.Duration) error {
	for _, id := range g.order {
		if _, ok := g.comps[id].comp.(ClockFollower); !ok {
			return &FixtureCapabilityError{ID: id, Capability: "follow the fake clock (it does not implement pipeline.ClockFollower)"}
		}
	}
	now := g.fixtures.advance(d)
	for _, id := range g.order {
		if err := g.comps[id].comp.(ClockFollower).AdvanceTo(now); err != nil {
			return fmt.Errorf("%s: advancing the clock: %w", id, err)
		}
	}
	return nil
}

// Metrics is the gatherer whose exposition a test checks at component id:
// its ExpositionSource, else the prometheus.Gatherer it exports.
func (g *FixtureGraph) Metrics(id string) (prometheus.Gatherer, error) {
	c, err := g.lookup(id)
	if err != nil {
		return nil, err
	}
	if es, ok := c.comp.(ExpositionSource); ok {
		return es.FixtureMetrics(), nil
	}
	if c.exports != nil {
		v := reflect.ValueOf(c.exports)
		for v.Kind() == reflect.Pointer && !v.IsNil() {
			v = v.Elem()
		}
		if v.Kind() == reflect.Struct {
			for i := range v.NumField() {
				if !v.Field(i).CanInterface() {
					continue
				}
				if gg, ok := v.Field(i).Interface().(prometheus.Gatherer); ok && gg != nil {
					return gg, nil
				}
			}
		}
	}
	return nil, &FixtureCapabilityError{ID: id, Capability: "show an exposition (it exports no metrics and does not implement pipeline.ExpositionSource)"}
}
