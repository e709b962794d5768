package pipelinetest

import (
	"context"
	"testing"

	"github.com/sluicehq/sluice/runtime"
)

// RunController runs ctrl (its Run loop: components start and stop) until
// the test ends, and waits for it to return in the test's cleanup. Cleanups
// registered later (a test server in front of it) run before it stops.
func RunController(tb testing.TB, ctrl *runtime.Controller) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = ctrl.Run(ctx); close(done) }()
	tb.Cleanup(func() { cancel(); <-done })
}
