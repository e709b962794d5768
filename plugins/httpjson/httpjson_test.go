package httpjson_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
	"github.com/sluicehq/sluice/plugins/httpjson"
)

// api is a test server whose handler tests swap while it runs.
type api struct {
	*httptest.Server
	h        atomic.Pointer[http.HandlerFunc]
	requests atomic.Int64
}

func newAPI(t *testing.T, h http.HandlerFunc) *api {
	a := &api{}
	a.set(h)
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.requests.Add(1)
		(*a.h.Load())(w, r)
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *api) set(h http.HandlerFunc) { a.h.Store(&h) }

func jsonBody(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body)
	}
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
			if m.Counter != nil {
				v = m.GetCounter().GetValue()
			}
			out[mf.GetName()+"{"+strings.Join(ls, ",")+"}"] = v
		}
	}
	return out
}

func polls(t *testing.T, h *pipelinetest.Harness, result string) float64 {
	return series(t, h.Registry)[`sluice_httpjson_polls_total{result="`+result+`"}`]
}

func waitPolls(t *testing.T, h *pipelinetest.Harness, result string, n float64) {
	t.Helper()
	pipelinetest.Eventually(t, 10*time.Second, func() bool { return polls(t, h, result) >= n }, "%v polls with result %s (have %v)", n, result, series(t, h.Registry))
}

func config(url, extra string) string {
	return fmt.Sprintf(`
url      = %q
interval = "200ms"
timeout  = "150ms"
%s
`, url, extra)
}

const pipelinesMetric = `
metric "pipeline_duration_seconds" {
  help   = "Pipeline durations."
  series = [for p in body.pipelines : { value = p.duration, labels = { project = p.project, status = p.status } }]
}
`

// Fields map to series: a for expression makes one series per element; an
// element that lacks a field, a value that is not a number, and a
// duplicate are dropped and counted, one series each, and the rest is
// exported.
func TestMapsBodyToSeries(t *testing.T) {
	srv := newAPI(t, jsonBody(`{
  "pipelines": [
    {"project": "a", "status": "ok", "duration": 1.5},
    {"project": "b", "status": "failed", "duration": "2"},
    {"project": "c", "status": "ok"},
    {"project": "d", "status": "ok", "duration": "slow"},
    {"project": "a", "status": "ok", "duration": 9}
  ],
  "queue": {"length": 3, "name": "main", "healthy": true},
  "runners": {"linux": 4, "mac": 1}
}`))
	h := pipelinetest.New(t, httpjson.Name, config(srv.URL, pipelinesMetric+`
metric "queue_length" {
  type   = "counter"
  value  = body.queue.length
  labels = { queue = body.queue.name }
}
metric "queue_healthy" {
  value = body.queue.healthy
}
metric "runners" {
  series = [for os, n in body.runners : { value = n, labels = { os = os } } if n > 1]
}
metric "queue_missing" {
  value = body.queue.missing
}
`))
	h.Start()
	waitPolls(t, h, "success", 1)

	got := series(t, h.Gatherer())
	want := map[string]float64{
		`pipeline_duration_seconds{project="a",status="ok"}`:     1.5,
		`pipeline_duration_seconds{project="b",status="failed"}`: 2,
		`queue_length{queue="main"}`:                             3,
		`queue_healthy{}`:                                        1,
		`runners{os="linux"}`:                                    4,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("series:\n got %v\nwant %v", got, want)
	}
	self := series(t, h.Registry)
	for key, n := range map[string]float64{
		`sluice_httpjson_series_dropped_total{metric="pipeline_duration_seconds",reason="eval_error"}`: 1, // c has no duration
		`sluice_httpjson_series_dropped_total{metric="pipeline_duration_seconds",reason="not_number"}`: 1, // d
		`sluice_httpjson_series_dropped_total{metric="pipeline_duration_seconds",reason="duplicate"}`:  1, // the second a
		`sluice_httpjson_series_dropped_total{metric="queue_missing",reason="eval_error"}`:             1,
		`sluice_httpjson_series{}`: 5,
		`sluice_httpjson_pages{}`:  1,
	} {
		// Polls repeat: counters are multiples of the per-poll count.
		if v := self[key]; v < n || int(v)%int(n) != 0 {
			t.Errorf("%s = %v, want a multiple of %v", key, v, n)
		}
	}
	if self[`sluice_httpjson_last_success_timestamp_seconds{}`] == 0 {
		t.Error("last success timestamp not set")
	}
}

