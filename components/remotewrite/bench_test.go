package remotewrite

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// BenchmarkEndpoint20k: one gather of 20k gauge series, converted, written
// to the WAL, read back, sent (to a receiver that discards) and
// acknowledged, per iteration; the gather from client_golang included.
func BenchmarkEndpoint20k(b *testing.B) {
	for _, useWAL := range []bool{true} { // without a WAL, 20k samples overflow one shard of 10k: dropped
		b.Run(fmt.Sprintf("wal=%v", useWAL), func(b *testing.B) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
			defer srv.Close()
			reg := prometheus.NewRegistry()
			g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bench_gauge", Help: "h"}, []string{"shard", "name"})
			reg.MustRegister(g)
			for i := range 20000 {
				g.WithLabelValues(fmt.Sprint("s", i%100), fmt.Sprint("n", i/100)).Set(float64(i))
			}
			sm, _ := newSelfMetrics(prometheus.NewRegistry())
			m := sm.forEndpoint("bench")
			cfg := endpointConfig{name: "bench", queue: queueConfig{capacity: 10000, maxShards: 8, maxSamplesPerSend: 2000,
				batchDeadline: 5 * time.Millisecond, minBackoff: 30 * time.Millisecond, maxBackoff: time.Second, shardUpdatePeriod: 10 * time.Second},
				client:     &client{url: srv.URL, http: http.DefaultClient, timeout: 10 * time.Second, userAgent: "sluice/bench"},
				maxWALSize: 1 << 30, maxWALAge: time.Hour, segmentSize: 32 << 20}
			if useWAL {
				cfg.walDir = b.TempDir()
			}
			e := newEndpoint(cfg, m, slog.New(slog.DiscardHandler))
			ctx, cancel := context.WithCancel(context.Background())
			if err := e.start(ctx); err != nil {
				b.Fatal(err)
			}
			defer func() { cancel(); e.stop() }()
			b.ResetTimer()
			for i := range b.N {
				fams, err := reg.Gather()
				if err != nil {
					b.Fatal(err)
				}
				e.append(ctx, fams, time.Now().UnixMilli()+int64(i))
				for testutil.ToFloat64(m.sent.(prometheus.Counter)) < float64((i+1)*20000) {
					time.Sleep(100 * time.Microsecond)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*20000), "ns/sample")
		})
	}
}
