package remotewrite

import (
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	_ "github.com/sluicehq/sluice/components/statsd"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
	"github.com/sluicehq/sluice/runtime"
)

// selfMetric sums a self-metric's series whose labels include match.
func selfMetric(t *testing.T, h *pipelinetest.Harness, name string, match map[string]string) float64 {
	t.Helper()
	fams, err := h.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range fams {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.Metric {
			have := map[string]string{}
			for _, l := range m.Label {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range match {
				if have[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

func result(r string) map[string]string { return map[string]string{"result": r} }

// testInputs is a registry with one series of each type.
func testInputs(t *testing.T) (*prometheus.Registry, *prometheus.GaugeVec) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "app_requests_total", Help: "h"})
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "app_queue_depth", Help: "h"}, []string{"queue"})
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "app_latency_seconds", Help: "h", Buckets: []float64{0.1, 1}})
	s := prometheus.NewSummary(prometheus.SummaryOpts{Name: "app_size_bytes", Help: "h", Objectives: map[float64]float64{0.5: 0.05}})
	reg.MustRegister(c, g, h, s)
	c.Add(5)
	g.WithLabelValues("a").Set(12)
	g.WithLabelValues("b").Set(3)
	h.Observe(0.05)
	h.Observe(0.5)
	h.Observe(5)
	s.Observe(100)
	return reg, g
}

func TestSendsConvertedSamples(t *testing.T) {
	rc := newReceiver(t, false)
	reg, _ := testInputs(t)
	h := pipelinetest.New(t, "remote_write", fmt.Sprintf(`
  inputs          = [test.app]
  scrape_interval = "100ms"
  external_labels = { cluster = "eu1", queue = "ignored-when-set" }
  endpoint {
    url = %q
  }
  queue {
    batch_send_deadline = "50ms"
  }
`, rc.url()), pipelinetest.WithGatherer("app", reg))
	h.Start()
	want := map[string]float64{
		`app_requests_total{cluster="eu1",queue="ignored-when-set"}`:                   5,
		`app_queue_depth{cluster="eu1",queue="a"}`:                                     12,
		`app_queue_depth{cluster="eu1",queue="b"}`:                                     3,
		`app_latency_seconds_bucket{cluster="eu1",le="0.1",queue="ignored-when-set"}`:  1,
		`app_latency_seconds_bucket{cluster="eu1",le="1",queue="ignored-when-set"}`:    2,
		`app_latency_seconds_bucket{cluster="eu1",le="+Inf",queue="ignored-when-set"}`: 3,
		`app_latency_seconds_sum{cluster="eu1",queue="ignored-when-set"}`:              5.55,
		`app_latency_seconds_count{cluster="eu1",queue="ignored-when-set"}`:            3,
		`app_size_bytes{cluster="eu1",quantile="0.5",queue="ignored-when-set"}`:        100,
		`app_size_bytes_sum{cluster="eu1",queue="ignored-when-set"}`:                   100,
		`app_size_bytes_count{cluster="eu1",queue="ignored-when-set"}`:                 1,
	}
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		got := rc.latest()
		for k, v := range want {
			if g, ok := got[k]; !ok || g != v {
				return false
			}
		}
		return true
	}, "converted series %v", want)
	got := rc.latest()
	if len(got) != len(want) {
		t.Errorf("got %d series, want %d: %v", len(got), len(want), got)
	}
	for name, v := range map[string]string{
		"Content-Encoding":                  "snappy",
		"Content-Type":                      "application/x-protobuf",
		"X-Prometheus-Remote-Write-Version": "0.1.0",
	} {
		if g := rc.header(name); g != v {
			t.Errorf("header %s = %q, want %q", name, g, v)
		}
	}
	if ua := rc.header("User-Agent"); !strings.HasPrefix(ua, "sluice/") {
		t.Errorf("User-Agent = %q", ua)
	}
	pipelinetest.Eventually(t, 5*time.Second, func() bool {
		return selfMetric(t, h, "sluice_remote_write_samples_total", result("sent")) >= float64(len(want)) &&
			selfMetric(t, h, "sluice_remote_write_highest_sent_timestamp_seconds", nil) > float64(time.Now().Add(-time.Minute).Unix())
	}, "sent and highest timestamp self-metrics")
	// Timestamps are the gather time, per series in increasing order.
	s := rc.samples(`app_queue_depth{cluster="eu1",queue="a"}`)
	for i := 1; i < len(s); i++ {
		if s[i].Timestamp <= s[i-1].Timestamp {
			t.Fatalf("samples out of order: %v", s)
		}
	}
}

