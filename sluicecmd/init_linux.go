//go:build linux

package sluicecmd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Sluice as PID 1 (the shipped Dockerfile's ENTRYPOINT, without docker
// --init): a process whose parent exits is given to PID 1, and PID 1 must
// wait for it or it stays a zombie forever. exec_source's commands may leave
// such orphans (a script's background job, a daemonizing helper); tens of
// zombies a minute fill the PID table.
//
// Why a separate init process and not a reaper goroutine in the agent:
// the agent's own children are waited for by os/exec (exec.Cmd.Wait, by
// PID or pidfd). A reaper calling wait4(-1) in the same process races with
// it: whichever waits first gets the exit status, and Cmd.Wait then fails
// with ECHILD, so exec_source would count a good run as an error (or a
// failed one as a success). Telling orphans from owned children is not
// possible from outside os/exec without every caller registering its PIDs
// in a global table (and the pidfd that os/exec holds does not help
// another waiter). Waiting with WNOWAIT to peek first still needs that
// table. So when the agent finds itself PID 1 for `run`, it re-executes
// itself as its only child and stays behind as a minimal init: it forwards
// signals to the agent, reaps every process that ends up with it (the agent
// included, with the same wait4 loop, so nothing else waits in that
// process), and exits with the agent's status. Orphans of the agent's
// descendants are reparented to this init (the agent is not a subreaper),
// and the agent's os/exec keeps sole ownership of its own children.

// forwardedSignals are passed on to the agent: stop (TERM, INT, QUIT),
// reload (HUP), and the user signals for anything that may use them.
var forwardedSignals = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2}

// initEnv marks the agent started by the init, which is never PID 1
// itself; set by hand, it turns the init off (the agent runs as PID 1 and
// reaps nothing, as before: for a container that has an init already and
// still makes Sluice PID 1, which cannot happen with docker --init).
const initEnv = "SLUICE_INIT_CHILD=1"

// runAsInit runs the agent as the child of a reaping init when this process
// is PID 1 and the command is run. It reports whether it did, and the exit
// code to use.
func runAsInit(args []string, stderr io.Writer) (int, bool) {
	if os.Getpid() != 1 || !isRunCommand(args) || os.Getenv("SLUICE_INIT_CHILD") == "1" {
		return 0, false
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "sluice: running as PID 1, cannot find my own executable to start the agent under a reaping init (%v); running without one: orphaned processes will stay zombies\n", err)
		return 0, false
	}
	code, err := superviseAndReap(self, args, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "sluice: init: %v\n", err)
	}
	return code, true
}

// isRunCommand reports whether args (without the program name) select the
// run command: its first argument that is not a flag.
func isRunCommand(args []string) bool {
	for _, a := range args {
		if len(a) > 0 && a[0] == '-' {
			continue
		}
		return a == "run"
	}
	return false
}

// superviseAndReap starts the agent (self with args) and reaps every child
// until the agent exits; it returns the agent's exit code (128+N for a
// signal N, as a shell reports it).
func superviseAndReap(self string, args []string, stderr io.Writer) (int, error) {
	// Subscribe before starting, so a signal that arrives in between is
	// forwarded, not lost or (as PID 1 without a handler) ignored.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwardedSignals...)
	defer signal.Stop(sigs)

	proc, err := os.StartProcess(self, append([]string{self}, args...), &os.ProcAttr{
		Env:   append(os.Environ(), initEnv),
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
	})
	if err != nil {
		return 1, fmt.Errorf("starting the agent: %w", err)
	}
	agent := proc.Pid

	done := make(chan syscall.WaitStatus, 1)
	go func() { done <- reapUntil(agent) }()
	for {
		select {
		case s := <-sigs:
			// The agent may have exited in between: ESRCH is fine.
			if err := syscall.Kill(agent, s.(syscall.Signal)); err != nil && !errors.Is(err, syscall.ESRCH) {
				fmt.Fprintf(stderr, "sluice: init: forwarding %v to the agent: %v\n", s, err)
			}
		case ws := <-done:
			switch {
			case ws.Exited():
				return ws.ExitStatus(), nil
			case ws.Signaled():
				return 128 + int(ws.Signal()), nil
			}
			return 1, fmt.Errorf("the agent ended with wait status %#x", uint32(ws))
		}
	}
}

// reapUntil waits for any child, again and again, until agent has exited,
// and returns the agent's status. Every other child (an orphan given to
// PID 1) is reaped and forgotten. Nothing else in this process waits for
// children: os.Process.Wait is never called on the agent.
func reapUntil(agent int) syscall.WaitStatus {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case err != nil:
			// ECHILD: no child left, so the agent is gone without our
			// seeing its status (cannot happen: only this loop waits).
			return syscall.WaitStatus(1 << 8)
		case pid == agent && (ws.Exited() || ws.Signaled()):
			return ws
		}
	}
}
