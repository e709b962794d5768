package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// Issue 19, items 2, 10 and 11, through the built binary.

// health is a component's health from /api/v0/components.
func (a *agent) health(id string) (state, message string) {
	_, body := a.get("/api/v0/components")
	var comps []struct {
		ID     string `json:"id"`
		Health struct {
			State   string `json:"state"`
			Message string `json:"message"`
		} `json:"health"`
	}
	if err := json.Unmarshal([]byte(body), &comps); err != nil {
		return "", ""
	}
	for _, c := range comps {
		if c.ID == id {
			return c.Health.State, c.Health.Message
		}
	}
	return "", ""
}

// rwReceiver is a remote-write receiver on addr: it answers 503 until
// up, then stores the values of the series named name, in arrival order.
type rwReceiver struct {
	srv  *http.Server
	name string

	mu     sync.Mutex
	up     bool
	values []float64
}

func newRWReceiver(t *testing.T, l net.Listener, name string) *rwReceiver {
	rc := &rwReceiver{name: name}
	rc.srv = &http.Server{Handler: http.HandlerFunc(rc.serve)}
	go func() { _ = rc.srv.Serve(l) }()
	t.Cleanup(func() { rc.srv.Close() })
	return rc
}

func (rc *rwReceiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if !rc.up {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	raw, err := snappy.Decode(nil, body)
	var req prompb.WriteRequest
	if err == nil {
		err = req.Unmarshal(raw)
	}
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	for _, ts := range req.Timeseries {
		for _, l := range ts.Labels {
			if l.Name == "__name__" && l.Value == rc.name {
				for _, s := range ts.Samples {
					rc.values = append(rc.values, s.Value)
				}
			}
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (rc *rwReceiver) setUp(up bool) { rc.mu.Lock(); rc.up = up; rc.mu.Unlock() }

func (rc *rwReceiver) got() []float64 {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]float64(nil), rc.values...)
}

func contains(vs []float64, v float64) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

// mountTmpfs mounts a tmpfs of size at a new directory, or skips the
// test when mounting is not permitted (not root, no CAP_SYS_ADMIN, a
// container without mount rights): even under CI=true, since the test is
// only meaningful where a real small file system can be made.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s): the real full-disk test needs mount rights", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file in dir until the file system is full.
func fill(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			return p
		}
	}
}

