package statsd

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/statsd_exporter/pkg/event"
	"github.com/prometheus/statsd_exporter/pkg/exporter"
	"github.com/prometheus/statsd_exporter/pkg/line"
	"github.com/prometheus/statsd_exporter/pkg/mapper"
	"github.com/prometheus/statsd_exporter/pkg/registry"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// TestReceiverMatchesUpstreamExporter sends the same lines (every
// metric type, with and without tags, mapped and unmapped, summaries with
// the mapping's quantiles, histograms with its buckets, a TTL) through the
// receiver and through upstream's exporter loop (parser, mapper,
// Exporter.Listen over pkg/registry and client_golang's vectors), and
// checks that both serve the same families, help, types, series and
// values, before and after a TTL sweep removed series. The receiver's
// store replaced upstream's registry; this is the check that it is the
// same store to its users.
func TestReceiverMatchesUpstreamExporter(t *testing.T) {
	cfg := `mapping_file = "gunicorn-mapping.yml"
mapping {
  match       = "ttl.*"
  name        = "ttl_$1"
  ttl         = "1ms"
}
mapping {
  match         = "sum.*"
  name          = "sum_$1"
  observer_type = "summary"
  summary_options {
    quantiles = [{ quantile = 0.9, error = 0.01 }]
  }
}
mapping {
  match         = "hist.*"
  name          = "hist_$1"
  observer_type = "histogram"
  help          = "A histogram."
  histogram_options {
    buckets = [0.5, 1, 100]
  }
}
`
	h := pipelinetest.New(t, "statsd_receiver", "listen_udp = \"127.0.0.1:0\"\n"+cfg, pipelinetest.WithConfigDir(examplesDir))
	r := h.Component.(*Receiver)
	up := newUpstream(t, r.cfg.Load().args.mapping.yaml)
	var lines []string
	for i := range 300 {
		lines = append(lines,
			fmt.Sprintf("gunicorn.request.status.%d:1|c", 200+i%7),
			fmt.Sprintf("web.gunicorn.request.duration:%d|ms|#env:e%d", i, i%5),
			fmt.Sprintf("app.metric_%d:%d|c|#instance:i%d,zone:z%d", i%13, i%4, i%17, i%3),
			fmt.Sprintf("app.level_%d:%d|g", i%11, i),
			fmt.Sprintf("app.level_%d:+%d.5|g", i%11, i%3),
			fmt.Sprintf("sum.x:%d|ms|#k:v%d", i, i%4),
			fmt.Sprintf("hist.y:%d.25|h|#k:v%d", i%120, i%2),
			fmt.Sprintf("ttl.gone_%d:1|c", i%9),
			fmt.Sprintf("frac:0.%d|c", i%10),
		)
	}
	p := r.newProcessor()
	for i := 0; i < len(lines); i += 20 {
		p.packet([]byte(joinLines(lines[i:min(i+20, len(lines))])))
		p.flush()
	}
	up.send(lines)
	compareUpstream(t, "before the sweep", up, r)
	time.Sleep(5 * time.Millisecond) // past the 1ms TTL
	for _, s := range r.shards {
		s.lockedSweep()
	}
	up.reg.RemoveStaleMetrics()
	ours := compareUpstream(t, "after the sweep", up, r)
	if strings.Contains(ours, "ttl_gone") {
		t.Fatalf("expired series served:\n%s", ours)
	}
	for _, want := range []string{`sum_x{k="v1",quantile="0.9"}`, `gunicorn_request_duration_seconds_bucket`, `hist_y_bucket{k="v0",le="0.5"}`, "# HELP hist_y A histogram."} {
		if !strings.Contains(ours, want) {
			t.Fatalf("%s is missing:\n%s", want, ours)
		}
	}
}

// upstreamExporter is statsd_exporter's own path: its parser, mapper and
// exporter loop over pkg/registry, with its vectors in reg.
type upstreamExporter struct {
	prom   *prometheus.Registry
	reg    *registry.Registry
	parser *line.Parser
	sm     *selfMetrics
	exp    *exporter.Exporter
}

func newUpstream(t testing.TB, yaml string) *upstreamExporter {
	t.Helper()
	m := &mapper.MetricMapper{}
	if err := m.InitFromYAMLString(yaml); err != nil {
		t.Fatal(err)
	}
	sm, err := newSelfMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	u := &upstreamExporter{prom: prometheus.NewRegistry(), parser: line.NewParser(), sm: sm}
	u.exp = exporter.NewExporter(u.prom, m, slog.New(slog.DiscardHandler), sm.eventsActions, sm.eventsUnmapped, sm.errorEventStats, sm.eventStats, sm.conflictingEventStats, sm.metricsCount)
	u.reg = u.exp.Registry.(*registry.Registry)
	u.parser.EnableDogstatsdParsing()
	return u
}

// send runs upstream's exporter loop over the lines' events until it
// has handled them all.
func (u *upstreamExporter) send(lines []string) {
	ch := make(chan event.Events, 1)
	done := make(chan struct{})
	go func() { u.exp.Listen(ch); close(done) }()
	for _, l := range lines {
		ch <- u.parser.LineToEvents(l, *u.sm.sampleErrors, u.sm.samplesReceived, u.sm.tagErrors, u.sm.tagsReceived, slog.New(slog.DiscardHandler))
	}
	close(ch)
	<-done
}

// compareUpstream fails unless the receiver serves what upstream does,
// created timestamps aside; it returns the receiver's text.
func compareUpstream(t *testing.T, when string, u *upstreamExporter, r *Receiver) string {
	t.Helper()
	ours, theirs := exposition(t, r.series()), exposition(t, u.prom)
	if ours != theirs {
		t.Fatalf("%s, the receiver's series differ from upstream's:\n%s", when, diffLines(theirs, ours))
	}
	if !strings.Contains(ours, "gunicorn_responses_total{status=\"203\"} 43") {
		t.Fatalf("%s: nothing gathered:\n%s", when, ours)
	}
	return text(t, r.series())
}

func joinLines(ls []string) string {
	var b bytes.Buffer
	for i, l := range ls {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(l)
	}
	return b.String()
}

func familySeries(t *testing.T, g prometheus.Gatherer) int {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		n += len(mf.Metric)
	}
	return n
}

func text(t *testing.T, g prometheus.Gatherer) string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}
