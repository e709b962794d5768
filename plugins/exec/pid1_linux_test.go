package exec_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// Issue 19 item 12: as PID 1 (the shipped Dockerfile), Sluice must reap the
// orphans its commands leave, and exec_source must still see every
// command's own exit status. These tests run the real binary (sluice with
// exec_source, internal/testagent) as PID 1 of a new PID namespace.

var buildAgent = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "sluice-exec-pid1")
	if err != nil {
		return "", err
	}
	builtDir = dir
	bin := filepath.Join(dir, "sluice")
	if out, err := osexec.Command("go", "build", "-race", "-o", bin, "./internal/testagent").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// needPIDNamespace skips the test when this machine does not let the test
// create a PID namespace (not root, or unshare refused in a container).
func needPIDNamespace(t *testing.T) {
	t.Helper()
	if out, err := osexec.Command("unshare", "--pid", "--fork", "--mount-proc", "true").CombinedOutput(); err != nil {
		t.Skipf("cannot create a PID namespace here (needs root and unshare; run as root to test PID 1 reaping): %v %s", err, out)
	}
}

// pid1Agent is the binary running as PID 1 of its own PID namespace.
type pid1Agent struct {
	t      *testing.T
	cmd    *osexec.Cmd // unshare
	addr   string
	out    *pipelinetest.Buffer
	exited chan struct{}
	err    error
}

const orphanConfig = `
exec_source "orphans" {
  # Each run leaves two processes behind that outlive it by a little:
  # orphans, given to PID 1 when the script exits.
  command  = [%q]
  interval = "100ms"
}

exec_source "fails" {
  command  = [%q]
  interval = "100ms"
}
`

func startPID1Agent(t *testing.T, env ...string) *pid1Agent {
	t.Helper()
	needPIDNamespace(t)
	bin, err := buildAgent()
	if err != nil {
		t.Fatal(err)
	}
	// The orphans do not hold the command's pipes, or exec_source would
	// wait for them (up to its WaitDelay) instead of seeing the script end.
	orphans := script(t, `(sleep 0.3 </dev/null >/dev/null 2>&1 &)
(sh -c 'sleep 0.2' </dev/null >/dev/null 2>&1 &)
echo "orphan_maker_up 1"
`)
	fails := script(t, "echo 'partial 1'\nexit 3\n")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "sluice.hcl")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, orphanConfig, orphans, fails), 0o644); err != nil {
		t.Fatal(err)
	}
	a := &pid1Agent{t: t, addr: pipelinetest.FreeTCPAddr(t), out: &pipelinetest.Buffer{}, exited: make(chan struct{})}
	a.cmd = osexec.Command("unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
		bin, "run", "--server.http.listen-addr", a.addr, "--storage.path", filepath.Join(dir, "data"), cfg)
	a.cmd.Env = append(os.Environ(), env...)
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.err = a.cmd.Wait(); close(a.exited) }()
	t.Cleanup(func() {
		_ = a.cmd.Process.Kill() // --kill-child takes the namespace down with unshare
		<-a.exited
		if t.Failed() {
			t.Logf("sluice output:\n%s", a.out.String())
		}
	})
	return a
}

