package postgres

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkGatherSnapshot is the scrape path: gathering the latest results
// (10 queries x 1000 series, 2 labels each) from the snapshot. It never
// touches the database, so its cost is what a scrape costs whatever the
// queries do.
func BenchmarkGatherSnapshot(b *testing.B) {
	st := newStore()
	for q := range 10 {
		m := &metricDef{
			name: fmt.Sprintf("app_q%d_rows", q),
			typ:  prometheus.GaugeValue,
			desc: prometheus.NewDesc(fmt.Sprintf("app_q%d_rows", q), "rows", []string{"status", "region"}, nil),
		}
		samples := make([]sample, 0, 1000)
		for i := range 1000 {
			samples = append(samples, sample{m: m, labelValues: []string{fmt.Sprintf("s%d", i), "eu"}, value: float64(i)})
		}
		st.set(fmt.Sprintf("q%d", q), "", samples)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(st)
	b.ReportAllocs()
	for b.Loop() {
		mfs, err := reg.Gather()
		if err != nil {
			b.Fatal(err)
		}
		if len(mfs) != 11 { // 10 queries + pg_up
			b.Fatalf("%d families, want 11", len(mfs))
		}
	}
}
