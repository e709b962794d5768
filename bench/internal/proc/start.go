package proc

import (
	"os"
	"os/exec"
	"syscall"
	"time"
)

// stopGrace is how long Stop waits after the interrupt before it kills.
const stopGrace = 10 * time.Second

// Start starts cmd so that it ends with the bench however the bench ends
// (SIGKILL when the bench's thread dies), and returns a stop function:
// SIGINT, then SIGKILL after 10 s, waiting for the process either way.
func Start(cmd *exec.Cmd) (stop func(), err error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(stopGrace):
			_ = cmd.Process.Kill()
			<-done
		}
	}, nil
}
