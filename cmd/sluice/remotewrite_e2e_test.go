package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testing/realpart"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// promServer is a real Prometheus (Debian's 2.42) that a test can stop and
// start again on the same port and data.
type promServer struct {
	t      *testing.T
	bin    string
	args   []string
	addr   string
	out    *pipelinetest.Buffer
	cmd    *exec.Cmd
	exited chan error
}

// prometheusBinary returns Debian's prometheus, skipping the test locally
// when it is missing and failing it under CI=true. Under -short it skips:
// the fast lane starts no Prometheus.
func prometheusBinary(t *testing.T) string {
	t.Helper()
	realpart.SkipShort(t, "a real Prometheus")
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("prometheus is not installed (scripts/ensure-deps.sh installs it)")
		}
		t.Skip("prometheus is not installed; run scripts/ensure-deps.sh")
	}
	return bin
}

// newPromServer prepares a Prometheus with config (prometheus.yml's
// content) and extra flags, on a free port with its data in a temporary
// directory; start runs it, and the test's cleanup stops it.
func newPromServer(t *testing.T, config string, extra ...string) *promServer {
	t.Helper()
	bin := prometheusBinary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &promServer{t: t, bin: bin, addr: pipelinetest.FreeTCPAddr(t), out: &pipelinetest.Buffer{}}
	p.args = append([]string{"--config.file", cfg, "--storage.tsdb.path", filepath.Join(dir, "tsdb"),
		"--web.listen-address", p.addr}, extra...)
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", p.out.String())
		}
	})
	return p
}

