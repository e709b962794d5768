package webhook

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func benchDef() *metricDef {
	d := &metricDef{name: "deployment_duration_seconds", typ: "histogram", labels: []string{"pipeline", "status"},
		buckets: []float64{60, 300, 900, 1800, 3600, 7200, 14400, 28800}, maxSeries: 1 << 30}
	d.desc = prometheus.NewDesc(d.name, d.helpText(), d.labels, nil)
	return d
}

// BenchmarkObserve is one observe of the same series, in memory and into
// the log buffer (no HTTP, no fsync).
func BenchmarkObserve(b *testing.B) {
	s := newStore()
	d := benchDef()
	s.setDefsLocked(map[string]*metricDef{d.name: d}, 0)
	s.log = &walBuffer{kick: make(chan struct{}, 1)}
	o := op{Verb: "observe", Metric: d.name, Labels: []string{"coordinator_pipeline", "success"}, Value: 18000, Time: 1}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.apply([]op{o})
		if i%1024 == 0 {
			s.log.buf, s.log.batch = s.log.buf[:0], nil
		}
	}
}

// BenchmarkSeriesMemory reports the heap retained per histogram series
// (8 buckets, two labels), and with the text a sink's scrape keeps
// (text.go: the metric's page, which the series' lines are slices of).
func BenchmarkSeriesMemory(b *testing.B) {
	const n = 10000
	for b.Loop() {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		s := newStore()
		d := benchDef()
		s.setDefsLocked(map[string]*metricDef{d.name: d}, 0)
		for i := 0; i < n; i++ {
			s.applyLocked(op{Verb: "observe", Metric: d.name, Labels: []string{"pipeline-" + strconv.Itoa(i), "success"}, Value: 100, Time: 1})
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/n, "B/series")
		if _, _, _, err := s.gatherText(time.Now()); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/n, "B/series-with-text")
		runtime.KeepAlive(s)
	}
}