// TestRemoteWriteWALOnFullDisk (item 2): remote_write's WAL on a real
// tmpfs filled to the brim. While full, gathers are dropped, counted and
// logged, and the component is unhealthy in the components API; once
// space is freed it writes its WAL again by itself (it used to fail every
// gather until a restart), and everything recorded before the fault and
// after it reaches the receiver, oldest first.
func TestRemoteWriteWALOnFullDisk(t *testing.T) {
	data := mountTmpfs(t, "2m")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rc := newRWReceiver(t, l, "level")
	udp := freeUDPAddr(t)
	a := launch(t, fmt.Sprintf(`
statsd_receiver "app" {
  listen_udp = %q
  listen_tcp = ""
}

remote_write "central" {
  inputs          = [statsd_receiver.app.metrics, agent.metrics]
  scrape_interval = "200ms"
  wal             = true
  endpoint {
    url = "http://%s/api/v1/write"
  }
  queue {
    batch_send_deadline = "50ms"
    min_backoff         = "50ms"
    max_backoff         = "200ms"
  }
}
`, udp, l.Addr()), launchOpts{storage: data}).waitReady()
	conn, err := net.Dial("udp", udp)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	metric := func(series string) float64 {
		_, body := a.get("/metrics")
		return metricValue(t, body, series)
	}
	const id = "remote_write.central"

	// The receiver is down: value 1 is recorded in the WAL only.
	fmt.Fprint(conn, "level:1|g\n")
	a.waitFor("value 1 recorded in the WAL while the receiver refuses", func() bool {
		return metric(`sluice_remote_write_samples_total{component_id="remote_write.central",endpoint="http://`+l.Addr().String()+`/api/v1/write",result="retried"}`) > 0 &&
			metric(`sluice_remote_write_wal_size_bytes{component_id="remote_write.central",endpoint="http://`+l.Addr().String()+`/api/v1/write"}`) > 0
	})

	filler := fill(t, data)
	fmt.Fprint(conn, "level:2|g\n")
	a.waitFor("gathers dropped and counted, the component unhealthy", func() bool {
		state, msg := a.health(id)
		return state == "unhealthy" && strings.Contains(msg, "WAL not writable") && strings.Contains(msg, "no space left on device") &&
			metric(`sluice_remote_write_wal_dropped_samples_total{component_id="remote_write.central",endpoint="http://`+l.Addr().String()+`/api/v1/write"}`) > 0
	})
	if !strings.Contains(a.out.String(), "writing WAL failed: dropping gathers until it can be written") {
		t.Errorf("the fault was not logged")
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(conn, "level:3|g\n")
	a.waitFor("the WAL written again without a restart", func() bool {
		return strings.Contains(a.out.String(), "WAL writable again")
	})
	rc.setUp(true)
	a.waitFor("values 1 and 3 at the receiver", func() bool {
		got := rc.got()
		return contains(got, 1) && contains(got, 3)
	})
	got := rc.got()
	first3 := 0
	for i, v := range got {
		if v == 3 {
			first3 = i
			break
		}
	}
	for _, v := range got[first3:] {
		if v == 1 {
			t.Errorf("value 1 arrived after value 3: not oldest first: %v", got)
			break
		}
	}
	a.waitFor("healthy again", func() bool { state, _ := a.health(id); return state == "healthy" })
}

// TestRemoteWriteUnreachableIsUnhealthy (item 10): a remote_write whose
// endpoint refuses every connection shows unhealthy in the components API
// after the threshold (max(10s, scrape_interval)), and healthy again once
// the endpoint is back. (It used to say healthy throughout.)
func TestRemoteWriteUnreachableIsUnhealthy(t *testing.T) {
	addr := pipelinetest.FreeTCPAddr(t) // nothing listens: connections are refused
	a := startAgent(t, fmt.Sprintf(`
remote_write "central" {
  inputs          = [agent.metrics]
  scrape_interval = "1s"
  endpoint {
    url = "http://%s/api/v1/write"
  }
}
`, addr))
	const id = "remote_write.central"
	if state, _ := a.health(id); state != "healthy" {
		t.Fatalf("health at start %q", state)
	}
	a.waitFor("unhealthy while the endpoint refuses connections", func() bool {
		state, msg := a.health(id)
		return state == "unhealthy" && strings.Contains(msg, "every send failed") && strings.Contains(msg, "connection refused")
	})
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	rc := newRWReceiver(t, l, "sluice_build_info")
	rc.setUp(true)
	a.waitFor("healthy again once the endpoint is back", func() bool {
		state, _ := a.health(id)
		return state == "healthy" && len(rc.got()) > 0
	})
}

// TestWebhookInvalidUTF8WithCacheDownstream (item 11): a push whose label
// value is not valid UTF-8 is refused (400) and counted; the receiver's
// valid series keep flowing through a cache downstream (the receiver used
// to answer 204, every gather of it failed from then on, and the cache
// stopped refreshing).
func TestWebhookInvalidUTF8WithCacheDownstream(t *testing.T) {
	a := startAgent(t, `
webhook_receiver "push" {
  auth { tokens = ["t0ken"] }
  metric "jobs_total" {
    type   = "counter"
    labels = ["project"]
  }
}

cache "push" {
  input            = webhook_receiver.push.metrics
  refresh_interval = "100ms"
}

metrics_sink "default" {
  inputs = [cache.push.metrics]
  path   = "/metrics/push"
}
`)
	push := func(label string) int {
		req, _ := http.NewRequest("POST", "http://"+a.addr+"/push/push/api/jobs_total/inc",
			strings.NewReader(url.Values{"labels": {label}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer t0ken")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	a.waitFor("the receiver mounted", func() bool { return push("first") == 204 })
	if code := push("bad\xff"); code != 400 {
		t.Fatalf("invalid UTF-8 label value answered %d, want 400", code)
	}
	if code := push("second"); code != 204 {
		t.Fatalf("valid push after the bad one: %d", code)
	}
	a.scrapeHas("/metrics/push", []string{`jobs_total{project="first"} 1`, `jobs_total{project="second"} 1`}, nil)
	_, self := a.get("/metrics")
	if n := metricValue(t, self, `sluice_webhook_requests_total{code="400",component_id="webhook_receiver.push",route="api"}`); n != 1 {
		t.Errorf("400s counted: %v", n)
	}
	if n := metricValue(t, self, `sluice_cache_refresh_failures_total{component_id="cache.push",reason="error"}`); n != 0 {
		t.Errorf("cache refresh failures: %v", n)
	}
}
