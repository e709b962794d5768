package statsd

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/prometheus/client_golang/prometheus/testutil"

	_ "github.com/sluicehq/sluice/components/sink" // metrics_sink, used by the example
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
	"github.com/sluicehq/sluice/runtime"
)

const examplesDir = "../../config/examples"

// exampleBody returns the body of the statsd_receiver block of
// config/examples/gunicorn-sidecar.hcl.
func exampleBody(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile(examplesDir + "/gunicorn-sidecar.hcl")
	if err != nil {
		t.Fatal(err)
	}
	f, diags := hclparse.NewParser().ParseHCL(src, "gunicorn-sidecar.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	content, _ := f.Body.Content(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "statsd_receiver", LabelNames: []string{"name"}}}})
	if len(content.Blocks) != 1 {
		t.Fatalf("want one statsd_receiver block, found %d", len(content.Blocks))
	}
	body := content.Blocks[0].Body.(*hclsyntax.Body)
	r := body.SrcRange
	// Strip the braces.
	return string(src[r.Start.Byte+1 : r.End.Byte-1])
}

// TestExampleFileValidates loads the whole example with the agent's loader,
// as `sluice validate` does.
func TestExampleFileValidates(t *testing.T) {
	path := examplesDir + "/gunicorn-sidecar.hcl"
	noEnv := func(string) (string, bool) { return "", false }
	if err := runtime.Validate(path, []byte(mustRead(t, path)), noEnv); err != nil {
		t.Fatalf("%s does not validate: %v", path, err)
	}
	// And a broken mapping file fails it, with the file named.
	dir := t.TempDir()
	writeFile(t, dir, "gunicorn-mapping.yml", "mappings:\n- match: gunicorn.requests\n")
	broken := dir + "/gunicorn-sidecar.hcl"
	writeFile(t, dir, "gunicorn-sidecar.hcl", mustRead(t, path))
	if err := runtime.Validate(broken, []byte(mustRead(t, broken)), noEnv); err == nil || !strings.Contains(err.Error(), "gunicorn-mapping.yml") {
		t.Fatalf("a broken mapping file validates: %v", err)
	}
}

func TestExampleValidates(t *testing.T) {
	body := exampleBody(t)
	args, diags := pipelinetest.Decode(t, "statsd_receiver", body, pipelinetest.WithConfigDir(examplesDir))
	if diags.HasErrors() {
		t.Fatalf("example does not decode: %v", diags)
	}
	a := args.(Arguments)
	if a.MappingFile != filepath.Join(examplesDir, "gunicorn-mapping.yml") || len(a.Mappings) != 2 || a.MaxSeries != 10000 {
		t.Fatalf("unexpected arguments: %+v", a)
	}
	// Build resolves the mapping file against the config directory and
	// compiles it with the inline mappings.
	h, err := pipelinetest.TryNew(t, "statsd_receiver", body, pipelinetest.WithConfigDir(examplesDir))
	if err != nil {
		t.Fatalf("example does not build: %v", err)
	}
	if got := h.Component.(*Receiver).cfg.Load().mapper.Mappings; len(got) != 12 {
		t.Fatalf("want 10 file mappings + 2 inline, got %d", len(got))
	}
	// The mapping file is statsd_exporter's format: it loads unchanged in
	// a plain upstream mapper as well.
	if _, err := newMapper(mustRead(t, examplesDir+"/gunicorn-mapping.yml"), nil); err != nil {
		t.Fatalf("gunicorn-mapping.yml is not a valid statsd_exporter mapping: %v", err)
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestGunicornEndToEnd sends what gunicorn's statsd instrumentation sends
// (plain, with --statsd-prefix, with --dogstatsd-tags) over UDP, TCP and
// unixgram, through the example configuration, and checks the scrape.
func TestGunicornEndToEnd(t *testing.T) {
	sock := sockPath(t)
	body := regexp.MustCompile(`(?m)^\s*listen_udp\s*=.*$`).ReplaceAllString(exampleBody(t),
		`  listen_udp = "127.0.0.1:0"
  listen_tcp = "127.0.0.1:0"
  listen_unixgram = "`+sock+`"`)
	h, r := startReceiver(t, body, pipelinetest.WithConfigDir(examplesDir))
	g := h.Gatherer()

	// gunicorn sends one line per datagram.
	send(t, "udp", r.addr(t, "udp"),
		"gunicorn.requests:1|c|@1.0",
		"gunicorn.request.duration:12.5|ms",
		"gunicorn.request.status.200:1|c|@1.0",
		"gunicorn.requests:1|c|@1.0",
		"gunicorn.request.duration:250.0|ms",
		"gunicorn.request.status.200:1|c|@1.0",
		"gunicorn.requests:1|c|@1.0",
		"gunicorn.request.duration:1500.3|ms",
		"gunicorn.request.status.404:1|c|@1.0",
		"gunicorn.workers:4|g",
		"gunicorn.log.error:1|c|@1.0",
		"flask.view.index.duration:20|ms",
		"debug.cache.misses:1|c",
	)
	// --statsd-prefix=web --dogstatsd-tags=env:prod, over TCP.
	send(t, "tcp", r.addr(t, "tcp"),
		"web.gunicorn.requests:1|c|@1.0|#env:prod",
		"web.gunicorn.request.duration:100|ms|#env:prod",
		"web.gunicorn.request.status.500:1|c|@1.0|#env:prod",
		"web.gunicorn.requests:1|c|@1.0|#env:prod",
		"web.gunicorn.request.duration:7|ms|#env:prod",
		"web.gunicorn.request.status.200:1|c|@1.0|#env:prod",
		"web.gunicorn.workers:2|g|#env:prod",
		"web.gunicorn.log.critical:1|c|@1.0|#env:prod",
	)
	// --dogstatsd-tags=env:staging,team:shop, over a unix socket.
	send(t, "unixgram", sock,
		"gunicorn.requests:1|c|@1.0|#env:staging,team:shop",
		"gunicorn.log.warning:1|c|@1.0|#env:staging,team:shop",
		"gunicorn.log.warning:1|c|@1.0|#env:staging,team:shop",
	)

	waitValue(t, h.Registry, "statsd_exporter_lines_total", nil, 24)

	waitValue(t, h.Registry, "statsd_exporter_events_total", map[string]string{"type": "counter"}, 15)
	waitValue(t, h.Registry, "statsd_exporter_events_total", map[string]string{"type": "observer"}, 6)
	waitValue(t, h.Registry, "statsd_exporter_events_total", map[string]string{"type": "gauge"}, 2)

	want := `
# HELP gunicorn_requests_total Requests handled by gunicorn.
# TYPE gunicorn_requests_total counter
gunicorn_requests_total 3
gunicorn_requests_total{app="web",env="prod"} 2
gunicorn_requests_total{env="staging",team="shop"} 1
# HELP gunicorn_responses_total Responses sent by gunicorn, by HTTP status code.
# TYPE gunicorn_responses_total counter
gunicorn_responses_total{status="200"} 2
gunicorn_responses_total{status="404"} 1
gunicorn_responses_total{app="web",env="prod",status="200"} 1
gunicorn_responses_total{app="web",env="prod",status="500"} 1
# HELP gunicorn_workers Number of gunicorn workers.
# TYPE gunicorn_workers gauge
gunicorn_workers 4
gunicorn_workers{app="web",env="prod"} 2
# HELP gunicorn_log_messages_total Messages gunicorn logged at level warning or above.
# TYPE gunicorn_log_messages_total counter
gunicorn_log_messages_total{level="error"} 1
gunicorn_log_messages_total{app="web",env="prod",level="critical"} 1
gunicorn_log_messages_total{env="staging",level="warning",team="shop"} 2
`
	if err := testutil.GatherAndCompare(g, strings.NewReader(want),
		"gunicorn_requests_total", "gunicorn_responses_total", "gunicorn_workers", "gunicorn_log_messages_total"); err != nil {
		t.Fatal(err)
	}

	// Durations arrive in milliseconds and are exported in seconds, as a
	// histogram with the mapping's buckets.
	m := find(t, g, "gunicorn_request_duration_seconds", nil)
	if m == nil || m.GetHistogram() == nil {
		t.Fatalf("gunicorn_request_duration_seconds is not a histogram: %v", m)
	}
	hist := m.GetHistogram()
	if hist.GetSampleCount() != 3 || !approx(hist.GetSampleSum(), 0.0125+0.25+1.5003) {
		t.Fatalf("histogram count %d sum %v, want 3 and %v", hist.GetSampleCount(), hist.GetSampleSum(), 0.0125+0.25+1.5003)
	}
	buckets := map[float64]uint64{}
	for _, b := range hist.GetBucket() {
		buckets[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	if len(buckets) != 12 || buckets[0.025] != 1 || buckets[0.25] != 2 || buckets[1] != 2 || buckets[2.5] != 3 {
		t.Fatalf("unexpected buckets %v", buckets)
	}
	if v := value(t, g, "gunicorn_request_duration_seconds", map[string]string{"app": "web", "env": "prod"}); v != 2 {
		t.Fatalf("prefixed durations: %v observations, want 2", v)
	}
	// The inline mapping blocks: a view timer, and debug counters dropped.
	if v := value(t, g, "flask_view_duration_seconds", map[string]string{"view": "index"}); v != 1 {
		t.Fatalf("flask_view_duration_seconds{view=index} = %v, want 1", v)
	}
	for _, n := range familyNames(t, g) {
		if strings.HasPrefix(n, "debug") {
			t.Fatalf("debug metric %s was not dropped", n)
		}
	}
	if v := value(t, h.Registry, "statsd_exporter_events_actions_total", map[string]string{"action": "drop"}); v != 1 {
		t.Fatalf("drop actions = %v, want 1", v)
	}
	if v := value(t, h.Registry, "statsd_exporter_udp_packets_total", nil); v != 13 {
		t.Fatalf("udp packets = %v, want 13", v)
	}
	if v := value(t, h.Registry, "statsd_exporter_unixgram_packets_total", nil); v != 3 {
		t.Fatalf("unixgram packets = %v, want 3", v)
	}
	if v := value(t, h.Registry, "statsd_exporter_tcp_connections_total", nil); v != 1 {
		t.Fatalf("tcp connections = %v, want 1", v)
	}
}

func approx(a, b float64) bool {
	d := a - b
	return d < 1e-9 && d > -1e-9
}
