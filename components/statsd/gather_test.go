package statsd

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// The receiver's own gather serves exactly what gathering its vectors
// through client_golang's registry would: the same families, help, types,
// series, values and order, for every metric type, with and without tags,
// after a sweep removed series.
func TestSeriesGathererMatchesTheRegistry(t *testing.T) {
	h, r := startReceiver(t, udp+`mapping_file = "gunicorn-mapping.yml"
mapping {
  match       = "ttl.*"
  name        = "ttl_$1"
  ttl         = "1ms"
}
mapping {
  match         = "sum.*"
  name          = "sum_$1"
  observer_type = "summary"
}
`, pipelinetest.WithConfigDir(examplesDir))
	var lines []string
	for i := range 300 {
		lines = append(lines,
			fmt.Sprintf("gunicorn.request.status.%d:1|c", 200+i%7),
			fmt.Sprintf("web.gunicorn.request.duration:%d|ms|#env:e%d", i, i%5),
			fmt.Sprintf("app.metric_%d:1|c|#instance:i%d,zone:z%d", i%13, i%17, i%3),
			fmt.Sprintf("app.level_%d:%d|g", i%11, i),
			fmt.Sprintf("sum.x:%d|ms|#k:v%d", i, i%4),
			fmt.Sprintf("ttl.gone_%d:1|c", i%9),
		)
	}
	addr := r.addr(t, "udp")
	for i := 0; i < len(lines); i += 20 {
		send(t, "udp", addr, joinLines(lines[i:min(i+20, len(lines))]))
	}
	waitValue(t, h.Registry, "statsd_exporter_events_total", map[string]string{"type": "observer"}, 600)
	waitValue(t, h.Registry, "statsd_exporter_events_total", map[string]string{"type": "counter"}, 900)
	waitValue(t, h.Registry, "statsd_exporter_events_total", map[string]string{"type": "gauge"}, 300)
	if n := familySeries(t, r.exported); n < 9 {
		t.Fatalf("%d series before the sweep", n)
	}
	// The TTL'd series go at the sweep.
	for _, s := range r.shards {
		s.lockedSweep()
	}
	ours, theirs := text(t, seriesGatherer{r}), text(t, r.exported)
	if ours != theirs {
		t.Fatalf("the receiver's gather differs from the registry's:\n--- ours\n%s\n--- registry\n%s", ours, theirs)
	}
	if bytes.Contains([]byte(ours), []byte("ttl_gone")) {
		t.Fatalf("expired series served:\n%s", ours)
	}
	if !bytes.Contains([]byte(ours), []byte("sum_x{k=\"v1\",quantile=\"0.5\"}")) || !bytes.Contains([]byte(ours), []byte("gunicorn_request_duration_seconds_bucket")) {
		t.Fatalf("a summary or histogram is missing:\n%s", ours)
	}
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
