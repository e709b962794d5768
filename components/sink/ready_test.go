package sink_test

import (
	"testing"
	"time"

	"github.com/sluicehq/sluice/components/sink"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// Issue 19 item 18: a sink is ready (for the agent's /-/ready) once its
// own listener serves, and not after it stopped.
func TestReadyOnceServing(t *testing.T) {
	h := pipelinetest.New(t, "metrics_sink", "inputs = []\nlisten = \"127.0.0.1:0\"")
	c := h.Component.(*sink.Component)
	if ok, why := c.Ready(); ok || why == "" {
		t.Fatalf("ready before Run: %v %q", ok, why)
	}
	h.Start()
	pipelinetest.Eventually(t, 5*time.Second, func() bool { ok, _ := c.Ready(); return ok }, "ready once serving")
	if c.Addr() == "" {
		t.Error("ready without serving an address")
	}
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Ready(); ok {
		t.Error("ready after Run ended")
	}
}
