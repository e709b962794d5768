package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// buildOnce compiles sluice once per test binary run: with the race
// detector, except in the fast lane (-short), where the build links the
// packages go test has just compiled instead of compiling every one again
// with -race after each edit.
var buildOnce = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "sluice-e2e")
	if err != nil {
		return "", err
	}
	builtDir = dir
	bin := filepath.Join(dir, "sluice")
	args := []string{"build", "-race", "-o", bin, "."}
	if testing.Short() {
		args = []string{"build", "-o", bin, "."}
	}
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

type agent struct {
	t      *testing.T
	cmd    *exec.Cmd
	addr   string
	config string
	out    *pipelinetest.Buffer
	exited chan error
}

// launchOpts says how to start an agent; every field has a default.
type launchOpts struct {
	addr    string    // the agent's HTTP address (default: a free port)
	config  string    // path of the config file (default: sluice.hcl in a temp dir)
	storage string    // --storage.path (default: data/ in a temp dir)
	env     []string  // added to the environment
	logTo   io.Writer // also gets the agent's stderr
	args    []string  // more flags
}

// launch writes config and starts sluice on it, without waiting for it to
// be ready; the agent is killed when the test ends. A test that reads
// a.exited itself puts a value back for the cleanup.
func launch(t *testing.T, config string, o launchOpts) *agent {
	t.Helper()
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	if o.addr == "" {
		o.addr = pipelinetest.FreeTCPAddr(t)
	}
	if o.config == "" {
		o.config = filepath.Join(t.TempDir(), "sluice.hcl")
	}
	if o.storage == "" {
		o.storage = filepath.Join(t.TempDir(), "data")
	}
	a := &agent{t: t, addr: o.addr, config: o.config, out: &pipelinetest.Buffer{}, exited: make(chan error, 1)}
	a.write(config)
	args := append([]string{"run", "--server.http.listen-addr", a.addr, "--storage.path", o.storage, "--config.reload-debounce", "50ms"}, o.args...)
	a.cmd = exec.Command(bin, append(args, a.config)...)
	if o.env != nil {
		a.cmd.Env = append(os.Environ(), o.env...)
	}
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	if o.logTo != nil {
		a.cmd.Stderr = io.MultiWriter(a.out, o.logTo)
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.exited <- a.cmd.Wait() }()
	t.Cleanup(func() {
		_ = a.cmd.Process.Kill()
		<-a.exited
		if t.Failed() {
			t.Logf("sluice output:\n%s", a.out.String())
		}
	})
	return a
}

// waitReady waits until the agent answers /-/ready with 200.
func (a *agent) waitReady() *agent {
	a.t.Helper()
	a.waitFor("ready", func() bool { code, _ := a.get("/-/ready"); return code == 200 })
	return a
}

// startAgent starts sluice on config with extra flags and waits until it
// is ready.
func startAgent(t *testing.T, config string, extra ...string) *agent {
	t.Helper()
	return launch(t, config, launchOpts{args: extra}).waitReady()
}

func (a *agent) write(config string) {
	a.t.Helper()
	// Write and rename, as editors and config management do.
	tmp := a.config + ".tmp"
	if err := os.WriteFile(tmp, []byte(config), 0o644); err != nil {
		a.t.Fatal(err)
	}
	if err := os.Rename(tmp, a.config); err != nil {
		a.t.Fatal(err)
	}
}

