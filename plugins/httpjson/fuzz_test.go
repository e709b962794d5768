package httpjson

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

const fuzzConfig = `
url       = "http://api.example"
max_series = 50
metric "duration" {
  series = [for p in body.pipelines : { value = p.duration, labels = { project = p.project, status = try(p.status, null) } } if can(p.project)]
}
metric "runners" {
  type   = "counter"
  series = [for k, v in body.runners : { value = v, labels = { os = k } }]
}
metric "queue" {
  value  = body.queue.length
  labels = body.queue.labels
}
metric "raw" {
  series = body.series
}
metric "raw_sum" {
  aggregate = "sum"
  series    = body.series
}
metric "raw_count" {
  aggregate = "count"
  series    = body.series
}
metric "duration_max" {
  aggregate = "max"
  series    = [for p in body.pipelines : { value = p.duration, labels = { status = try(p.status, null) } } if can(p.project)]
}
`

// FuzzPage feeds arbitrary bytes through the JSON -> series path: decode,
// evaluate every metric, build the snapshot, serve it. Nothing may panic,
// and whatever is served is valid: within max_series, no duplicate series,
// every sample accepted by the client library.
func FuzzPage(f *testing.F) {
	for _, seed := range []string{
		`{"pipelines": [{"project": "a", "status": "ok", "duration": 1.5}, {"project": "b", "duration": "2"}], "runners": {"linux": 3}, "queue": {"length": 4, "labels": {"q": "main"}}}`,
		`{"pipelines": [{"project": 1, "duration": true}, {"project": null}, 5], "runners": [1, 2]}`,
		`{"series": [{"value": 1, "labels": {"a": "x"}}, {"value": 1, "labels": {"a": "x"}}, {"value": "NaN"}, {"labels": {}}]}`,
		`{"queue": {"length": 1e400, "labels": {"__bad": "x", "0bad": 1}}}`,
		`[1, 2, 3]`, `null`, `"str"`, `{"pipelines": {"x": {"project": "p", "duration": -1}}}`,
	} {
		f.Add([]byte(seed))
	}
	args, diags := pipelinetest.Decode(f, Name, fuzzConfig)
	if diags.HasErrors() {
		f.Fatal(diags)
	}
	p := args.(Arguments).plan
	f.Fuzz(func(t *testing.T, b []byte) {
		body, err := decodeJSON(b)
		if err != nil {
			return
		}
		col := newCollector(p, func(metric, reason string, err error) {
			if err == nil {
				t.Errorf("%s dropped (%s) without an error", metric, reason)
			}
		})
		col.addPage(body)
		col.addPage(body) // a second page with the same series: duplicates
		snap := col.snapshot()
		if snap.series > p.maxSeries {
			t.Fatalf("%d series, max %d", snap.series, p.maxSeries)
		}
		st := newStore()
		st.set(snap)
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(st)
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatalf("gather: %v", err)
		}
		n := 0
		for _, mf := range mfs {
			n += len(mf.GetMetric())
			if mf.GetType() != dto.MetricType_GAUGE && mf.GetType() != dto.MetricType_COUNTER {
				t.Fatalf("type %v", mf.GetType())
			}
		}
		if n != snap.series {
			t.Fatalf("served %d series, snapshot has %d", n, snap.series)
		}
	})
}
