package runtime_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
	"github.com/sluicehq/sluice/runtime"
)

// A component that starts serving only when its test opens its gate (as a
// webhook receiver restores its state before its listener serves).

type gatedArgs struct {
	Gate string `hcl:"gate"`
}

type gatedServer struct {
	gate    chan struct{}
	serving atomic.Bool
}

func (g *gatedServer) Run(ctx context.Context) error {
	select {
	case <-g.gate:
		g.serving.Store(true)
	case <-ctx.Done():
		return nil
	}
	<-ctx.Done()
	g.serving.Store(false)
	return nil
}

func (g *gatedServer) Update(gatedArgs) (pipeline.Pending, error) {
	return pipeline.CommitFunc(nil), nil
}

func (g *gatedServer) Ready() (bool, string) {
	if !g.serving.Load() {
		return false, "still restoring"
	}
	return true, ""
}

func init() {
	pipeline.Register(pipeline.Registration[gatedArgs, struct{}]{
		Name:    "test_gated_server",
		Summary: "test component that serves once its gate opens",
		Build: func(o pipeline.Options[struct{}], a gatedArgs) (pipeline.Component[gatedArgs], error) {
			ch, _ := gates.LoadOrStore(a.Gate, make(chan struct{}))
			o.OnExports(struct{}{})
			return &gatedServer{gate: ch.(chan struct{})}, nil
		},
	})
}

// Issue 19 item 18: /-/ready waits for every ReadinessReporter, at start
// and for a component a reload adds, and says which one it waits for.
func TestReadinessWaitsForComponentsToServe(t *testing.T) {
	gate := newGate(t.Name())
	f := newFixture(t, runtime.ControllerOptions{})
	if err := f.apply(`test_source "a" {}
test_gated_server "g" { gate = "` + t.Name() + `" }`); err != nil {
		t.Fatal(err)
	}
	// The config is applied and test_source runs: only the gate holds it.
	for range 5 {
		ok, why := f.ctrl.Readiness()
		if ok || !strings.Contains(why, "test_gated_server.g: still restoring") {
			t.Fatalf("readiness before the component serves = %v %q, want not ready naming it", ok, why)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(gate)
	pipelinetest.Eventually(t, 5*time.Second, func() bool { return f.ctrl.Ready() }, "ready once the component serves")

	// A reload adding a second one: not ready until it serves too.
	gate2 := newGate(t.Name() + "2")
	if err := f.apply(`test_source "a" {}
test_gated_server "g" { gate = "` + t.Name() + `" }
test_gated_server "h" { gate = "` + t.Name() + `2" }`); err != nil {
		t.Fatal(err)
	}
	if ok, why := f.ctrl.Readiness(); ok || !strings.Contains(why, "test_gated_server.h") || strings.Contains(why, "test_gated_server.g") {
		t.Errorf("readiness with h not serving = %v %q, want not ready naming h only", ok, why)
	}
	close(gate2)
	pipelinetest.Eventually(t, 5*time.Second, func() bool { return f.ctrl.Ready() }, "ready once both serve")
}