func (a *agent) get(path string) (int, string) {
	resp, err := http.Get("http://" + a.addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (a *agent) waitFor(what string, cond func() bool) {
	a.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		select {
		case err := <-a.exited:
			a.t.Fatalf("sluice exited (%v) while waiting for %s:\n%s", err, what, a.out.String())
		default:
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scrapeHas waits until the sink's scrape contains every want and none of
// the unwanted strings.
func (a *agent) scrapeHas(path string, want []string, unwanted []string) {
	a.t.Helper()
	a.waitFor(fmt.Sprintf("%s to contain %q and not %q", path, want, unwanted), func() bool {
		code, body := a.get(path)
		if code != 200 {
			return false
		}
		for _, w := range want {
			if !strings.Contains(body, w) {
				return false
			}
		}
		for _, u := range unwanted {
			if strings.Contains(body, u) {
				return false
			}
		}
		return true
	})
}

const e2eConfigV1 = `
relabel "self" {
  input = agent.metrics
  rule {
    action        = "keep"
    source_labels = ["__name__"]
    regex         = "sluice_build_info"
  }
}

metrics_sink "e2e" {
  inputs = [relabel.self.metrics]
  path   = "/metrics/e2e"
}
`

const e2eConfigV2 = `
relabel "self" {
  input = agent.metrics
  rule {
    action        = "keep"
    source_labels = ["__name__"]
    regex         = "sluice_build_info|sluice_config_last_reload_successful"
  }
  rule {
    action       = "replace"
    target_label = "pipeline"
    replacement  = "v2"
  }
}

metrics_sink "e2e" {
  inputs = [relabel.self.metrics]
  path   = "/metrics/e2e"
}
`

func TestEndToEndReload(t *testing.T) {
	a := startAgent(t, e2eConfigV1)
	a.scrapeHas("/metrics/e2e", []string{"sluice_build_info{"}, []string{"go_goroutines", "sluice_config_last_reload_successful"})

	// A change on disk shows in the next scrapes.
	a.write(e2eConfigV2)
	a.scrapeHas("/metrics/e2e", []string{`pipeline="v2"`, "sluice_config_last_reload_successful{pipeline=\"v2\"} 1"}, nil)

	// An invalid config: the old pipeline keeps serving, the agent says the
	// reload failed.
	a.write(e2eConfigV2 + "\nmetrics_sink \"broken\" {\n  inputs = [relabel.nope.metrics]\n}\n")
	a.scrapeHas("/metrics/e2e", []string{"sluice_config_last_reload_successful{pipeline=\"v2\"} 0"}, nil)
	a.scrapeHas("/metrics", []string{"sluice_config_last_reload_successful 0", `sluice_config_reloads_total{result="failure"} 1`}, nil)
	if !strings.Contains(a.out.String(), "Reference to undeclared component") {
		t.Errorf("the failed reload's diagnostic was not logged:\n%s", a.out.String())
	}

	// Fixed: back to 1.
	a.write(e2eConfigV1)
	a.scrapeHas("/metrics", []string{"sluice_config_last_reload_successful 1", `sluice_config_reloads_total{result="success"} 3`}, nil)
	a.scrapeHas("/metrics/e2e", []string{"sluice_build_info{"}, []string{`pipeline="v2"`})

	// SIGTERM stops everything and exits 0, promptly.
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-a.exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
		a.exited <- nil // for the cleanup
	case <-time.After(20 * time.Second):
		t.Fatal("sluice did not exit within 20s of SIGTERM")
	}
}

func TestEndToEndSIGHUPAndLifecycleReload(t *testing.T) {
	a := startAgent(t, e2eConfigV1, "--web.enable-lifecycle")
	// Write in place, bypassing the watcher's debounce window is not
	// possible, so check the explicit triggers through their own effects:
	// POST /-/reload answers only after applying.
	a.write(e2eConfigV2)
	resp, err := http.Post("http://"+a.addr+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST /-/reload = %d", resp.StatusCode)
	}
	if _, body := a.get("/metrics/e2e"); !strings.Contains(body, `pipeline="v2"`) {
		t.Errorf("after POST /-/reload the sink serves the old pipeline:\n%s", body)
	}
	// A bad config: 400 with the diagnostic, position included.
	a.write("relabel \"self\" {\n  inptu = agent.metrics\n}\n")
	resp, err = http.Post("http://"+a.addr+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), "sluice.hcl:2:3: error: Unsupported argument") {
		t.Errorf("POST /-/reload with a bad config = %d:\n%s", resp.StatusCode, body)
	}
	// SIGHUP reloads too.
	a.write(e2eConfigV1)
	if err := a.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	a.scrapeHas("/metrics/e2e", []string{"sluice_build_info{"}, []string{`pipeline="v2"`})
}

func TestRunRejectsInvalidConfigAtStart(t *testing.T) {
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bad.hcl")
	if err := os.WriteFile(cfg, []byte("metrics_sink \"a\" {\n  inputs = [agent.metrics]\n  lsiten = \":1\"\n}\n\nrelabel \"r\" {\n  input = \"not a reference\"\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--server.http.listen-addr", pipelinetest.FreeTCPAddr(t), "--storage.path", filepath.Join(dir, "data"), cfg)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1\n%s", err, out)
	}
	for _, want := range []string{"bad.hcl:3:3: error: Unsupported argument", `Did you mean "listen"?`, "bad.hcl:7:11: error: Invalid value for argument", "metrics reference"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// Scrapes keep succeeding while the config is reloaded over and over.
func TestEndToEndNoScrapeFailsDuringReloads(t *testing.T) {
	a := startAgent(t, e2eConfigV1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var scrapes int
	var failures []string
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, body := a.get("/metrics/e2e")
				mu.Lock()
				scrapes++
				if code != 200 || !strings.Contains(body, "sluice_build_info") {
					failures = append(failures, fmt.Sprintf("%d: %.200s", code, body))
				}
				mu.Unlock()
			}
		}()
	}
	for i := range 10 {
		if i%2 == 0 {
			a.write(e2eConfigV2)
			a.scrapeHas("/metrics/e2e", []string{`pipeline="v2"`}, nil)
		} else {
			a.write(e2eConfigV1)
			a.scrapeHas("/metrics/e2e", []string{"sluice_build_info{"}, []string{`pipeline="v2"`})
		}
	}
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d of %d scrapes failed during reloads; first: %s", len(failures), scrapes, failures[0])
	}
	if scrapes == 0 {
		t.Fatal("no scrapes were made")
	}
	if code, body := a.get("/metrics"); !strings.Contains(body, `sluice_config_reloads_total{result="success"} 11`) {
		t.Errorf("want 11 successful loads (1 + 10 reloads), got status %d:\n%s", code, grepLines(body, "sluice_config_reloads_total"))
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestRuntimeGOGC checks the collector's target in the running agent, as
// its own go_gc_gogc_percent reports it: --runtime.gogc by default, the
// GOGC environment variable when set, and a refused non-positive flag.
func TestRuntimeGOGC(t *testing.T) {
	config := "metrics_sink \"s\" {\n  inputs = []\n}\n"
	gogc := func(a *agent) string {
		_, body := a.get("/metrics")
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, "go_gc_gogc_percent ") {
				return strings.TrimPrefix(l, "go_gc_gogc_percent ")
			}
		}
		t.Fatalf("no go_gc_gogc_percent in the agent's /metrics:\n%s", body)
		return ""
	}
	t.Run("default", func(t *testing.T) {
		t.Setenv("GOGC", "")
		if got := gogc(startAgentData(t, t.TempDir(), t.TempDir(), config)); got != "50" {
			t.Fatalf("go_gc_gogc_percent = %s, want 50 (the --runtime.gogc default)", got)
		}
	})
	t.Run("flag", func(t *testing.T) {
		t.Setenv("GOGC", "")
		if got := gogc(startAgent(t, config, "--runtime.gogc=75")); got != "75" {
			t.Fatalf("go_gc_gogc_percent = %s, want 75", got)
		}
	})
	t.Run("environment wins", func(t *testing.T) {
		if got := gogc(startAgentData(t, t.TempDir(), t.TempDir(), config, "GOGC=90")); got != "90" {
			t.Fatalf("go_gc_gogc_percent = %s, want 90 (GOGC)", got)
		}
	})
	t.Run("refused", func(t *testing.T) {
		t.Setenv("GOGC", "")
		bin, err := buildOnce()
		if err != nil {
			t.Fatal(err)
		}
		path := writeTemp(t, "sluice.hcl", config)
		out, err := exec.Command(bin, "run", "--runtime.gogc=0", "--server.http.listen-addr", pipelinetest.FreeTCPAddr(t), path).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "--runtime.gogc=0: must be a positive percentage") {
			t.Fatalf("--runtime.gogc=0: %v, output:\n%s\nwant exit 2 and the reason", err, out)
		}
	})
}

// TestProbeAddressClaimedByComponent: a component may not listen on the
// agent's probe address; the agent refuses the config at start.
func TestProbeAddressClaimedByComponent(t *testing.T) {
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	probe := pipelinetest.FreeTCPAddr(t)
	path := writeTemp(t, "sluice.hcl", fmt.Sprintf("metrics_sink \"s\" {\n  inputs = []\n  listen = %q\n}\n", probe))
	out, err := exec.Command(bin, "run", "--web.probe-listen-address", probe, "--server.http.listen-addr", pipelinetest.FreeTCPAddr(t), path).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "(--web.probe-listen-address="+probe+")") {
		t.Fatalf("component on the probe address: %v, output:\n%s\nwant exit 1 naming --web.probe-listen-address", err, out)
	}
	out, err = exec.Command(bin, "validate", "--web.probe-listen-address", probe, path).CombinedOutput()
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "Listen address used twice") {
		t.Fatalf("validate with the probe address: %v, output:\n%s", err, out)
	}
}