func TestRetriesServerErrorsThenSends(t *testing.T) {
	rc := newReceiver(t, false)
	rc.setRespond(func(n int, _ *http.Request) (int, http.Header) {
		if n < 3 {
			return 503, nil
		}
		return 200, nil
	})
	reg, _ := testInputs(t)
	h := pipelinetest.New(t, "remote_write", fmt.Sprintf(`
  inputs          = [test.app]
  scrape_interval = "1h"
  endpoint { url = %q }
  queue {
    batch_send_deadline = "20ms"
    min_backoff         = "10ms"
    max_backoff         = "20ms"
  }
`, rc.url()), pipelinetest.WithGatherer("app", reg))
	h.Start()
	pipelinetest.Eventually(t, 10*time.Second, func() bool { return rc.total() == 11 }, "the 11 samples of one gather after 3 failures")
	if r := selfMetric(t, h, "sluice_remote_write_samples_total", result("retried")); r < 3 {
		t.Errorf("retried = %v, want at least 3 attempts counted", r)
	}
	if f := selfMetric(t, h, "sluice_remote_write_samples_total", result("failed")); f != 0 {
		t.Errorf("failed = %v", f)
	}
}

func TestHonoursRetryAfterOn429(t *testing.T) {
	rc := newReceiver(t, false)
	var first, second time.Time
	rc.setRespond(func(n int, _ *http.Request) (int, http.Header) {
		if n == 0 {
			first = time.Now()
			return 429, http.Header{"Retry-After": {"1"}}
		}
		if n == 1 {
			second = time.Now()
		}
		return 200, nil
	})
	reg, _ := testInputs(t)
	h := pipelinetest.New(t, "remote_write", fmt.Sprintf(`
  inputs          = [test.app]
  scrape_interval = "1h"
  endpoint { url = %q }
  queue {
    batch_send_deadline = "20ms"
    min_backoff         = "10ms"
    max_backoff         = "10ms"
  }
`, rc.url()), pipelinetest.WithGatherer("app", reg))
	h.Start()
	pipelinetest.Eventually(t, 10*time.Second, func() bool { return rc.total() == 11 }, "the samples after a 429")
	// With a 10ms backoff, only Retry-After explains a wait of a second.
	if gap := second.Sub(first); gap < time.Second {
		t.Errorf("retried %v after a 429 with Retry-After: 1", gap)
	}
	if r := selfMetric(t, h, "sluice_remote_write_samples_total", result("retried")); r != 11 {
		t.Errorf("retried = %v, want 11", r)
	}
}

