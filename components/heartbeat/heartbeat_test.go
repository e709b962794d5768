package heartbeat

import (
	"context"
	"encoding/pem"
	"io"
	"log/slog"
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

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// secretPath is the credential part of the ping URLs in these tests: it
// must never show up in health, logs or errors.
const secretPath = "/ping/5ec2e7-token"

type fakeView struct {
	mu sync.Mutex
	m  map[string]pipeline.Health
}

func (v *fakeView) ComponentHealth() map[string]pipeline.Health {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make(map[string]pipeline.Health, len(v.m))
	for k, h := range v.m {
		out[k] = h
	}
	return out
}

func (v *fakeView) set(id string, s pipeline.HealthState, msg string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.m[id] = pipeline.Health{State: s, Message: msg}
}

// call is one request the monitor received.
type call struct {
	path, body string
	at         time.Time
}

// monitor is a real HTTP server recording calls; answer picks the status.
type monitor struct {
	srv    *httptest.Server
	mu     sync.Mutex
	calls  []call
	answer func(n int, path string) int
}

func newMonitor(t *testing.T) *monitor {
	m := &monitor{answer: func(int, string) int { return 200 }}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		m.mu.Lock()
		m.calls = append(m.calls, call{r.URL.Path, string(b), time.Now()})
		n, answer := len(m.calls), m.answer
		m.mu.Unlock()
		w.WriteHeader(answer(n, r.URL.Path))
	}))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *monitor) snapshot() []call {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]call(nil), m.calls...)
}

// waitCall waits for a call to satisfy ok and returns it.
func (m *monitor) waitCall(t *testing.T, what string, ok func(call) bool) call {
	t.Helper()
	var found call
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		for _, c := range m.snapshot() {
			if ok(c) {
				found = c
				return true
			}
		}
		return false
	}, "%s; calls: %+v", what, m.snapshot())
	return found
}

// args returns validated and provisioned arguments for url; edit may
// change them before validation. The interval is set after validation,
// below its minimum, to keep the tests short.
func args(t *testing.T, url string, interval time.Duration, edit func(*Arguments)) Arguments {
	t.Helper()
	var a Arguments
	a.SetDefaults()
	a.URL = url
	a.MinBackoff = 20 * time.Millisecond
	a.MaxBackoff = 50 * time.Millisecond
	if edit != nil {
		edit(&a)
	}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := a.Provision(nil); err != nil {
		t.Fatal(err)
	}
	a.Interval = interval
	if a.Timeout >= interval {
		a.Timeout = interval / 2
	}
	return a
}

type running struct {
	c   *Component
	reg *prometheus.Registry
	log *pipelinetest.Buffer
}

func start(t *testing.T, a Arguments, view pipeline.HealthView) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	log := &pipelinetest.Buffer{}
	c, err := Build(pipeline.Options[Exports]{ID: "heartbeat.hc", Logger: slog.New(slog.NewTextHandler(log, nil)),
		Registerer: reg, OnExports: func(Exports) {}, Health: view}, a)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return &running{c: c.(*Component), reg: reg, log: log}
}

func (r *running) counter(name string, labels ...string) float64 {
	m := r.c.metrics
	switch name {
	case "signals":
		return testutil.ToFloat64(m.sent.WithLabelValues(labels...))
	case "failures":
		return testutil.ToFloat64(m.failures.WithLabelValues(labels...))
	}
	panic(name)
}

func TestSuccessFailRecover(t *testing.T) {
	mon := newMonitor(t)
	view := &fakeView{m: map[string]pipeline.Health{
		"statsd_receiver.app": {State: pipeline.HealthHealthy},
		"postgres_source.db":  {State: pipeline.HealthHealthy},
		"heartbeat.hc":        {State: pipeline.HealthUnhealthy, Message: "itself: never watched"},
	}}
	start(t, args(t, mon.srv.URL+secretPath, 100*time.Millisecond, nil), view)
	mon.waitCall(t, "a success signal", func(c call) bool { return c.path == secretPath && c.body == "ok\n" })

	view.set("postgres_source.db", pipeline.HealthUnhealthy, "connection refused")
	c := mon.waitCall(t, "a fail signal", func(c call) bool { return c.path == secretPath+"/fail" })
	if c.body != "postgres_source.db: unhealthy: connection refused\n" {
		t.Errorf("fail body %q: want the unhealthy component, its state and message only", c.body)
	}
	failAt := len(mon.snapshot())
	view.set("postgres_source.db", pipeline.HealthHealthy, "")
	mon.waitCall(t, "a success signal after recovery", func(c call) bool { return c.path == secretPath && c.at.After(mon.snapshot()[failAt-1].at) })
}

