package ui

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	_ "github.com/sluicehq/sluice/components/all"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
	"github.com/sluicehq/sluice/runtime"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const secret = "hunter2secret"

// goodConfig: relabel keeps the agent's own sluice_ series, a sink serves
// them, and a postgres_source (whose DSN is a secret) points at a closed
// port: it runs unhealthy, which is fine here.
const goodConfig = `
relabel "app" {
  input = agent.metrics
  rule {
    action        = "keep"
    source_labels = ["__name__"]
    regex         = "sluice_config_.*"
  }
}

metrics_sink "default" {
  inputs = [relabel.app.metrics]
}

postgres_source "db" {
  dsn         = "postgres://scraper:` + secret + `@127.0.0.1:1/db?connect_timeout=1"
  collectors  = []
  max_conns   = 1
}
`

type fixture struct {
	ui   *Handler
	ctrl *runtime.Controller
	srv  *httptest.Server
	file string
}

func start(t *testing.T, base string) *fixture {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "sluice.hcl")
	if err := os.WriteFile(file, []byte(goodConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	mounts := runtime.NewMounts()
	ctrl := runtime.NewController(runtime.ControllerOptions{
		Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry(),
		DataPath: filepath.Join(dir, "data"), HTTP: mounts,
	})
	if err := ctrl.LoadFile(file, true); err != nil {
		t.Fatal(err)
	}
	pipelinetest.RunController(t, ctrl)
	h, err := New(Options{Controller: ctrl, Base: base, Distribution: "lite", Logger: slog.New(slog.DiscardHandler), PreviewLimit: 2})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(runtime.NewHandler(runtime.ServerOptions{Controller: ctrl, Mounts: mounts, UI: h}))
	t.Cleanup(srv.Close)
	return &fixture{ctrl: ctrl, srv: srv, file: file, ui: h}
}

func (f *fixture) get(t *testing.T, path string, wantCode int) string {
	t.Helper()
	resp, err := http.Get(f.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantCode {
		t.Fatalf("GET %s: %d, want %d\n%s", path, resp.StatusCode, wantCode, b)
	}
	return string(b)
}

func mustContain(t *testing.T, what, body string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(body, s) {
			t.Errorf("%s lacks %q", what, s)
		}
	}
}

// Every page's template parses, and none is parsed before the first page
// is served (an agent whose UI nobody opens does not hold them).
func TestPagesParse(t *testing.T) {
	pages, err := parsePages()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range uiPages {
		if pages[p] == nil {
			t.Errorf("no template for the %s page", p)
		}
	}
	f := start(t, "/")
	if f.ui.pages.parsed != nil {
		t.Fatal("New parsed the templates; they are parsed when the first page is served")
	}
	mustContain(t, "a missing page", f.get(t, "/no/such/page", http.StatusNotFound), "Not found")
}

func TestOverview(t *testing.T) {
	f := start(t, "/")
	body := f.get(t, "/", 200)
	mustContain(t, "overview", body,
		`<svg class="graph"`,
		`href="/component/relabel.app" class="node health-`,
		`<th scope="row"><a href="/component/metrics_sink.default">metrics_sink.default</a></th>`,
		`<th scope="col">Health</th>`,
		`<strong>Applied</strong>`,
		`<dt>Version</dt>`,
		`<dt>Distribution</dt><dd id="distribution">lite</dd>`,
		`<header>`, `<nav aria-label="Agent">`, `<main id="main"`,
		`/static/style.css`, `/static/ui.js`,
	)
	// The health of each component is written out, not only coloured.
	for _, c := range f.ctrl.Components() {
		mustContain(t, "overview", body, `aria-label="`+c.ID+`, `+string(c.Health.State)+`"`)
	}
	if strings.Contains(body, secret) {
		t.Error("the overview shows the DSN's password")
	}
	css := f.get(t, "/static/style.css", 200)
	mustContain(t, "style.css", css, ":focus-visible", "@media (max-width: 640px)")
	js := f.get(t, "/static/ui.js", 200)
	mustContain(t, "ui.js", js, "status.json", "document.hidden")
}

func TestBadReloadShowsDiagnosticsRedacted(t *testing.T) {
	f := start(t, "/")
	stamp := func() string {
		var s struct{ Stamp string }
		if err := json.Unmarshal([]byte(f.get(t, "/status.json", 200)), &s); err != nil || s.Stamp == "" {
			t.Fatalf("status.json: %v %+v", err, s)
		}
		return s.Stamp
	}
	before := stamp()
	// The error is on the DSN's line: its snippet must not show the password.
	bad := strings.Replace(goodConfig, `max_conns   = 1`, `max_conns   = 1
  dsn         = "postgres://scraper:`+secret+`@127.0.0.1:2/db"`, 1)
	if err := os.WriteFile(f.file, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.ctrl.LoadFile(f.file, true); err == nil {
		t.Fatal("bad config accepted")
	}
	if stamp() == before {
		t.Error("status.json stamp did not change after a rejected reload")
	}
	body := f.get(t, "/", 200)
	mustContain(t, "overview after a bad reload", body,
		`<strong>Rejected</strong>`,
		`<code class="position">`+f.file+`:`,
		`<pre class="snippet">`,
		`dsn         = &lt;redacted&gt;`,
	)
	st, ok := f.ctrl.LastReload()
	if !ok || st.OK || len(st.Diagnostics) == 0 {
		t.Fatalf("LastReload = %+v", st)
	}
	for _, d := range st.Diagnostics {
		if d.Line == 0 || d.Column == 0 || d.File != f.file {
			t.Errorf("diagnostic without position: %+v", d)
		}
	}
	if strings.Contains(body, secret) {
		t.Errorf("the overview shows the DSN's password:\n%s", body)
	}

	// A good config clears it.
	if err := os.WriteFile(f.file, []byte(goodConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.ctrl.LoadFile(f.file, true); err != nil {
		t.Fatal(err)
	}
	body = f.get(t, "/", 200)
	mustContain(t, "overview after a good reload", body, `<strong>Applied</strong>`)
	if strings.Contains(body, `class="diagnostic`) {
		t.Error("diagnostics still shown after a good reload")
	}
}

func TestComponentPage(t *testing.T) {
	f := start(t, "/sluice/")
	body := f.get(t, "/component/postgres_source.db", 200)
	mustContain(t, "postgres page", body,
		`<h1>postgres_source.db</h1>`,
		`<pre class="config">postgres_source &#34;db&#34; {`,
		`dsn         = &lt;redacted&gt;`,
		`max_conns   = 1`,
		`<h2 id="exports-h">Exports</h2>`,
		`<a href="/sluice/">Overview</a>`,
	)
	if strings.Contains(body, secret) || strings.Contains(body, "scraper") {
		t.Errorf("the component page shows the DSN:\n%s", body)
	}

	body = f.get(t, "/component/relabel.app", 200)
	mustContain(t, "relabel page", body,
		`<a href="/sluice/component/metrics_sink.default">metrics_sink.default</a>`, // downstream
		`sluice_relabel_series_in_total{component_id=&#34;relabel.app&#34;}`,        // self-metric
		`Series of <code>metrics</code>`,
		`sluice_config_hash{sha256=`,
		`Showing 2 of`, // PreviewLimit
	)
	body = f.get(t, "/component/relabel.app?filter=failure", 200)
	mustContain(t, "filtered preview", body, `Showing 1 of 1 matching series`, `result=&#34;failure&#34;`)
	if strings.Contains(body, `result=&#34;success&#34;`) {
		t.Error("filter did not hide non-matching series")
	}
	body = f.get(t, "/component/relabel.app?filter=no-such-series", 200)
	mustContain(t, "empty preview", body, `Showing 0 of 0 matching series`)
	// Bad query values are bounded, not errors.
	f.get(t, "/component/relabel.app?limit=-5&filter="+strings.Repeat("x", 5000), 200)
	body = f.get(t, "/component/relabel.app?limit=1", 200)
	mustContain(t, "limit=1", body, `Showing 1 of`)

	body = f.get(t, "/component/nope.nope", 404)
	mustContain(t, "404", body, `No running component is called &#34;nope.nope&#34;`)
	f.get(t, "/component/%3Cscript%3E", 404)
	f.get(t, "/no/such/page", 404)
}

func TestSamplesBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h", Buckets: []float64{1, 2}})
	s := prometheus.NewSummary(prometheus.SummaryOpts{Name: "s", Objectives: map[float64]float64{0.5: 0.05}})
	reg.MustRegister(h, s)
	h.Observe(1.5)
	s.Observe(3)
	mfs, _ := reg.Gather()
	out, matched, total := samples(mfs, "", 3)
	// h: 2 buckets + +Inf + sum + count = 5; s: 1 quantile + sum + count = 3
	if total != 8 || matched != 8 || len(out) != 3 {
		t.Fatalf("samples: %d shown, %d matched, %d total", len(out), matched, total)
	}
	if out[0].Series != `h_bucket{le="1"}` || out[2].Series != `h_bucket{le="+Inf"}` || out[2].Value != "1" {
		t.Errorf("samples = %+v", out)
	}
}