func TestDropsOnClientError(t *testing.T) {
	rc := newReceiver(t, false)
	rc.setRespond(func(int, *http.Request) (int, http.Header) { return 400, nil })
	reg, _ := testInputs(t)
	h := pipelinetest.New(t, "remote_write", fmt.Sprintf(`
  inputs          = [test.app]
  scrape_interval = "1h"
  endpoint { url = %q }
  queue {
    batch_send_deadline = "20ms"
    min_backoff         = "10ms"
  }
`, rc.url()), pipelinetest.WithGatherer("app", reg))
	h.Start()
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		return selfMetric(t, h, "sluice_remote_write_samples_total", result("failed")) == 11
	}, "11 samples failed")
	if n := rc.numRequests(); n != 1 {
		t.Errorf("%d requests: a 400 was retried", n)
	}
	if r := selfMetric(t, h, "sluice_remote_write_samples_total", result("retried")); r != 0 {
		t.Errorf("retried = %v", r)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"3":                             3 * time.Second,
		"-1":                            0,
		"soon":                          0,
		"99999":                         maxRetryAfter,
		"Thu, 01 Jan 2026 00:00:10 GMT": 10 * time.Second,
		"Wed, 31 Dec 2025 00:00:10 GMT": 0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTLSWithCAFile(t *testing.T) {
	rc := newReceiver(t, true)
	dir := t.TempDir()
	ca := writeFile(t, dir, "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rc.srv.Certificate().Raw})))
	reg, _ := testInputs(t)

	// Without the CA the server is not trusted: nothing is accepted.
	bad := pipelinetest.New(t, "remote_write", fmt.Sprintf(`
  inputs          = [test.app]
  scrape_interval = "1h"
  endpoint { url = %q }
  queue {
    batch_send_deadline = "20ms"
    min_backoff         = "10ms"
    max_backoff         = "50ms"
  }
`, rc.url()), pipelinetest.WithGatherer("app", reg))
	bad.Start()
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		return selfMetric(t, bad, "sluice_remote_write_samples_total", result("retried")) > 0
	}, "an untrusted server retried")
	if rc.numRequests() != 0 {
		t.Fatal("a request got through TLS without the CA")
	}
	_ = bad.Stop()

	h := pipelinetest.New(t, "remote_write", fmt.Sprintf(`
  inputs          = [test.app]
  scrape_interval = "1h"
  endpoint {
    url = %q
    tls { ca_file = %q }
  }
  queue { batch_send_deadline = "20ms" }
`, rc.url(), ca), pipelinetest.WithGatherer("app", reg))
	h.Start()
	pipelinetest.Eventually(t, 10*time.Second, func() bool { return rc.total() == 11 }, "samples over TLS")

	// A CA file that is not a certificate is a config error.
	bogus := writeFile(t, dir, "bogus.pem", "not a certificate")
	if _, diags := pipelinetest.Decode(t, "remote_write", fmt.Sprintf(`
  inputs = [test.app]
  endpoint {
    url = %q
    tls { ca_file = %q }
  }
`, rc.url(), bogus), pipelinetest.WithGatherer("app", reg)); !diags.HasErrors() {
		t.Error("a bogus ca_file was accepted")
	}
}

func TestBearerTokenFileAndBasicAuth(t *testing.T) {
	dir := t.TempDir()
	tokenFile := writeFile(t, dir, "token", "s3cr3t-token-1\n")
	passFile := writeFile(t, dir, "pass", "pa55w0rd")
	rc := newReceiver(t, false)
	rc.setRespond(func(_ int, r *http.Request) (int, http.Header) {
		if r.Header.Get("Authorization") == "Bearer s3cr3t-token-2" {
			return 200, nil
		}
		if u, p, ok := r.BasicAuth(); ok && u == "agent" && p == "pa55w0rd" {
			return 200, nil
		}
		return 401, nil
	})
	reg, _ := testInputs(t)
	h := pipelinetest.New(t, "remote_write", fmt.Sprintf(`
  inputs          = [test.app]
  scrape_interval = "100ms"
  endpoint {
    url               = %q
    bearer_token_file = %q
  }
  queue { batch_send_deadline = "20ms" }
`, rc.url(), tokenFile), pipelinetest.WithGatherer("app", reg))
	h.Start()
	// The first token is refused (401: dropped, not retried) ...
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		return selfMetric(t, h, "sluice_remote_write_samples_total", result("failed")) > 0
	}, "a refused token")
	// ... and the file is read again for every request, as Prometheus does.
	writeFile(t, dir, "token", "s3cr3t-token-2\n")
	pipelinetest.Eventually(t, 10*time.Second, func() bool { return rc.total() > 0 }, "samples with the new token")
	_ = h.Stop()

	rc2 := newReceiver(t, false)
	rc2.setRespond(rc.respond)
	h2 := pipelinetest.New(t, "remote_write", fmt.Sprintf(`
  inputs          = [test.app]
  scrape_interval = "1h"
  endpoint {
    url = %q
    basic_auth {
      username      = "agent"
      password_file = %q
    }
  }
  queue { batch_send_deadline = "20ms" }
`, rc2.url(), passFile), pipelinetest.WithGatherer("app", reg))
	h2.Start()
	pipelinetest.Eventually(t, 10*time.Second, func() bool { return rc2.total() == 11 }, "samples with basic auth")
}

