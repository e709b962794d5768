package runtime_test

import (
	"errors"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runtime"
)

// LoadFixtureGraph builds every component and runs none (no Run, no
// Update); agent.metrics is empty; a component without a capability is
// named in a FixtureCapabilityError, and a refused clock step does not
// move the clock.
func TestLoadFixtureGraph(t *testing.T) {
	j := newJournal("fixture-graph")
	src := []byte(`
test_source "a" {
  journal = "fixture-graph"
  value   = 7
}
test_sink "s" {
  journal = "fixture-graph"
  inputs  = [test_source.a.metrics, agent.metrics]
}
`)
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	g, err := runtime.LoadFixtureGraph("fixture.hcl", src, runtime.FixtureGraphOptions{Start: start})
	if err != nil {
		t.Fatal(err)
	}
	if ids := g.IDs(); len(ids) != 2 || ids[0] != "test_source.a" || ids[1] != "test_sink.s" {
		t.Fatalf("IDs %v, want producers first", ids)
	}
	gath, err := g.Metrics("test_sink.s")
	if err != nil {
		t.Fatal(err)
	}
	fams, err := gath.Gather()
	if err != nil || len(fams) != 1 || fams[0].GetName() != "test_value" || fams[0].GetMetric()[0].GetGauge().GetValue() != 7 {
		t.Fatalf("the sink gathers %v (%v), want test_value 7 and nothing from agent.metrics", fams, err)
	}
	if ev := j.take(); len(ev) != 2 || ev[0] != "build test_source.a" || ev[1] != "build test_sink.s" {
		t.Fatalf("journal %v, want two builds and nothing run or updated", ev)
	}

	var ce *pipeline.FixtureCapabilityError
	if err := g.TakeLines("test_source.a", []string{"x"}); !errors.As(err, &ce) || ce.ID != "test_source.a" {
		t.Fatalf("lines to a test_source: %v", err)
	}
	if _, err := g.Handler("test_sink.s"); !errors.As(err, &ce) || ce.ID != "test_sink.s" {
		t.Fatalf("requests to a test_sink: %v", err)
	}
	if err := g.Advance(time.Minute); !errors.As(err, &ce) || ce.ID != "test_source.a" {
		t.Fatalf("advancing past a component without a clock: %v", err)
	}
	if !g.Now().Equal(start) {
		t.Fatalf("a refused advance moved the clock to %v", g.Now())
	}
	if _, err := g.Metrics("test_sink.nope"); err == nil {
		t.Fatal("an unknown component has metrics")
	}
}