// metrics returns the agent's /metrics as series -> value.
func (a *pid1Agent) metrics() map[string]float64 {
	resp, err := http.Get("http://" + a.addr + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return out
}

func runsOf(m map[string]float64, component, result string) float64 {
	return m[fmt.Sprintf(`sluice_exec_runs_total{component_id="exec_source.%s",result=%q}`, component, result)]
}

// waitRunsPID1 waits until component has run n times with result.
func (a *pid1Agent) waitRuns(component, result string, n float64) map[string]float64 {
	a.t.Helper()
	var m map[string]float64
	deadline := time.Now().Add(60 * time.Second)
	for m = a.metrics(); runsOf(m, component, result) < n; m = a.metrics() {
		select {
		case <-a.exited:
			a.t.Fatalf("sluice exited (%v) before %v %s runs of %s", a.err, n, result, component)
		default:
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("timed out waiting for %v %s runs of %s; have %v", n, result, component, runsOf(m, component, result))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return m
}

// namespace returns the processes of the PID namespace whose init is the
// unshare command's child: host PID -> state (R, S, Z, ...), read from
// this host's /proc by the namespace's /proc/PID/ns/pid link.
func (a *pid1Agent) namespace() (map[int]byte, int) {
	a.t.Helper()
	initPID := 0
	entries, err := os.ReadDir("/proc")
	if err != nil {
		a.t.Fatal(err)
	}
	type proc struct {
		ppid  int
		state byte
		ns    string
	}
	procs := map[int]proc{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // gone meanwhile
		}
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || i+2 >= len(s) {
			continue
		}
		f := strings.Fields(s[i+2:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
		procs[pid] = proc{ppid: ppid, state: f[0][0], ns: ns}
		if ppid == a.cmd.Process.Pid {
			initPID = pid
		}
	}
	if initPID == 0 {
		a.t.Fatalf("no child of unshare (pid %d) found", a.cmd.Process.Pid)
	}
	inNS := map[int]byte{}
	want := procs[initPID].ns
	for pid, p := range procs {
		if p.ns == want && want != "" {
			inNS[pid] = p.state
		}
	}
	return inNS, initPID
}

func zombies(procs map[int]byte) int {
	n := 0
	for _, s := range procs {
		if s == 'Z' {
			n++
		}
	}
	return n
}

// The fix: zombies do not accumulate, the failing command's exit code 3 is
// seen on every run (never an "error" from a stolen exit status), and a
// SIGTERM to PID 1 stops the agent cleanly.
func TestPID1ReapsOrphansAndKeepsExitStatuses(t *testing.T) {
	a := startPID1Agent(t)
	maxZombies := 0
	for n := 10.0; n <= 40; n += 10 {
		a.waitRuns("orphans", "success", n)
		procs, _ := a.namespace()
		maxZombies = max(maxZombies, zombies(procs))
	}
	t.Logf("at most %d zombies in the namespace while 40 runs left 80 orphans", maxZombies)
	// A few may be between exit and reaping.
	if maxZombies > 4 {
		t.Errorf("%d zombies in the namespace after 10-40 runs, want them reaped", maxZombies)
	}
	m := a.waitRuns("fails", "exit_error", 20)
	for _, c := range []string{"orphans", "fails"} {
		if n := runsOf(m, c, "error"); n != 0 {
			t.Errorf("%s: %v runs ended in error (an exit status taken by another waiter?)", c, n)
		}
	}
	if n := runsOf(m, "fails", "success"); n != 0 {
		t.Errorf("the command exiting 3 succeeded %v times", n)
	}
	if code := m[`sluice_exec_last_exit_code{component_id="exec_source.fails"}`]; code != 3 {
		t.Errorf("last exit code of the failing command: %v, want 3", code)
	}
	if code, ok := m[`sluice_exec_last_exit_code{component_id="exec_source.orphans"}`]; !ok || code != 0 {
		t.Errorf("last exit code of the orphan maker: %v (present %v), want 0", code, ok)
	}

	// PID 1 is the init; the agent is its child, and gets the signals.
	procs, initPID := a.namespace()
	agents := 0
	for pid := range procs {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); err == nil && strings.Contains(string(b), "SLUICE_INIT_CHILD=1") {
			agents++
		}
	}
	if agents != 1 {
		t.Errorf("%d agents under the init, want 1", agents)
	}
	if err := syscall.Kill(initPID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("SIGTERM to PID 1 did not stop the agent")
	}
	if a.err != nil {
		t.Errorf("exit after SIGTERM: %v, want 0", a.err)
	}
	if !strings.Contains(a.out.String(), "received signal, stopping") {
		t.Errorf("the agent did not get the SIGTERM:\n%s", a.out.String())
	}
}

// The control: with the init turned off, the same config as PID 1 leaves
// zombies behind, so the test above would see them if the reaping broke.
func TestPID1WithoutInitAccumulatesZombies(t *testing.T) {
	a := startPID1Agent(t, "SLUICE_INIT_CHILD=1")
	a.waitRuns("orphans", "success", 10)
	pipelinetest.Eventually(t, 30*time.Second, func() bool {
		procs, _ := a.namespace()
		return zombies(procs) >= 10
	}, "zombies piling up without the init")
}