func TestStalenessMarkers(t *testing.T) {
	rc := newReceiver(t, false)
	reg, g := testInputs(t)
	h := pipelinetest.New(t, "remote_write", fmt.Sprintf(`
  inputs          = [test.app]
  scrape_interval = "100ms"
  endpoint { url = %q }
  queue { batch_send_deadline = "20ms" }
`, rc.url()), pipelinetest.WithGatherer("app", reg))
	h.Start()
	const gone = `app_queue_depth{queue="b"}`
	pipelinetest.Eventually(t, 10*time.Second, func() bool { return len(rc.samples(gone)) > 0 }, "the series")
	g.DeleteLabelValues("b")
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		s := rc.samples(gone)
		return isStale(s[len(s)-1].Value)
	}, "a staleness marker for the deleted series")
	// Exactly one marker, and the series that stays never gets one.
	markers := 0
	for _, s := range rc.samples(gone) {
		if isStale(s.Value) {
			markers++
		}
	}
	if markers != 1 {
		t.Errorf("%d staleness markers", markers)
	}
	for _, s := range rc.samples(`app_queue_depth{queue="a"}`) {
		if isStale(s.Value) {
			t.Error("a staleness marker for a live series")
		}
	}
}

func TestEndpointsAreIndependent(t *testing.T) {
	down := newReceiver(t, false)
	down.setRespond(func(int, *http.Request) (int, http.Header) { return 503, nil })
	up := newReceiver(t, false)
	reg, _ := testInputs(t)
	h := pipelinetest.New(t, "remote_write", fmt.Sprintf(`
  inputs          = [test.app]
  scrape_interval = "100ms"
  endpoint {
    name = "down"
    url  = %q
  }
  endpoint {
    name = "up"
    url  = %q
  }
  queue {
    batch_send_deadline = "20ms"
    max_backoff         = "1s"
  }
`, down.url(), up.url()), pipelinetest.WithGatherer("app", reg))
	h.Start()
	pipelinetest.Eventually(t, 10*time.Second, func() bool { return up.total() >= 55 }, "five gathers at the healthy endpoint")
	if s := selfMetric(t, h, "sluice_remote_write_samples_total", map[string]string{"endpoint": "down", "result": "sent"}); s != 0 {
		t.Errorf("down endpoint sent %v", s)
	}
	if r := selfMetric(t, h, "sluice_remote_write_samples_total", map[string]string{"endpoint": "down", "result": "retried"}); r == 0 {
		t.Error("down endpoint never retried")
	}
}

func TestBadConfig(t *testing.T) {
	reg := prometheus.NewRegistry()
	for name, body := range map[string]string{
		"no endpoint":     `inputs = [test.app]`,
		"bad url":         `inputs = [test.app]` + "\n" + `endpoint { url = "ftp://x" }`,
		"no inputs":       `inputs = []` + "\n" + `endpoint { url = "http://x/" }`,
		"bad size":        `inputs = [test.app]` + "\nmax_wal_size = \"lots\"\n" + `endpoint { url = "http://x/" }`,
		"bad label":       `inputs = [test.app]` + "\nexternal_labels = { \"a-b\" = \"x\" }\n" + `endpoint { url = "http://x/" }`,
		"two auths":       `inputs = [test.app]` + "\n" + `endpoint {` + "\n" + `url = "http://x/"` + "\n" + `bearer_token = "t"` + "\n" + `basic_auth { username = "u" }` + "\n}",
		"same endpoint":   `inputs = [test.app]` + "\n" + `endpoint { url = "http://x/" }` + "\n" + `endpoint { url = "http://x/" }`,
		"backoffs":        `inputs = [test.app]` + "\n" + `endpoint { url = "http://x/" }` + "\nqueue {\nmin_backoff = \"1s\"\nmax_backoff = \"10ms\"\n}",
		"zero capacity":   `inputs = [test.app]` + "\n" + `endpoint { url = "http://x/" }` + "\nqueue { capacity = 0 }",
		"reserved header": `inputs = [test.app]` + "\n" + `endpoint {` + "\n" + `url = "http://x/"` + "\n" + `headers = { "User-Agent" = "x" }` + "\n}",
		"tiny interval":   `inputs = [test.app]` + "\nscrape_interval = \"1ms\"\n" + `endpoint { url = "http://x/" }`,
	} {
		if _, diags := pipelinetest.Decode(t, "remote_write", body, pipelinetest.WithGatherer("app", reg)); !diags.HasErrors() {
			t.Errorf("%s: accepted:\n%s", name, body)
		}
	}
}