// The auth header comes from env(), reaches the server, and appears in no
// log line, even when the server rejects it.
func TestAuthHeaderFromEnvIsSecret(t *testing.T) {
	const token = "s3cr3t-t0ken-value"
	var accept atomic.Bool
	srv := newAPI(t, func(w http.ResponseWriter, r *http.Request) {
		if !accept.Load() || r.Header.Get("Authorization") != "Bearer "+token || r.Header.Get("X-Team") != "ci" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, `{"n": 7}`)
	})
	logs := &pipelinetest.Buffer{}
	logger := pipelinetest.WithLogger(slogText(logs))
	env := pipelinetest.WithEnv(map[string]string{"API_TOKEN": token})
	h := pipelinetest.New(t, httpjson.Name, config(srv.URL, `
headers = {
  Authorization = "Bearer ${env("API_TOKEN")}"
  X-Team        = "ci"
}
metric "n" { value = body.n }
`), env, logger)
	h.Start()
	waitPolls(t, h, "http_error", 1)
	pipelinetest.Eventually(t, 10*time.Second, func() bool { return strings.Contains(logs.String(), "poll failed") }, "the failure is not logged")
	if h.Component.(*httpjson.Component).Health().State != pipeline.HealthUnhealthy {
		t.Error("not unhealthy while polls fail")
	}
	accept.Store(true)
	waitPolls(t, h, "success", 1)
	if got := series(t, h.Gatherer())["n{}"]; got != 7 {
		t.Errorf("n = %v, want 7", got)
	}
	if strings.Contains(logs.String(), token) {
		t.Errorf("the token is in the logs:\n%s", logs.String())
	}

	// A bad header name is a diagnostic that does not quote the value.
	_, diags := pipelinetest.Decode(t, httpjson.Name, config(srv.URL, `
headers = { "Bad Name" = env("API_TOKEN") }
metric "n" { value = body.n }
`), env)
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "Bad Name") || strings.Contains(diags.Error(), token) {
		t.Errorf("diagnostics: %v", diags)
	}
}

// Pages linked with rel="next" are fetched in order, relative and absolute
// links alike, up to max_pages; a next link to another origin is refused
// (the headers would go with it).
func TestPagination(t *testing.T) {
	var other atomic.Int64
	otherSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { other.Add(1) }))
	t.Cleanup(otherSrv.Close)
	var srv *api
	srv = newAPI(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "t" {
			http.Error(w, "no auth", http.StatusUnauthorized)
			return
		}
		switch r.URL.Query().Get("page") {
		case "":
			w.Header().Add("Link", `<`+srv.URL+`/?page=9>; rel="last", </?page=2>; rel="next"`)
			fmt.Fprint(w, `{"pipelines": [{"project": "p1", "status": "ok", "duration": 1}]}`)
		case "2":
			w.Header().Set("Link", `<`+srv.URL+`/?page=3>; rel="next last"`)
			fmt.Fprint(w, `{"pipelines": [{"project": "p2", "status": "ok", "duration": 2}]}`)
		case "3":
			fmt.Fprint(w, `{"pipelines": [{"project": "p3", "status": "ok", "duration": 3}]}`)
		case "evil":
			w.Header().Set("Link", `<`+otherSrv.URL+`/steal>; rel=next`)
			fmt.Fprint(w, `{"pipelines": []}`)
		}
	})
	h := pipelinetest.New(t, httpjson.Name, config(srv.URL, `headers = { Authorization = "t" }`+pipelinesMetric))
	h.Start()
	waitPolls(t, h, "success", 1)
	got := series(t, h.Gatherer())
	for i := 1; i <= 3; i++ {
		if got[fmt.Sprintf(`pipeline_duration_seconds{project="p%d",status="ok"}`, i)] != float64(i) {
			t.Errorf("page %d missing: %v", i, got)
		}
	}
	if p := series(t, h.Registry)["sluice_httpjson_pages{}"]; p != 3 {
		t.Errorf("pages = %v, want 3", p)
	}

	// max_pages stops early, and says so.
	if err := h.Update(config(srv.URL, `headers = { Authorization = "t" }
max_pages = 2`+pipelinesMetric)); err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		return series(t, h.Registry)["sluice_httpjson_pages_truncated_total{}"] >= 1 && len(series(t, h.Gatherer())) == 2
	}, "max_pages is not applied: %v", series(t, h.Gatherer()))

	// Another origin is never contacted.
	if err := h.Update(config(srv.URL+"/?page=evil", `headers = { Authorization = "t" }`+pipelinesMetric)); err != nil {
		t.Fatal(err)
	}
	waitPolls(t, h, "error", 1)
	if other.Load() != 0 {
		t.Errorf("the other origin got %d requests", other.Load())
	}
}

