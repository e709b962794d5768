package statsd

import (
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// Issue 19 item 18: a receiver is ready (for the agent's /-/ready) once its
// sockets are bound, and not after it stopped.
func TestReadyOnceBound(t *testing.T) {
	h := pipelinetest.New(t, "statsd_receiver", "listen_udp = \"127.0.0.1:0\"\n")
	r := h.Component.(pipeline.ReadinessReporter)
	if ok, why := r.Ready(); ok || why == "" {
		t.Fatalf("ready before Run: %v %q", ok, why)
	}
	h.Start()
	pipelinetest.Eventually(t, 5*time.Second, func() bool { ok, _ := r.Ready(); return ok }, "ready once bound")
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := r.Ready(); ok {
		t.Error("ready after Run ended")
	}
}
