//go:build unix

package exec

import (
	osexec "os/exec"
	"syscall"
)

// setProcessGroup runs the command in a process group of its own and makes
// cancellation kill the whole group: a shell script's children (a sleep, a
// curl) die with it instead of outliving the timeout.
func setProcessGroup(cmd *osexec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The group's ID is the leader's PID; the leader is not reaped
		// before Wait returns, so the ID cannot have been reused.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