// TestSecretsNotInDiagnostics: a rejected config names the problem, not the
// token, the password or the header values.
func TestSecretsNotInDiagnostics(t *testing.T) {
	src := `
statsd_receiver "app" {
  listen_udp = "127.0.0.1:0"
}
remote_write "x" {
  inputs = [statsd_receiver.app.metrics]
  endpoint {
    url          = "http://a/"
    bearer_token = "tok-SUPERSECRET-1"
    headers      = { "X-Scope-OrgID" = "hdr-SUPERSECRET-2" }
    basic_auth {
      username = "u"
      password = "pw-SUPERSECRET-4"
    }
  }
  endpoint {
    url = "ftp://b/"
    basic_auth {
      username = "u"
      password = "pw-SUPERSECRET-3"
    }
  }
}
`
	err := runtime.Validate("test.hcl", []byte(src), func(string) (string, bool) { return "", false })
	if err == nil {
		t.Fatal("an invalid config validated")
	}
	if strings.Contains(err.Error(), "SUPERSECRET") {
		t.Fatalf("a secret in the diagnostics:\n%v", err)
	}
	if !strings.Contains(err.Error(), "url") {
		t.Fatalf("the diagnostics do not name the bad url:\n%v", err)
	}
}

// slowGatherer makes every other Gather take longer than the scrape
// interval (a fault injected into the input, not a wait in the test).
type slowGatherer struct {
	prometheus.Gatherer
	calls atomic.Int64
	delay time.Duration
}

func (g *slowGatherer) Gather() ([]*dto.MetricFamily, error) {
	if g.calls.Add(1)%2 == 1 {
		time.Sleep(g.delay)
	}
	return g.Gatherer.Gather()
}

// TestSlowGatherNeverRepeatsATimestamp: a gather slower than the interval
// leaves a tick due; gathering again right away would stamp a second
// sample in the same millisecond on every series (a duplicate a receiver
// refuses). The tick is skipped and counted instead, and every series'
// timestamps strictly increase.
func TestSlowGatherNeverRepeatsATimestamp(t *testing.T) {
	rc := newReceiver(t, false)
	reg, _ := testInputs(t)
	slow := &slowGatherer{Gatherer: reg, delay: 150 * time.Millisecond}
	h := pipelinetest.New(t, "remote_write", fmt.Sprintf(`
  inputs          = [test.app]
  scrape_interval = "100ms"
  endpoint { url = %q }
  queue { batch_send_deadline = "20ms" }
`, rc.url()), pipelinetest.WithGatherer("app", slow))
	h.Start()
	const key = `app_queue_depth{queue="a"}`
	pipelinetest.Eventually(t, 20*time.Second, func() bool { return len(rc.samples(key)) >= 8 }, "8 gathers")
	s := rc.samples(key)
	for i := 1; i < len(s); i++ {
		if s[i].Timestamp <= s[i-1].Timestamp {
			t.Fatalf("sample %d stamped %d after %d: %v", i, s[i].Timestamp, s[i-1].Timestamp, s)
		}
	}
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		return selfMetric(t, h, "sluice_remote_write_gathers_skipped_total", nil) >= 1
	}, "a tick skipped after a slow gather")
}