func (p *promServer) start() {
	p.t.Helper()
	p.cmd = exec.Command(p.bin, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.exited = make(chan error, 1)
	go func() { p.exited <- p.cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + p.addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case err := <-p.exited:
			p.t.Fatalf("prometheus exited: %v\n%s", err, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatal("prometheus not ready")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *promServer) stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.cmd = nil
}

func (p *promServer) api(path string, params url.Values, v any) error {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + p.addr + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %d %s", path, resp.StatusCode, body)
	}
	return json.Unmarshal(body, v)
}

// value is the instant value of a query that returns one series.
func (p *promServer) value(q string) (float64, map[string]string, error) {
	var r struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := p.api("/api/v1/query", url.Values{"query": {q}}, &r); err != nil {
		return 0, nil, err
	}
	if len(r.Data.Result) != 1 {
		return 0, nil, fmt.Errorf("%s: %d series", q, len(r.Data.Result))
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	return v, r.Data.Result[0].Metric, err
}

func waitCond(t *testing.T, timeout time.Duration, what string, check func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		problem := check()
		if problem == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", what, problem)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestRemoteWriteToRealPrometheus: statsd lines go into the real sluice
// binary, remote_write sends them to a real Prometheus 2.42 receiver, and
// the values come back through /api/v1/query. Then Prometheus is stopped
// for as long as Sluice takes to fail several sends (the outage of issue
// 12) and started again on the same port and data: the WAL backlog is sent, and the series has no hole over the outage,
// neither in its raw samples nor in a query_range with step = scrape
// interval.
func TestRemoteWriteToRealPrometheus(t *testing.T) {
	// A lookback of 3 intervals: a query_range step finds a sample only if
	// one was written in the last 3 s, so the 5 min default cannot hide a
	// hole.
	prom := newPromServer(t, "global:\n  scrape_interval: 1s\n", "--web.enable-remote-write-receiver", "--query.lookback-delta=3s")
	prom.start()

	statsdAddr := freeUDPAddr(t)
	a := startAgent(t, fmt.Sprintf(`
statsd_receiver "app" {
  listen_udp = %q
  mapping {
    match = "app.requests"
    name  = "app_requests_total"
  }
}

remote_write "central" {
  inputs          = [statsd_receiver.app.metrics]
  scrape_interval = "1s"
  external_labels = { cluster = "e2e" }
  wal             = true
  endpoint {
    url = "http://%s/api/v1/write"
  }
  queue {
    batch_send_deadline = "200ms"
    min_backoff         = "100ms"
    max_backoff         = "1s"
  }
}
`, statsdAddr, prom.addr))
	conn, err := net.Dial("udp", statsdAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	send := func(lines ...string) {
		t.Helper()
		if _, err := conn.Write([]byte(strings.Join(lines, "\n"))); err != nil {
			t.Fatal(err)
		}
	}
	// The receiver binds in Run, maybe after /-/ready: probe until a
	// gauge shows in Prometheus, then send the lines that count.
	waitCond(t, 30*time.Second, "a probe through remote write", func() string {
		send("probe:1|g")
		_, _, err := prom.value("probe")
		if err != nil {
			return err.Error()
		}
		return ""
	})
	send("app.requests:3|c", "app.queue.depth:10|g", "app.queue.depth:+5|g")
	send("app.requests:2|c", "app.queue.depth:-3|g")
	expect := func(q string, want float64) {
		t.Helper()
		waitCond(t, 30*time.Second, q, func() string {
			v, lbls, err := prom.value(q)
			if err != nil {
				return err.Error()
			}
			if v != want || lbls["cluster"] != "e2e" {
				return fmt.Sprintf("%v %v, want %v with cluster=e2e", lbls, v, want)
			}
			return ""
		})
	}
	expect("app_requests_total", 5)
	expect("app_queue_depth", 12)

	// The outage. Sluice keeps gathering every second; the gauge changes
	// half-way through, so the outage's own values must arrive too.
	// A few seconds of the series before the outage, so that the first
	// step of the query_range below has samples to look back on.
	waitCond(t, 30*time.Second, "5 samples before the outage", func() string {
		v, _, err := prom.value("count_over_time(app_queue_depth[1m])")
		if err != nil || v < 5 {
			return fmt.Sprintf("%v samples (%v)", v, err)
		}
		return ""
	})
	// The outage lasts as long as it takes Sluice to fail several sends:
	// five retries before the gauge changes (the backoff has grown to
	// max_backoff = 1s by then), three after it, which span more than one
	// scrape_interval, so the value 34 is gathered into the WAL while
	// Prometheus is down.
	retries := func(n int, what string) {
		t.Helper()
		last, seen := -1.0, 0
		waitCond(t, 60*time.Second, what, func() string {
			_, body := a.get("/metrics")
			v := -1.0
			for _, l := range strings.Split(body, "\n") {
				if strings.HasPrefix(l, "sluice_remote_write_samples_total{") && strings.Contains(l, `result="retried"`) {
					f := strings.Fields(l)
					v, _ = strconv.ParseFloat(f[len(f)-1], 64)
				}
			}
			if v < 0 {
				return "no retried samples counter on /metrics"
			}
			if last >= 0 && v > last {
				seen++
			}
			last = v
			if seen < n {
				return fmt.Sprintf("%d of %d failed sends seen", seen, n)
			}
			return ""
		})
	}
	outageStart := time.Now()
	prom.stop()
	retries(5, "sends failing during the outage")
	send("app.queue.depth:34|g")
	retries(3, "more failed sends after the gauge changed")
	outageEnd := time.Now()
	prom.start()
	expect("app_queue_depth", 34)

	// Raw samples over the outage: none missing (a gap of more than 3
	// intervals would be a hole), and the value 34 gathered while
	// Prometheus was down is there with a timestamp inside the outage.
	from, to := outageStart.Add(-5*time.Second), outageEnd.Add(5*time.Second)
	var raw [][2]any
	waitCond(t, 30*time.Second, "the outage backfilled", func() string {
		var r struct {
			Data struct {
				Result []struct {
					Values [][2]any `json:"values"`
				} `json:"result"`
			} `json:"data"`
		}
		rangeSel := fmt.Sprintf("app_queue_depth[%ds]", int(time.Since(from).Seconds())+1)
		if err := prom.api("/api/v1/query", url.Values{"query": {rangeSel}}, &r); err != nil {
			return err.Error()
		}
		if len(r.Data.Result) != 1 {
			return fmt.Sprintf("%d series", len(r.Data.Result))
		}
		raw = r.Data.Result[0].Values
		var prev float64
		sawOutageValue := false
		for i, v := range r.Data.Result[0].Values {
			ts, _ := v[0].(float64)
			if ts > float64(to.Unix()) {
				break
			}
			if i > 0 && ts-prev > 3 {
				return fmt.Sprintf("hole of %.1fs after %s", ts-prev, time.Unix(int64(prev), 0).Format(time.TimeOnly))
			}
			if s, _ := v[1].(string); s == "34" && ts < float64(outageEnd.Unix()) {
				sawOutageValue = true
			}
			prev = ts
		}
		if prev < float64(outageEnd.Unix()) {
			return "not backfilled to the end of the outage yet"
		}
		if !sawOutageValue {
			return "the value set during the outage is missing"
		}
		return ""
	})
	// The same through query_range with step = scrape_interval.
	var r struct {
		Data struct {
			Result []struct {
				Values [][2]any `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := prom.api("/api/v1/query_range", url.Values{"query": {"app_queue_depth"},
		"start": {strconv.FormatInt(outageStart.Unix(), 10)}, "end": {strconv.FormatInt(outageEnd.Unix(), 10)}, "step": {"1"}}, &r); err != nil {
		t.Fatal(err)
	}
	steps := int(outageEnd.Unix()-outageStart.Unix()) + 1
	if len(r.Data.Result) != 1 || len(r.Data.Result[0].Values) != steps {
		t.Fatalf("query_range over the outage [%d, %d]: %d series, want 1 with %d steps: %v\nraw samples: %v", outageStart.Unix(), outageEnd.Unix(), len(r.Data.Result), steps, r.Data.Result, raw)
	}
	// Nothing was dropped or refused on the way.
	_, body := a.get("/metrics")
	for _, res := range []string{"dropped", "failed"} {
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, "sluice_remote_write_samples_total{") && strings.Contains(l, `result="`+res+`"`) && !strings.HasSuffix(l, " 0") {
				t.Errorf("self-metric: %s", l)
			}
		}
	}
	if !strings.Contains(body, `sluice_remote_write_samples_total{component_id="remote_write.central",endpoint="http://`) {
		t.Errorf("no remote_write self-metrics on /metrics")
	}
}
