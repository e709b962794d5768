package main

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// TestRealPrometheus has a real Prometheus server (Debian's package, 2.42;
// `make test` installs it) scrape Sluice: statsd lines go in over UDP, a
// relabel adds a label, and two metrics_sink blocks serve the result, one on
// the agent's server (path mode) and one on its own port. The test waits,
// through Prometheus's HTTP API, until both targets are up and instant
// queries return the values the statsd lines make, and it fails on any scrape
// warning in Prometheus's log.
//
// Prometheus 2.42 cannot be told which exposition format to ask for
// (scrape_protocols came in 2.49): its Accept header prefers OpenMetrics 1.0.
// The test checks that this is what it got through the metadata Prometheus
// keeps per target: OpenMetrics names a counter family without its "_total"
// suffix ("app_requests" for the series app_requests_total), the Prometheus
// text format with it.
func TestRealPrometheus(t *testing.T) {
	prometheusBinary(t) // skip early, before starting anything

	statsdAddr := freeUDPAddr(t)
	sinkAddr := pipelinetest.FreeTCPAddr(t)
	a := startAgent(t, fmt.Sprintf(`
statsd_receiver "app" {
  listen_udp = %q

  mapping {
    match = "app.requests"
    name  = "app_requests_total"
  }
  mapping {
    match         = "app.request.duration"
    name          = "app_request_duration_seconds"
    observer_type = "histogram"
    histogram_options {
      buckets = [0.01, 0.1, 1]
    }
  }
}

relabel "app" {
  input = statsd_receiver.app.metrics
  rule {
    target_label = "team"
    replacement  = "payments"
  }
}

metrics_sink "prom" {
  inputs = [relabel.app.metrics, agent.metrics]
  path   = "/metrics/prom"
}

metrics_sink "own" {
  inputs = [relabel.app.metrics]
  listen = %q
}
`, statsdAddr, sinkAddr))

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
	// The receiver binds its socket in Run, possibly after /-/ready: send an
	// idempotent probe until it shows, then the lines whose values count.
	a.waitFor("the statsd receiver to receive", func() bool {
		send("probe:1|g")
		code, body := a.get("/metrics/prom")
		return code == 200 && strings.Contains(body, "\nprobe{")
	})
	// Lines of one datagram are applied in order; the gauge's set and
	// relative updates share one.
	send("app.requests:3|c", "app.errors:1|c", "app.queue.depth:10|g", "app.queue.depth:+5|g", "app.queue.depth:-3|g")
	send("app.requests:2|c", "app.errors:1|c", "app.request.duration:5|ms", "app.request.duration:50|ms", "app.request.duration:500|ms")
	a.scrapeHas("/metrics/prom", []string{`app_requests_total{team="payments"} 5`, `app_errors{team="payments"} 2`, `app_queue_depth{team="payments"} 12`, `app_request_duration_seconds_count{team="payments"} 3`}, nil)

	// Prometheus, on a free port, with its data in a temporary directory.
	promConfig := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: sluice_path
    metrics_path: /metrics/prom
    static_configs:
      - targets: [%q]
  - job_name: sluice_listen
    static_configs:
      - targets: [%q]
`, a.addr, sinkAddr)
	prom := newPromServer(t, promConfig, "--log.level", "debug")
	prom.start()

	// waitProm polls until check returns "", or fails with check's last
	// complaint.
	waitProm := func(what string, check func() string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			problem := check()
			if problem == "" {
				return
			}
			select {
			case err := <-prom.exited:
				prom.exited <- err
				t.Fatalf("prometheus exited (%v) while waiting for %s", err, what)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: %s", what, problem)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	waitProm("both targets up", func() string {
		var r struct {
			Data struct {
				ActiveTargets []struct {
					Labels    map[string]string `json:"labels"`
					ScrapeURL string            `json:"scrapeUrl"`
					Health    string            `json:"health"`
					LastError string            `json:"lastError"`
				} `json:"activeTargets"`
			} `json:"data"`
		}
		if err := prom.api("/api/v1/targets", url.Values{"state": {"active"}}, &r); err != nil {
			return err.Error()
		}
		up := map[string]bool{}
		for _, tg := range r.Data.ActiveTargets {
			if tg.Health != "up" || tg.LastError != "" {
				return fmt.Sprintf("%s (%s): health %q, lastError %q", tg.Labels["job"], tg.ScrapeURL, tg.Health, tg.LastError)
			}
			up[tg.Labels["job"]] = true
		}
		if !up["sluice_path"] || !up["sluice_listen"] || len(up) != 2 {
			return fmt.Sprintf("targets up: %v", up)
		}
		return ""
	})

	// query runs an instant query and returns its series.
	type sample struct {
		labels map[string]string
		value  float64
	}
	query := func(q string) ([]sample, error) {
		var r struct {
			Status string `json:"status"`
			Data   struct {
				ResultType string `json:"resultType"`
				Result     []struct {
					Metric map[string]string `json:"metric"`
					Value  [2]any            `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if err := prom.api("/api/v1/query", url.Values{"query": {q}}, &r); err != nil {
			return nil, err
		}
		if r.Status != "success" || r.Data.ResultType != "vector" {
			return nil, fmt.Errorf("%s: status %q, result type %q", q, r.Status, r.Data.ResultType)
		}
		var out []sample
		for _, s := range r.Data.Result {
			str, _ := s.Value[1].(string)
			v, err := strconv.ParseFloat(str, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: value %v: %v", q, s.Value[1], err)
			}
			out = append(out, sample{s.Metric, v})
		}
		return out, nil
	}
	// expect waits until q returns one series per job, each with the
	// wanted labels and value.
	expect := func(q string, jobs []string, labels map[string]string, want float64, tolerance float64) {
		t.Helper()
		waitProm(q, func() string {
			got, err := query(q)
			if err != nil {
				return err.Error()
			}
			if len(got) != len(jobs) {
				return fmt.Sprintf("%d series, want %d: %v", len(got), len(jobs), got)
			}
			seen := map[string]bool{}
			for _, s := range got {
				seen[s.labels["job"]] = true
				for k, v := range labels {
					if s.labels[k] != v {
						return fmt.Sprintf("series %v: %s=%q, want %q", s.labels, k, s.labels[k], v)
					}
				}
				if math.Abs(s.value-want) > tolerance {
					return fmt.Sprintf("series %v = %v, want %v", s.labels, s.value, want)
				}
			}
			for _, j := range jobs {
				if !seen[j] {
					return fmt.Sprintf("no series for job %s: %v", j, got)
				}
			}
			return ""
		})
	}
	t.Cleanup(func() {
		if t.Failed() {
			got, err := query(`count by (__name__, job) ({job=~"sluice_.*"})`)
			t.Logf("series in prometheus (%v):", err)
			for _, s := range got {
				t.Logf("  %s{job=%q}: %v", s.labels["__name__"], s.labels["job"], s.value)
			}
		}
	})
	both := []string{"sluice_path", "sluice_listen"}
	team := map[string]string{"team": "payments"}
	expect("app_requests_total", both, team, 5, 0)
	// An unmapped statsd counter keeps its name, without "_total".
	expect("app_errors", both, team, 2, 0)
	expect("app_queue_depth", both, team, 12, 0)
	expect("app_request_duration_seconds_count", both, team, 3, 0)
	expect(`app_request_duration_seconds_bucket{le="0.01"}`, both, team, 1, 0)
	expect(`app_request_duration_seconds_bucket{le="0.1"}`, both, team, 2, 0)
	expect(`app_request_duration_seconds_bucket{le="+Inf"}`, both, team, 3, 0)
	expect("app_request_duration_seconds_sum", both, team, 0.555, 1e-9)
	expect("up", both, nil, 1, 0)
	// agent.metrics goes through the path sink only, and not through the
	// relabel.
	expect(`sluice_build_info{team=""}`, []string{"sluice_path"}, nil, 1, 0)
	// Neither sink skipped anything.
	expect("sum by (job) (sluice_metrics_sink_gather_errors_total)", []string{"sluice_path"}, nil, 0, 0)

	// The types Prometheus recorded, by family name as the negotiated
	// format spells it: OpenMetrics.
	for _, job := range both {
		var r struct {
			Data []struct {
				Metric string `json:"metric"`
				Type   string `json:"type"`
			} `json:"data"`
		}
		if err := prom.api("/api/v1/targets/metadata", url.Values{"match_target": {fmt.Sprintf("{job=%q}", job)}}, &r); err != nil {
			t.Fatal(err)
		}
		types := map[string]string{}
		for _, m := range r.Data {
			types[m.Metric] = m.Type
		}
		for name, want := range map[string]string{
			"app_requests":                 "counter",
			"app_queue_depth":              "gauge",
			"app_request_duration_seconds": "histogram",
		} {
			if types[name] != want {
				t.Errorf("job %s: metadata type of %s = %q, want %q (all: %v)", job, name, types[name], want, types)
			}
		}
		// Not checked: app_errors, a counter whose name lacks "_total",
		// which client_golang's OpenMetrics encoder exposes as "unknown".
	}

	// Every scrape so far succeeded and was ingested without a complaint
	// (failed scrapes are logged at debug, rejected samples at warn).
	for _, l := range strings.Split(prom.out.String(), "\n") {
		if strings.Contains(l, `component="scrape manager"`) &&
			(strings.Contains(l, "level=warn") || strings.Contains(l, "level=error") || strings.Contains(l, `msg="Scrape failed"`)) {
			t.Errorf("prometheus logged: %s", l)
		}
	}
}

// freeUDPAddr returns a loopback UDP address that was free a moment ago.
func freeUDPAddr(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}