func TestWatchedListAndMissingComponent(t *testing.T) {
	mon := newMonitor(t)
	view := &fakeView{m: map[string]pipeline.Health{
		"statsd_receiver.app": {State: pipeline.HealthHealthy},
		"cache.other":         {State: pipeline.HealthUnhealthy, Message: "not watched"},
		"relabel.starting":    {State: pipeline.HealthUnknown},
	}}
	a := args(t, mon.srv.URL+"/p", 100*time.Millisecond, func(a *Arguments) {
		a.Components = []string{"statsd_receiver.app", "relabel.starting"}
	})
	r := start(t, a, view)
	mon.waitCall(t, "success: the unhealthy component is not watched, unknown is not a failure", func(c call) bool { return c.path == "/p" })
	a.Components = []string{"statsd_receiver.app", "sink.gone"}
	p, err := r.c.Update(a)
	if err != nil {
		t.Fatal(err)
	}
	p.Commit()
	c := mon.waitCall(t, "a fail signal for the missing component", func(c call) bool { return c.path == "/p/fail" })
	if !strings.Contains(c.body, "sink.gone: not running") || strings.Contains(c.body, "cache.other") {
		t.Errorf("fail body %q", c.body)
	}
}

func TestRetriesWithBackoffThenDelivered(t *testing.T) {
	mon := newMonitor(t)
	mon.answer = func(n int, _ string) int {
		if n <= 2 {
			return 503
		}
		return 200
	}
	r := start(t, args(t, mon.srv.URL+secretPath, time.Second, nil), &fakeView{m: map[string]pipeline.Health{}})
	mon.waitCall(t, "the third attempt", func(c call) bool { return len(mon.snapshot()) >= 3 })
	waitFor(t, "delivered", func() bool { return r.counter("signals", signalSuccess, "delivered") == 1 })
	if got := r.counter("failures", reasonStatus); got != 2 {
		t.Errorf("failures{http_status} = %v, want 2", got)
	}
	if got := r.counter("signals", signalSuccess, "lost"); got != 0 {
		t.Errorf("signals{lost} = %v, want 0", got)
	}
	calls := mon.snapshot()
	if gap := calls[2].at.Sub(calls[1].at); gap < calls[1].at.Sub(calls[0].at) {
		t.Errorf("backoff did not grow: %v then %v", calls[1].at.Sub(calls[0].at), gap)
	}
	if h := r.c.Health(); h.State != pipeline.HealthHealthy {
		t.Errorf("health %+v after a delivered signal", h)
	}
}

func TestWrongURLNotRetriedAndNotShown(t *testing.T) {
	mon := newMonitor(t)
	mon.answer = func(int, string) int { return 404 }
	r := start(t, args(t, mon.srv.URL+secretPath, 200*time.Millisecond, nil), &fakeView{m: map[string]pipeline.Health{}})
	waitFor(t, "a lost signal", func() bool { return r.counter("signals", signalSuccess, "lost") >= 1 })
	if n := r.counter("failures", reasonStatus); n != r.counter("signals", signalSuccess, "lost") {
		t.Errorf("%v failed attempts for %v lost signals: a 404 must not be retried", n, r.counter("signals", signalSuccess, "lost"))
	}
	h := r.c.Health()
	if h.State != pipeline.HealthUnhealthy || !strings.Contains(h.Message, "HTTP 404") {
		t.Errorf("health %+v", h)
	}
	assertNoSecret(t, h.Message, r.log.String())
}

func TestTimeoutAndNetworkErrors(t *testing.T) {
	block := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(block)
	r := start(t, args(t, slow.URL+secretPath, 300*time.Millisecond, func(a *Arguments) { a.Retries = 0 }), &fakeView{m: map[string]pipeline.Health{}})
	waitFor(t, "a timeout", func() bool { return r.counter("failures", reasonTimeout) >= 1 })

	closed := httptest.NewServer(http.NotFoundHandler())
	u := closed.URL
	closed.Close()
	r2 := start(t, args(t, u+secretPath, 200*time.Millisecond, func(a *Arguments) { a.Retries = 1 }), &fakeView{m: map[string]pipeline.Health{}})
	waitFor(t, "two network failures", func() bool { return r2.counter("failures", reasonNetwork) >= 2 })
	h := r2.c.Health()
	if h.State != pipeline.HealthUnhealthy || !strings.Contains(h.Message, "connection refused") {
		t.Errorf("health %+v", h)
	}
	assertNoSecret(t, h.Message, r2.log.String(), r.c.Health().Message, r.log.String())
}

