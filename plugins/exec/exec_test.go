package exec_test

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
	"github.com/sluicehq/sluice/plugins/exec"
	"github.com/sluicehq/sluice/runtime"
)

// script writes an executable /bin/sh script to a temporary directory.
func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "script.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// series returns every sample g serves as `name{k="v",...}` -> value.
func series(t *testing.T, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, lp := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			sort.Strings(ls)
			v := m.GetGauge().GetValue()
			switch {
			case m.Counter != nil:
				v = m.GetCounter().GetValue()
			case m.Untyped != nil:
				v = m.GetUntyped().GetValue()
			}
			out[mf.GetName()+"{"+strings.Join(ls, ",")+"}"] = v
		}
	}
	return out
}

func runs(t *testing.T, h *pipelinetest.Harness, result string) float64 {
	return series(t, h.Registry)[`sluice_exec_runs_total{result="`+result+`"}`]
}

func waitRuns(t *testing.T, h *pipelinetest.Harness, result string, n float64) {
	t.Helper()
	pipelinetest.Eventually(t, 15*time.Second, func() bool { return runs(t, h, result) >= n }, "%v runs with result %s (have %v)", n, result, series(t, h.Registry))
}

func hcl(command []string, extra string) string {
	q := make([]string, len(command))
	for i, c := range command {
		q[i] = strconv.Quote(c)
	}
	return fmt.Sprintf("command = [%s]\ninterval = \"200ms\"\ntimeout = \"150ms\"\n%s\n", strings.Join(q, ", "), extra)
}

// The argv goes to the program as is: no shell expands $HOME or splits
// words.
func TestEchoWithoutShell(t *testing.T) {
	h := pipelinetest.New(t, exec.Name, hcl([]string{"/bin/echo", `echo_value{arg="$HOME; true"} 42`}, ""))
	h.Start()
	waitRuns(t, h, "success", 1)
	if got := series(t, h.Gatherer()); got[`echo_value{arg="$HOME; true"}`] != 42 {
		t.Errorf("series %v", got)
	}
	self := series(t, h.Registry)
	if self["sluice_exec_last_exit_code{}"] != 0 || self["sluice_exec_series{}"] != 1 || self["sluice_exec_last_success_timestamp_seconds{}"] == 0 {
		t.Errorf("self-metrics %v", self)
	}
}

// The command sees env and nothing of the agent's environment, unless
// inherit_env is set.
func TestEnvironment(t *testing.T) {
	t.Setenv("SLUICE_EXEC_TEST_AGENT", "agent-secret")
	sh := script(t, `echo "env_seen{foo=\"$FOO\",agent=\"$SLUICE_EXEC_TEST_AGENT\"} 1"`)
	h := pipelinetest.New(t, exec.Name, hcl([]string{sh}, `env = { FOO = "bar" }`))
	h.Start()
	waitRuns(t, h, "success", 1)
	if got := series(t, h.Gatherer()); got[`env_seen{agent="",foo="bar"}`] != 1 {
		t.Errorf("without inherit_env: %v", got)
	}
	if err := h.Update(hcl([]string{sh}, "env = { FOO = \"baz\" }\ninherit_env = true")); err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 15*time.Second, func() bool {
		return series(t, h.Gatherer())[`env_seen{agent="agent-secret",foo="baz"}`] == 1
	}, "with inherit_env: %v", series(t, h.Gatherer()))
}

// gone reports whether pid no longer runs: it does not exist, or it is a
// zombie waiting for a reaper (in a container, PID 1 may not reap).
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return os.IsNotExist(err)
	}
	// pid (comm) STATE ...: comm may hold spaces; the state follows the last ')'.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// A command that outlives its timeout is killed with its whole process