// A failing poll (an error status, a body that is not JSON, a timeout, a
// response over max_response_bytes) keeps the last good values and counts
// the failure; the next good poll replaces them.
func TestFailuresKeepLastValues(t *testing.T) {
	srv := newAPI(t, jsonBody(`{"n": 1}`))
	h := pipelinetest.New(t, httpjson.Name, config(srv.URL, `
max_response_bytes = 4096
metric "n" { value = body.n }
`))
	h.Start()
	waitPolls(t, h, "success", 1)

	var release sync.Once
	done := make(chan struct{})
	t.Cleanup(func() { release.Do(func() { close(done) }) })
	huge := `{"n": 2, "pad": "` + strings.Repeat("x", 1<<20) + `"}`
	for _, c := range []struct {
		result string
		h      http.HandlerFunc
	}{
		{"http_error", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) }},
		{"bad_body", jsonBody(`{"n": 2`)},
		{"bad_body", jsonBody(`<html>not json</html>`)},
		{"timeout", func(w http.ResponseWriter, r *http.Request) {
			select { // past the 150ms timeout, until the client gives up
			case <-r.Context().Done():
			case <-done:
			}
		}},
		{"too_large", jsonBody(huge)}, // with a Content-Length
		{"too_large", func(w http.ResponseWriter, r *http.Request) { // chunked: no length announced
			w.(http.Flusher).Flush()
			for i := 0; i < 64 && r.Context().Err() == nil; i++ {
				if _, err := fmt.Fprint(w, huge[i*1024:(i+1)*1024]); err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
		}},
	} {
		before := polls(t, h, c.result)
		srv.set(c.h)
		waitPolls(t, h, c.result, before+1)
		if got := series(t, h.Gatherer())["n{}"]; got != 1 {
			t.Errorf("after %s: n = %v, want the last good 1", c.result, got)
		}
	}
	release.Do(func() { close(done) })
	srv.set(jsonBody(`{"n": 3}`))
	pipelinetest.Eventually(t, 10*time.Second, func() bool { return series(t, h.Gatherer())["n{}"] == 3 }, "the next good poll does not replace the values")
	if h.Component.(*httpjson.Component).Health().State != pipeline.HealthHealthy {
		t.Error("not healthy again after a good poll")
	}
}

// A reload that removes a metric block removes its series at once; a
// changed expression applies from the poll the reload triggers (with a 1h
// interval, no other poll comes).
func TestUpdate(t *testing.T) {
	srv := newAPI(t, jsonBody(`{"a": 1, "b": 2}`))
	body := func(metrics string) string {
		return fmt.Sprintf("url = %q\ninterval = \"1h\"\ntimeout = \"10s\"\n%s\n", srv.URL, metrics)
	}
	h := pipelinetest.New(t, httpjson.Name, body(`
metric "a" { value = body.a }
metric "x" { value = body.b }
`))
	h.Start()
	waitPolls(t, h, "success", 1)
	if got := series(t, h.Gatherer()); got["a{}"] != 1 || got["x{}"] != 2 {
		t.Fatalf("series %v", got)
	}
	if err := h.Update(body(`metric "a" { value = body.a * 10 }`)); err != nil {
		t.Fatal(err)
	}
	if _, ok := series(t, h.Gatherer())["x{}"]; ok {
		t.Error("the removed metric is still exported after the reload")
	}
	if _, ok := series(t, h.Registry)[`sluice_httpjson_series_dropped_total{metric="x",reason="missing"}`]; ok {
		t.Error("the removed metric still has drop counters")
	}
	pipelinetest.Eventually(t, 10*time.Second, func() bool { return series(t, h.Gatherer())["a{}"] == 10 }, "the new expression is not applied: %v", series(t, h.Gatherer()))
}

// Bad configurations are diagnostics at load, each at its attribute.
func TestValidation(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{`url = "ftp://x"
metric "a" { value = body.a }`, "absolute http"},
		{`url = "http://x"
metric "a" { value = other.a }`, `unknown variable "other"`},
		{`url = "http://x"
metric "a" { value = tonumber(body.a) }`, `no function "tonumber"`},
		{`url = "http://x"
metric "a" {
  value  = body.a
  series = []
}`, "value or series, not both"},
		{`url = "http://x"
metric "a" { help = "no value" }`, "set value"},
		{`url = "http://x"
interval = "1s"
timeout = "2s"
metric "a" { value = body.a }`, "at most interval"},
		{`url = "http://x"
metric "a b" { value = body.a }`, "not a valid Prometheus metric name"},
		{`url = "http://x"
metric "a" {
  type  = "summary"
  value = body.a
}`, "gauge"},
		{`url = "http://x"`, "at least one metric"},
		{`url = "http://x"
metric "a" {
  value     = body.a
  aggregate = "avg"
}`, `aggregate must be "sum", "count", "min" or "max"`},
		{`url = "http://x"
metric "a" {
  type      = "counter"
  value     = body.a
  aggregate = "count"
}`, "a count is a gauge"},
	} {
		_, diags := pipelinetest.Decode(t, httpjson.Name, c.body)
		if !diags.HasErrors() || !strings.Contains(diags.Error(), c.want) {
			t.Errorf("%s:\n got %v\nwant %q", c.body, diags, c.want)
		}
	}
}
