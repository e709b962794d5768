package runtime

// The graph `sluice test` drives: a config built as `sluice validate`
// builds it, with Options.Fixtures set, and never run. The fixture
// interfaces components implement are the contract's (pipeline/fixture.go).

import (
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/zclconf/go-cty/cty"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/pipeline"
)

// FixtureGraph is a config built for a test.
type FixtureGraph struct {
	fixtures *pipeline.Fixtures
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
	g := &FixtureGraph{fixtures: pipeline.NewFixtures(o.Start), comps: map[string]fixtureComp{}}
	c := NewController(ControllerOptions{LookupEnv: o.LookupEnv, Logger: o.Logger, Fixtures: g.fixtures})
	s := newSource(filename, src, nil)
	c.configDir = s.dir
	c.agentExports = cty.ObjectVal(map[string]cty.Value{"metrics": schema.GathererVal(schema.Exported(prometheus.NewRegistry(), agentRoot))})
	l := c.newLoader(s.files, false)
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
	if _, _, err := l.load(s); err != nil {
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

// TakeLines hands lines to component id (a pipeline.LineTaker).
func (g *FixtureGraph) TakeLines(id string, lines []string) error {
	c, err := g.lookup(id)
	if err != nil {
		return err
	}
	lt, ok := c.comp.(pipeline.LineTaker)
	if !ok {
		return &pipeline.FixtureCapabilityError{ID: id, Capability: "take lines (it does not implement pipeline.LineTaker)"}
	}
	if err := lt.TakeLines(lines); err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	return nil
}

// TakeRows hands a query result to component id (a pipeline.RowsTaker).
func (g *FixtureGraph) TakeRows(id string, r pipeline.FixtureRows) error {
	c, err := g.lookup(id)
	if err != nil {
		return err
	}
	rt, ok := c.comp.(pipeline.RowsTaker)
	if !ok {
		return &pipeline.FixtureCapabilityError{ID: id, Capability: "take query results (it does not implement pipeline.RowsTaker)"}
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
	t, ok := c.comp.(pipeline.CommandOutputTaker)
	if !ok {
		return &pipeline.FixtureCapabilityError{ID: id, Capability: "take command output (it does not implement pipeline.CommandOutputTaker)"}
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
	t, ok := c.comp.(pipeline.ResponseTaker)
	if !ok {
		return &pipeline.FixtureCapabilityError{ID: id, Capability: "take HTTP responses (it does not implement pipeline.ResponseTaker)"}
	}
	if err := t.TakeResponse(status, body); err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	return nil
}

// Handler is the HTTP handler of component id (a pipeline.RequestTaker).
func (g *FixtureGraph) Handler(id string) (http.Handler, error) {
	c, err := g.lookup(id)
	if err != nil {
		return nil, err
	}
	rt, ok := c.comp.(pipeline.RequestTaker)
	if !ok {
		return nil, &pipeline.FixtureCapabilityError{ID: id, Capability: "take HTTP requests (it does not implement pipeline.RequestTaker)"}
	}
	return rt.FixtureHandler(), nil
}

// Advance moves the fake clock by d and lets every component catch up,
// producers first. Every component must follow the clock: one that does
// not would make a step about time pass or fail by accident.
func (g *FixtureGraph) Advance(d time.Duration) error {
	for _, id := range g.order {
		if _, ok := g.comps[id].comp.(pipeline.ClockFollower); !ok {
			return &pipeline.FixtureCapabilityError{ID: id, Capability: "follow the fake clock (it does not implement pipeline.ClockFollower)"}
		}
	}
	now := g.fixtures.Advance(d)
	for _, id := range g.order {
		if err := g.comps[id].comp.(pipeline.ClockFollower).AdvanceTo(now); err != nil {
			return fmt.Errorf("%s: advancing the clock: %w", id, err)
		}
	}
	return nil
}

// Metrics is the gatherer whose exposition a test checks at component id:
// its pipeline.ExpositionSource, else the prometheus.Gatherer it exports.
func (g *FixtureGraph) Metrics(id string) (prometheus.Gatherer, error) {
	c, err := g.lookup(id)
	if err != nil {
		return nil, err
	}
	if es, ok := c.comp.(pipeline.ExpositionSource); ok {
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
	return nil, &pipeline.FixtureCapabilityError{ID: id, Capability: "show an exposition (it exports no metrics and does not implement pipeline.ExpositionSource)"}
}