// group (its background child too), counted as a timeout, and the last
// good values stay.
func TestTimeoutKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	mode := filepath.Join(dir, "mode")
	pids := filepath.Join(dir, "pids")
	sh := script(t, fmt.Sprintf(`
if [ "$(cat %[1]s)" = good ]; then echo "up 1"; exit 0; fi
sleep 300 &
echo "$$ $!" > %[2]s.tmp && mv %[2]s.tmp %[2]s
wait
`, mode, pids))
	if err := os.WriteFile(mode, []byte("good"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := pipelinetest.New(t, exec.Name, fmt.Sprintf("command = [%q]\ninterval = \"1s\"\ntimeout = \"300ms\"\nenv = { PATH = \"/usr/bin:/bin\" }\n", sh))
	h.Start()
	waitRuns(t, h, "success", 1)
	if err := os.WriteFile(mode, []byte("hang"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitRuns(t, h, "timeout", 1)
	b, err := os.ReadFile(pids)
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 {
		t.Fatalf("pids file %q", b)
	}
	for _, f := range fields {
		pid, _ := strconv.Atoi(f)
		// Killed synchronously before the run was counted; the child is
		// reaped by whoever adopted it, so allow for that.
		pipelinetest.Eventually(t, 5*time.Second, func() bool { return gone(pid) }, "process %d survived the timeout", pid)
	}
	if got := series(t, h.Gatherer()); got["up{}"] != 1 {
		t.Errorf("last values not kept: %v", got)
	}
	if st := h.Component.(*exec.Component).Health(); st.State != pipeline.HealthUnhealthy || !strings.Contains(st.Message, "timeout") {
		t.Errorf("health %+v", st)
	}
	if self := series(t, h.Registry); self["sluice_exec_last_exit_code{}"] != -1 {
		t.Errorf("exit code after a kill: %v", self["sluice_exec_last_exit_code{}"])
	}
}

// Invalid exposition, a non-zero exit and a program that cannot start
// keep the last values and are counted; the exit code is exported.
func TestFailuresKeepLastValues(t *testing.T) {
	dir := t.TempDir()
	mode := filepath.Join(dir, "mode")
	sh := script(t, fmt.Sprintf(`
case "$(cat %s)" in
good) echo "# TYPE up gauge"; echo "up 1" ;;
bad)  echo "up{oops 1"; echo "this is not exposition" ;;
dup)  echo "up 1"; echo "up 2" ;;
exit) echo "up 5"; exit 3 ;;
esac
`, mode))
	set := func(m string) {
		if err := os.WriteFile(mode, []byte(m), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set("good")
	h := pipelinetest.New(t, exec.Name, hcl([]string{sh}, `env = { PATH = "/usr/bin:/bin" }`))
	h.Start()
	waitRuns(t, h, "success", 1)
	for _, c := range []struct{ mode, result string }{{"bad", "bad_output"}, {"dup", "bad_output"}, {"exit", "exit_error"}} {
		before := runs(t, h, c.result)
		set(c.mode)
		waitRuns(t, h, c.result, before+1)
		if got := series(t, h.Gatherer()); got["up{}"] != 1 || len(got) != 1 {
			t.Errorf("after %s: %v, want the last good up 1", c.mode, got)
		}
	}
	if code := series(t, h.Registry)["sluice_exec_last_exit_code{}"]; code != 3 {
		t.Errorf("exit code %v, want 3", code)
	}
	if err := h.Update(hcl([]string{filepath.Join(dir, "missing")}, "")); err != nil {
		t.Fatal(err)
	}
	waitRuns(t, h, "error", 1)
	if got := series(t, h.Gatherer()); got["up{}"] != 1 {
		t.Errorf("after a failed start: %v", got)
	}
}

// Output past max_output_bytes kills the command at once (long before its
// timeout) and is not parsed.
func TestOutputBounded(t *testing.T) {
	sh := script(t, `while :; do echo "# a comment line that pads the output of this command"; done`)
	h := pipelinetest.New(t, exec.Name, fmt.Sprintf("command = [%q]\ninterval = \"1h\"\ntimeout = \"1h\"\nmax_output_bytes = 65536\n", sh))
	h.Start()
	waitRuns(t, h, "too_large", 1)
	if n := runs(t, h, "timeout"); n != 0 {
		t.Errorf("%v timeouts", n)
	}
}

// Standard error is logged, at most twice a minute however often the
// command runs.
func TestStderrLoggedAtBoundedRate(t *testing.T) {
	logs := &pipelinetest.Buffer{}
	sh := script(t, `echo "disk is slow" >&2; echo "up 1"`)
	h := pipelinetest.New(t, exec.Name, hcl([]string{sh}, ""), pipelinetest.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	h.Start()
	waitRuns(t, h, "success", 5)
	if n := strings.Count(logs.String(), "disk is slow"); n != 2 {
		t.Errorf("stderr logged %d times in 5 runs, want 2 (the burst):\n%s", n, logs.String())
	}
}

// Bad configurations are diagnostics at load, each at its attribute.
func TestValidation(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{`command = []`, "must name a program"},
		{`command = ["sh", "-c", "echo"]`, `"sh" is not a path`},
		{`command = ["/bin/true"]
interval = "10ms"`, "interval must be at least"},
		{`command = ["/bin/true"]
interval = "1s"
timeout = "2s"`, "at most interval"},
		{`command = ["/bin/true"]
env = { "A=B" = "x" }`, "not a valid environment variable name"},
		{`command = ["/bin/true"]
max_output_bytes = 0`, "max_output_bytes"},
	} {
		_, diags := pipelinetest.Decode(t, exec.Name, c.body)
		if !diags.HasErrors() || !strings.Contains(diags.Error(), c.want) {
			t.Errorf("%s:\n got %v\nwant %q", c.body, diags, c.want)
		}
	}
	// A relative program path resolves against the config's directory.
	args, diags := pipelinetest.Decode(t, exec.Name, `command = ["./probe.sh", "x"]`, pipelinetest.WithConfigDir("/etc/sluice"))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if got := args.(exec.Arguments).Command; got[0] != "/etc/sluice/probe.sh" || got[1] != "x" {
		t.Errorf("command %q", got)
	}
}

// Issue 19 item 16: interval alone is a valid config: an unset timeout is
// min(10s, interval), as Prometheus does with scrape_timeout; an explicit
// timeout longer than the interval is still refused. The reference docs say
// so.
func TestTimeoutDefaultAdaptsToInterval(t *testing.T) {
	for _, c := range []struct {
		body string
		want time.Duration
	}{
		{`command = ["/bin/true"]` + "\ninterval = \"1s\"", time.Second},
		{`command = ["/bin/true"]` + "\ninterval = \"200ms\"", 200 * time.Millisecond},
		{`command = ["/bin/true"]`, exec.DefaultTimeout},
		{`command = ["/bin/true"]` + "\ninterval = \"5m\"", exec.DefaultTimeout},
		{`command = ["/bin/true"]` + "\ninterval = \"5m\"\ntimeout = \"30s\"", 30 * time.Second},
	} {
		args, diags := pipelinetest.Decode(t, exec.Name, c.body)
		if diags.HasErrors() {
			t.Errorf("%s: refused: %v", c.body, diags)
			continue
		}
		a := args.(exec.Arguments)
		if got := a.RunTimeout(); got != c.want {
			t.Errorf("%s: timeout %v, want %v", c.body, got, c.want)
		}
	}
	for _, body := range []string{
		`command = ["/bin/true"]` + "\ninterval = \"1s\"\ntimeout = \"2s\"",
		`command = ["/bin/true"]` + "\ntimeout = \"2m\"", // longer than the default interval
	} {
		if _, diags := pipelinetest.Decode(t, exec.Name, body); !diags.HasErrors() || !strings.Contains(diags.Error(), "must be at most interval") {
			t.Errorf("%s: want the explicit timeout refused, got %v", body, diags)
		}
	}
	ct, _ := pipeline.Lookup(exec.Name)
	for _, a := range runtime.Describe(ct).Args {
		if a.Name == "timeout" && a.Default != "min(10s, interval)" {
			t.Errorf("documented default of timeout: %q, want min(10s, interval)", a.Default)
		}
	}
}

// The adapted timeout is the one a run gets: a command that sleeps for
// longer than a 300ms interval is killed as a timeout, not left running for
// the 10s default.
func TestAdaptedTimeoutKillsRun(t *testing.T) {
	sh := script(t, "exec /bin/sleep 60\n")
	h := pipelinetest.New(t, exec.Name, fmt.Sprintf("command = [%q]\ninterval = \"300ms\"\n", sh))
	h.Start()
	// Three timeouts within the 15s wait: impossible with a 10s timeout.
	waitRuns(t, h, "timeout", 3)
}

// Issue 19 item 13: env is a secret; a command that prints its values on
// standard error, echoes them in output that fails to parse, or fails with
// them, gets them redacted from every log line and from its health (which
// the status UI and the components API show). A value cut at the 2 KiB
// stderr bound is redacted too.
func TestSecretEnvNeverLogged(t *testing.T) {
	const secret = "s3cr3t-T0ken-4242"
	logs := &pipelinetest.Buffer{}
	sh := script(t, `echo "using token $API_TOKEN" >&2
echo "bad_metric $API_TOKEN"
`)
	h := pipelinetest.New(t, exec.Name, hcl([]string{sh}, fmt.Sprintf("env = { API_TOKEN = %q, PATH = \"/usr/bin:/bin\" }", secret)),
		pipelinetest.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	h.Start()
	waitRuns(t, h, "bad_output", 2)
	health := h.Component.(*exec.Component).Health()
	for what, text := range map[string]string{"log": logs.String(), "health": health.Message} {
		if strings.Contains(text, secret) {
			t.Errorf("the secret is in the %s:\n%s", what, text)
		}
		if !strings.Contains(text, "<redacted>") {
			t.Errorf("the %s does not show where the secret was redacted:\n%s", what, text)
		}
	}
	if !strings.Contains(logs.String(), "using token <redacted>") || !strings.Contains(health.Message, "bad_output") {
		t.Errorf("want the rest of the messages kept; log:\n%s\nhealth: %s", logs.String(), health.Message)
	}

	// Cut at the bound: 2040 bytes of noise, then the secret.
	logs2 := &pipelinetest.Buffer{}
	sh2 := script(t, `i=0; while [ $i -lt 204 ]; do printf 'xxxxxxxxx\n' >&2; i=$((i+1)); done
echo "$API_TOKEN" >&2
echo "up 1"
`)
	h2 := pipelinetest.New(t, exec.Name, hcl([]string{sh2}, fmt.Sprintf("env = { API_TOKEN = %q }", secret)),
		pipelinetest.WithLogger(slog.New(slog.NewTextHandler(logs2, nil))))
	h2.Start()
	waitRuns(t, h2, "success", 1)
	pipelinetest.Eventually(t, 5*time.Second, func() bool { return strings.Contains(logs2.String(), "truncated=true") }, "the truncated stderr logged")
	if strings.Contains(logs2.String(), secret[:8]) {
		t.Errorf("the start of the secret cut at the bound is logged:\n%s", logs2.String())
	}
	if !strings.Contains(logs2.String(), "<redacted>") {
		t.Errorf("want the cut secret redacted:\n%s", logs2.String())
	}
}
