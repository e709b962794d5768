package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testing/pgtest"
)

// pingRecorder is the outside monitor: a real HTTP server that records
// when each signal arrived.
type pingRecorder struct {
	mu    sync.Mutex
	calls []ping
}

type ping struct {
	path, body string
	at         time.Time
}

func (p *pingRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	p.calls = append(p.calls, ping{r.URL.Path, string(b), time.Now()})
	p.mu.Unlock()
}

func (p *pingRecorder) since(t time.Time) []ping {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []ping
	for _, c := range p.calls {
		if !c.at.Before(t) {
			out = append(out, c)
		}
	}
	return out
}

// waitPing waits for the first call to path at or after t.
func (a *agent) waitPing(rec *pingRecorder, t time.Time, path string) ping {
	a.t.Helper()
	var found ping
	a.waitFor("a call to "+path, func() bool {
		for _, c := range rec.since(t) {
			if c.path == path {
				found = c
				return true
			}
		}
		return false
	})
	return found
}

// componentState reads a component's health state from the agent's API.
func (a *agent) componentState(id string) string {
	_, body := a.get("/api/v0/components")
	var cs []struct {
		ID     string `json:"id"`
		Health struct {
			State string `json:"state"`
		} `json:"health"`
	}
	if json.Unmarshal([]byte(body), &cs) != nil {
		return ""
	}
	for _, c := range cs {
		if c.ID == id {
			return c.Health.State
		}
	}
	return ""
}

// TestHeartbeatThroughBinary runs the heartbeat component in the binary
// against a real HTTP server, watching a postgres_source on a real
// PostgreSQL that the test stops and starts again: success signals every
// interval (±10%), a fail signal naming the source within one interval of
// it going unhealthy, a success signal within one interval of its
// recovery. The ping URL's secret never appears in the agent's output,
// API or metrics.
func TestHeartbeatThroughBinary(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{})
	rec := &pingRecorder{}
	mon := httptest.NewServer(rec)
	defer mon.Close()
	const secret = "/ping/0b1e5e-heartbeat-secret"
	const interval = time.Second
	const tolerance = interval / 10

	cfg := fmt.Sprintf(`
postgres_source "db" {
  dsn              = %q
  default_interval = "200ms"
}

heartbeat "hc" {
  url        = %q
  start_url  = %q
  interval   = %q
  timeout    = "500ms"
  components = ["postgres_source.db"]
}
`, pg.DSN("postgres"), mon.URL+secret, mon.URL+secret+"/start", interval)
	began := time.Now()
	a := startAgent(t, cfg)

	// Healthy: a start signal, then a success signal every interval.
	a.waitFor("5 success signals", func() bool { return countPath(rec.since(began), secret) >= 5 })
	calls := rec.since(began)
	if calls[0].path != secret+"/start" {
		t.Errorf("first signal %q, want the start signal", calls[0].path)
	}
	var ok []time.Time
	for _, c := range calls {
		if c.path == secret {
			ok = append(ok, c.at)
		}
	}
	for i := 1; i < len(ok); i++ {
		gap := ok[i].Sub(ok[i-1])
		t.Logf("success signal gap %d: %v", i, gap)
		if gap < interval-tolerance || gap > interval+tolerance {
			t.Errorf("gap %d between success signals %v, want %v ±10%%", i, gap, interval)
		}
	}

	// PostgreSQL stops: the source turns unhealthy, a fail signal follows.
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	a.waitFor("postgres_source.db unhealthy", func() bool { return a.componentState("postgres_source.db") == "unhealthy" })
	unhealthyAt := time.Now()
	fail := a.waitPing(rec, unhealthyAt.Add(-interval), secret+"/fail")
	t.Logf("fail signal %v after the API showed the source unhealthy", fail.at.Sub(unhealthyAt))
	if d := fail.at.Sub(unhealthyAt); d > interval+tolerance {
		t.Errorf("fail signal %v after the source went unhealthy, want within one interval (%v)", d, interval)
	}
	if !strings.HasPrefix(fail.body, "postgres_source.db: unhealthy: cannot reach PostgreSQL") {
		t.Errorf("fail body %q: want the component, its state and its health message", fail.body)
	}

	// PostgreSQL is back: success signals again.
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	a.waitFor("postgres_source.db healthy", func() bool { return a.componentState("postgres_source.db") == "healthy" })
	healthyAt := time.Now()
	back := a.waitPing(rec, healthyAt, secret)
	t.Logf("success signal %v after the API showed the source healthy", back.at.Sub(healthyAt))
	if d := back.at.Sub(healthyAt); d > interval+tolerance {
		t.Errorf("success signal %v after recovery, want within one interval (%v)", d, interval)
	}

	_, metrics := a.get("/metrics")
	for _, want := range []string{
		`sluice_heartbeat_signals_total{component_id="heartbeat.hc",outcome="delivered",signal="fail"}`,
		`sluice_heartbeat_signals_total{component_id="heartbeat.hc",outcome="delivered",signal="start"} 1`,
		`sluice_heartbeat_last_success_timestamp_seconds{component_id="heartbeat.hc"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	_, api := a.get("/api/v0/components")
	code, page := a.get("/component/heartbeat.hc")
	if code != 200 || !strings.Contains(page, "heartbeat.hc") {
		t.Errorf("status UI page of the heartbeat: %d", code)
	}
	for what, text := range map[string]string{"output": a.out.String(), "metrics": metrics, "API": api, "UI page": page} {
		if strings.Contains(text, "0b1e5e") {
			t.Errorf("the ping URL's secret is in the agent's %s", what)
		}
	}
}

func countPath(calls []ping, path string) int {
	n := 0
	for _, c := range calls {
		if c.path == path {
			n++
		}
	}
	return n
}
