package proc

import (
	"os/exec"
	"testing"
)

// TestStartStop: stop ends a process that ignores nothing (sleep ends on
// SIGINT) and returns once it has been waited for.
func TestStartStop(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	stop, err := Start(cmd)
	if err != nil {
		t.Skipf("no sleep here: %v", err)
	}
	stop()
	if cmd.ProcessState == nil || cmd.ProcessState.Success() {
		t.Fatalf("after stop: %v, want a process ended by the interrupt", cmd.ProcessState)
	}
}
