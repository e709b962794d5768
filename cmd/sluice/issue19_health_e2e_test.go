package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// Issue 19, items 2, 10 and 11, through the built binary.

// TestRemoteWriteWALOnFullDisk (item 2): remote_write's WAL on a real
// tmpfs filled to the brim, its receiver (a real Prometheus) not started
// yet. While the disk is full, gathers are dropped, counted and logged,
// and the component is unhealthy in the components API; once space is
// freed it writes its WAL again by itself (it used to fail every gather
// until a restart), and what was recorded before the fault and after it
// both reach Prometheus (which takes samples in order only).
func TestRemoteWriteWALOnFullDisk(t *testing.T) {
	data := smallFS(t, 2048)
	prom := newPromServer(t, "global:\n  scrape_interval: 1m\n", "--web.enable-remote-write-receiver")
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
    name = "prom"
    url  = "http://%s/api/v1/write"
  }
  queue {
    batch_send_deadline = "50ms"
    min_backoff         = "50ms"
    max_backoff         = "200ms"
  }
}
`, udp, prom.addr), launchOpts{storage: data}).waitReady()
	conn, err := net.Dial("udp", udp)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	metric := func(name string) float64 {
		return a.selfMetric(name + `{component_id="remote_write.central",endpoint="prom"}`)
	}
	const id = "remote_write.central"

	// Prometheus is not running: value 1 is recorded in the WAL only.
	fmt.Fprint(conn, "level:1|g\n")
	a.waitFor("value 1 recorded in the WAL while the endpoint is down", func() bool {
		return a.selfMetric(`sluice_remote_write_samples_total{component_id="remote_write.central",endpoint="prom",result="retried"}`) > 0 &&
			metric("sluice_remote_write_wal_size_bytes") > 0
	})

	filler := fill(t, data)
	fmt.Fprint(conn, "level:2|g\n")
	a.waitFor("gathers dropped and counted, the component unhealthy", func() bool {
		h := a.health(id)
		return strings.HasPrefix(h, "unhealthy: ") && strings.Contains(h, "WAL not writable") && strings.Contains(h, "no space left on device") &&
			metric("sluice_remote_write_wal_dropped_samples_total") > 0
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
	prom.start()
	waitCond(t, 60*time.Second, "values 1 (before the fault) and 3 (after it) in Prometheus", func() string {
		lo, _, err1 := prom.value("min_over_time(level[1h])")
		hi, _, err2 := prom.value("max_over_time(level[1h])")
		if err := errors.Join(err1, err2); err != nil {
			return err.Error()
		}
		if lo != 1 || hi != 3 {
			return fmt.Sprintf("min %v, max %v", lo, hi)
		}
		return ""
	})
	a.waitFor("healthy again", func() bool { return strings.HasPrefix(a.health(id), "healthy") })
}

// TestRemoteWriteUnreachableIsUnhealthy (item 10): a remote_write whose
// endpoint (a real Prometheus, not started yet) refuses every connection
// shows unhealthy in the components API after the threshold
// (max(10s, scrape_interval)), and healthy again once Prometheus runs and
// has the samples. (It used to say healthy throughout.)
func TestRemoteWriteUnreachableIsUnhealthy(t *testing.T) {
	prom := newPromServer(t, "global:\n  scrape_interval: 1m\n", "--web.enable-remote-write-receiver")
	a := startAgent(t, fmt.Sprintf(`
remote_write "central" {
  inputs          = [agent.metrics]
  scrape_interval = "1s"
  endpoint {
    url = "http://%s/api/v1/write"
  }
}
`, prom.addr))
	const id = "remote_write.central"
	if h := a.health(id); !strings.HasPrefix(h, "healthy") {
		t.Fatalf("health at start %q", h)
	}
	a.waitFor("unhealthy while the endpoint refuses connections", func() bool {
		h := a.health(id)
		return strings.HasPrefix(h, "unhealthy: ") && strings.Contains(h, "every send failed") && strings.Contains(h, "connection refused")
	})
	prom.start()
	waitCond(t, 30*time.Second, "healthy again once Prometheus runs", func() string {
		if _, _, err := prom.value("sluice_build_info"); err != nil {
			return err.Error()
		}
		if h := a.health(id); !strings.HasPrefix(h, "healthy") {
			return h
		}
		return ""
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
