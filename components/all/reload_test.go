package all_test

// Reloads of the real components through runtime.Controller: the work a
// reload repeats, and all-or-nothing apply.

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	_ "github.com/sluicehq/sluice/components/all"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
	"github.com/sluicehq/sluice/runtime"
)

type agent struct {
	t      *testing.T
	ctrl   *runtime.Controller
	reg    *prometheus.Registry
	logs   *pipelinetest.Buffer
	srv    *httptest.Server
	dir    string
	config string

	mu    sync.Mutex
	reads map[string]int
}

// newAgent runs a controller whose logs (at debug level) and file reads
// the test can count, with the agent's HTTP handler on a test server.
func newAgent(t *testing.T) *agent {
	t.Helper()
	a := &agent{t: t, reg: prometheus.NewRegistry(), logs: &pipelinetest.Buffer{}, dir: t.TempDir(), reads: map[string]int{}}
	a.config = filepath.Join(a.dir, "sluice.hcl")
	mounts := runtime.NewMounts()
	logger := slog.New(slog.NewTextHandler(a.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a.ctrl = runtime.NewController(runtime.ControllerOptions{
		Logger: logger, Registry: a.reg, HTTP: mounts, DataPath: t.TempDir(),
		MinBackoff: 10 * time.Millisecond,
		ReadFile: func(p string) ([]byte, error) {
			a.mu.Lock()
			a.reads[filepath.Base(p)]++
			a.mu.Unlock()
			return os.ReadFile(p)
		},
	})
	// The server closes after the controller has stopped (cleanups run
	// last first).
	a.srv = httptest.NewServer(runtime.NewHandler(runtime.ServerOptions{Controller: a.ctrl, Mounts: mounts, Logger: logger}))
	t.Cleanup(a.srv.Close)
	pipelinetest.RunController(t, a.ctrl)
	return a
}

func (a *agent) write(name, content string) {
	a.t.Helper()
	if err := os.WriteFile(filepath.Join(a.dir, name), []byte(content), 0o644); err != nil {
		a.t.Fatal(err)
	}
}

// counts returns the reads of each file and the log lines with each
// message since the last call.
func (a *agent) counts() (reads map[string]int, logged func(msg string) int) {
	a.mu.Lock()
	reads, a.reads = a.reads, map[string]int{}
	a.mu.Unlock()
	logs := a.logs.String()
	a.logs.Reset()
	return reads, func(msg string) int { return strings.Count(logs, `msg="`+msg+`"`) }
}

func (a *agent) scrape(path string) string {
	a.t.Helper()
	resp, err := http.Get(a.srv.URL + path)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return string(b)
}

func (a *agent) gauge(name string) float64 {
	a.t.Helper()
	mfs, err := a.reg.Gather()
	if err != nil {
		a.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	a.t.Fatalf("no %s", name)
	return 0
}

const countingConfig = `
statsd_receiver "app" {
  listen_udp   = "127.0.0.1:0"
  mapping_file = "mapping.yml"
  mapping {
    match = "app.*.misses"
    name  = "misses_total"
  }
}
relabel "app" {
  input = statsd_receiver.app.metrics
  rule {
    action        = "drop"
    source_labels = ["__name__"]
    regex         = "debug_.*"
  }
  rule {
    target_label = "team"
    replacement  = "payments"
  }
}
metrics_sink "out" {
  inputs = [relabel.app.metrics]
}
`

// A reload that changes nothing reads each file once and compiles
// nothing; a reload that changes the mapping file reads it once and
// compiles the mapping once (and the relabel rules not at all).
func TestReloadWorkIsCounted(t *testing.T) {
	a := newAgent(t)
	a.write("mapping.yml", "mappings:\n- match: app.*.hits\n  name: hits_total\n  labels: {page: \"$1\"}\n")
	a.write("sluice.hcl", countingConfig)
	if err := a.ctrl.LoadFile(a.config, true); err != nil {
		t.Fatal(err)
	}
	reads, logged := a.counts()
	if reads["mapping.yml"] != 1 || logged("statsd mapping compiled") != 1 || logged("relabel rules compiled") != 1 {
		t.Fatalf("first load: mapping read %d times, compiled %d; rules compiled %d (want 1 each)",
			reads["mapping.yml"], logged("statsd mapping compiled"), logged("relabel rules compiled"))
	}

	// SIGHUP: a forced reload of an unchanged config.
	if err := a.ctrl.LoadFile(a.config, true); err != nil {
		t.Fatal(err)
	}
	reads, logged = a.counts()
	if reads["sluice.hcl"] != 1 || reads["mapping.yml"] != 1 {
		t.Errorf("no-op reload read the config %d times and the mapping file %d times, want 1 and 1", reads["sluice.hcl"], reads["mapping.yml"])
	}
	if n := logged("statsd mapping compiled"); n != 0 {
		t.Errorf("no-op reload compiled the statsd mapping %d times, want 0", n)
	}
	if n := logged("relabel rules compiled"); n != 0 {
		t.Errorf("no-op reload compiled the relabel rules %d times, want 0", n)
	}
	if n := logged("component updated"); n != 0 {
		t.Errorf("no-op reload updated %d components", n)
	}

	// The watcher's kind of reload: skipped after checking the files once.
	if err := a.ctrl.LoadFile(a.config, false); err != nil {
		t.Fatal(err)
	}
	reads, logged = a.counts()
	if reads["sluice.hcl"] != 1 || reads["mapping.yml"] != 1 || logged("config applied") != 0 {
		t.Errorf("unchanged-file check: config read %d, mapping read %d, applied %d times; want 1, 1, 0",
			reads["sluice.hcl"], reads["mapping.yml"], logged("config applied"))
	}

	// The mapping file changes: read once, compiled once.
	a.write("mapping.yml", "mappings:\n- match: app.*.hits\n  name: page_hits_total\n  labels: {page: \"$1\"}\n")
	if err := a.ctrl.LoadFile(a.config, false); err != nil {
		t.Fatal(err)
	}
	reads, logged = a.counts()
	if reads["mapping.yml"] != 1 {
		t.Errorf("changed mapping file read %d times, want 1", reads["mapping.yml"])
	}
	if n := logged("statsd mapping compiled"); n != 1 {
		t.Errorf("changed mapping compiled %d times, want 1", n)
	}
	if n := logged("relabel rules compiled"); n != 0 {
		t.Errorf("unchanged relabel rules compiled %d times, want 0", n)
	}
	if n := logged("component updated"); n != 1 {
		t.Errorf("%d components updated, want 1 (the receiver)", n)
	}
}

func freeUDPAddr(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// A reload that moves the receiver's TCP listener to a port in use is
// rejected whole: the relabel change in the same reload is not applied,
// the receiver keeps its sockets, and the failure is counted.
func TestReloadWithATakenPortIsRejectedWhole(t *testing.T) {
	a := newAgent(t)
	udpAddr, tcpAddr := freeUDPAddr(t), pipelinetest.FreeTCPAddr(t)
	config := func(tcp, team string) string {
		return fmt.Sprintf(`
statsd_receiver "app" {
  listen_udp = %q
  listen_tcp = %q
}
relabel "app" {
  input = statsd_receiver.app.metrics
  rule {
    target_label = "team"
    replacement  = %q
  }
}
metrics_sink "out" {
  inputs = [relabel.app.metrics]
}
`, udpAddr, tcp, team)
	}
	a.write("sluice.hcl", config(tcpAddr, "before"))
	if err := a.ctrl.LoadFile(a.config, true); err != nil {
		t.Fatal(err)
	}
	sendUDP := func(line string) {
		t.Helper()
		c, err := net.Dial("udp", udpAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		sendUDP("hits:1|c")
		return strings.Contains(a.scrape("/metrics/out"), `hits{team="before"}`)
	}, "the receiver serving")

	blocker, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	a.write("sluice.hcl", config(blocker.Addr().String(), "after"))
	err = a.ctrl.LoadFile(a.config, false)
	var de *runtime.DiagnosticsError
	if !errors.As(err, &de) {
		t.Fatalf("reload onto a taken port: %v, want a *DiagnosticsError", err)
	}
	if d := de.Diags[0]; len(de.Diags) != 1 || d.Summary != "Failed to apply new arguments" || d.Subject.Start.Line != 2 ||
		!strings.Contains(d.Detail, "address already in use") {
		t.Errorf("want one diagnostic at statsd_receiver.app (line 2) about the address, got:\n%v", err)
	}
	if v := a.gauge("sluice_config_last_reload_successful"); v != 0 {
		t.Errorf("sluice_config_last_reload_successful = %v, want 0", v)
	}
	if err := testutil.GatherAndCompare(a.reg, strings.NewReader(`
# HELP sluice_config_reloads_total Config loads and reloads, by result (success or failure).
# TYPE sluice_config_reloads_total counter
sluice_config_reloads_total{result="failure"} 1
sluice_config_reloads_total{result="success"} 1
`), "sluice_config_reloads_total"); err != nil {
		t.Error(err)
	}

	// The old sockets still serve, through the old rules.
	c, err := net.Dial("tcp", tcpAddr)
	if err != nil {
		t.Fatalf("the old TCP socket is gone: %v", err)
	}
	if _, err := c.Write([]byte("tcp_hits:1|c\n")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		return strings.Contains(a.scrape("/metrics/out"), `tcp_hits{team="before"} 1`)
	}, "the old TCP socket serving")
	sendUDP("hits:1|c")
	out := a.scrape("/metrics/out")
	if strings.Contains(out, `team="after"`) {
		t.Errorf("the relabel change of the rejected reload was applied:\n%s", out)
	}
}