func TestStartSignal(t *testing.T) {
	mon := newMonitor(t)
	r := start(t, args(t, mon.srv.URL+"/p", time.Second, func(a *Arguments) { a.StartURL = mon.srv.URL + "/p/start" }), &fakeView{m: map[string]pipeline.Health{}})
	mon.waitCall(t, "the start signal", func(c call) bool { return c.path == "/p/start" })
	if first := mon.snapshot()[0]; first.path != "/p/start" {
		t.Errorf("first call %+v, want the start signal", first)
	}
	waitFor(t, "start counted", func() bool { return r.counter("signals", signalStart, "delivered") == 1 })
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Arguments)
		want string
	}{
		{"no scheme", func(a *Arguments) { a.URL = "hc-ping.com/" + secretPath }, "url"},
		{"bad fail_url", func(a *Arguments) { a.FailURL = "ftp://x" + secretPath }, "fail_url"},
		{"short interval", func(a *Arguments) { a.Interval = 100 * time.Millisecond }, "at least 1s"},
		{"timeout not below interval", func(a *Arguments) { a.Timeout = a.Interval }, "shorter than interval"},
		{"negative retries", func(a *Arguments) { a.Retries = -1 }, "between 0 and 10"},
		{"backoff", func(a *Arguments) { a.MaxBackoff = a.MinBackoff / 2 }, "min_backoff"},
		{"not an ID", func(a *Arguments) { a.Components = []string{"statsd_receiver"} }, "not a component ID"},
		{"twice", func(a *Arguments) { a.Components = []string{"a.b", "a.b"} }, "listed twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a Arguments
			a.SetDefaults()
			a.URL = "https://hc-ping.com" + secretPath
			tc.edit(&a)
			err := a.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			assertNoSecret(t, err.Error())
		})
	}
	var a Arguments
	a.SetDefaults()
	a.URL = "https://hc-ping.com" + secretPath + "/"
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	if a.failURL != "https://hc-ping.com"+secretPath+"/fail" {
		t.Errorf("default fail URL %q", a.failURL)
	}
}

func assertNoSecret(t *testing.T, texts ...string) {
	t.Helper()
	for _, s := range texts {
		if strings.Contains(s, "5ec2e7") {
			t.Errorf("the ping URL's credential leaked: %s", s)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	pipelinetest.Eventually(t, 10*time.Second, cond, "%s", what)
}

// TestBearerTokenFileAndTLS: the client is Prometheus' HTTP client config:
// a token file sent as a bearer token, an https monitor verified against
// ca_file.
func TestBearerTokenFileAndTLS(t *testing.T) {
	var mu sync.Mutex
	var gotAuth []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gotAuth = append(gotAuth, r.Header.Get("Authorization"))
		mu.Unlock()
	}))
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tok, []byte("hb-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := start(t, args(t, srv.URL+"/p", 200*time.Millisecond, func(a *Arguments) {
		a.BearerTokenFile = tok
		a.TLS = &TLS{CAFile: ca}
	}), &fakeView{m: map[string]pipeline.Health{}})
	waitFor(t, "a delivered signal over TLS", func() bool { return r.counter("signals", signalSuccess, "delivered") >= 1 })
	mu.Lock()
	defer mu.Unlock()
	if gotAuth[0] != "Bearer hb-token" {
		t.Errorf("Authorization %q, want the token file's content", gotAuth[0])
	}

	// Without the CA the same monitor is refused: the TLS check is real.
	r2 := start(t, args(t, srv.URL+"/p", 200*time.Millisecond, func(a *Arguments) { a.Retries = 0 }), &fakeView{m: map[string]pipeline.Health{}})
	waitFor(t, "a TLS failure", func() bool { return r2.counter("failures", reasonNetwork) >= 1 })
	if h := r2.c.Health(); !strings.Contains(h.Message, "certificate") {
		t.Errorf("health %+v, want a certificate error", h)
	}
}
